"""WebhookActor: owns the node's HTTP site (SPEC §4) in the edge supervisor.

setup() binds the listening port on the reactor thread (only the reactor thread touches
Twisted objects) and reports the real host/port through `on_bound`, which the node uses for
node.json, the banner and READY=1; teardown() closes the SSE clients and unbinds. A restart by
the supervisor binds again, on the same port: the configured one, or with `port = 0` the one
the previous incarnation had (so clients and node.json stay right), any free one if taken.

If the very first bind fails (the port is taken, the address is not this machine's), no
restart can help: `on_never_bound` lets the node stop with a clear message and exit 2.

The tree is launched before `reactor.run()`: setup() then waits for the reactor to start,
which is fine (the supervisor's start timeout is far longer than that takes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from twisted.internet import reactor as default_reactor
from twisted.internet.defer import maybeDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.python.failure import Failure

from actors.base import GhostActor
from adapters.config import Config
from adapters.web.app import WebApp, WebConfig, WebServices
from adapters.web.site import build_site

log = logging.getLogger(__name__)
T = TypeVar("T")

BIND_TIMEOUT_S = 20.0
UNBIND_TIMEOUT_S = 10.0
OnBound = Callable[[str, int], None]
OnNeverBound = Callable[["WebBindError"], None]


class WebBindError(Exception):
    """The site could not listen (port in use, address not available...)."""


@dataclass(slots=True)
class Binding:
    """Shared by every incarnation of the actor: the port the last one listened on."""

    last_port: int | None = None


def call_in_reactor(reactor: Any, fn: Callable[[], Any], timeout_s: float) -> Any:
    """Run `fn` on the reactor thread and wait for its (Deferred) result, at most `timeout_s`.

    threads.blockingCallFromThread with a deadline: it would wait forever if the reactor had
    stopped (INTEGRATION.md), and a stopping node must never hang on its web actor."""
    result: Future[Any] = Future()

    def run() -> None:
        d = maybeDeferred(fn)

        def failed(failure: Failure) -> None:
            result.set_exception(failure.value)

        d.addCallbacks(result.set_result, failed)

    reactor.callFromThread(run)
    return result.result(timeout_s)


class WebhookActor(GhostActor):
    def __init__(
        self,
        config: WebConfig,
        services: WebServices,
        on_bound: OnBound,
        binding: Binding | None = None,
        reactor: Any = None,
        name: str = "webhook",
        on_never_bound: OnNeverBound | None = None,
    ) -> None:
        super().__init__(name)
        self._config = config
        self._services = services
        self._on_bound = on_bound
        self._on_never_bound = on_never_bound
        self._binding = binding or Binding()
        self._reactor = reactor or default_reactor
        self.app: WebApp | None = None
        self._port: Any = None

    def setup(self) -> None:
        wanted = self._config.port or self._binding.last_port or 0
        try:
            port = self._bind(wanted)
        except WebBindError as exc:
            if self._binding.last_port is None and self._on_never_bound is not None:
                # The very first bind: the port is taken (another node?) or the address is
                # wrong. Restarting cannot fix that; the node says so in one line and exits
                # (exit 2), so this actor stays up unbound rather than failing with a
                # traceback that would only repeat that line.
                self._on_never_bound(exc)
                return
            if self._config.port or not wanted:
                raise
            log.info("port %d is taken now; binding any free port", wanted)
            port = self._bind(0)
        self._binding.last_port = port
        self._on_bound(self._config.host, port)

    def _bind(self, port: int) -> int:
        config = replace(self._config, port=port)
        try:
            return int(call_in_reactor(self._reactor, lambda: self._listen(config), BIND_TIMEOUT_S))
        except CannotListenError as exc:
            raise WebBindError(f"cannot listen on {config.host}:{port}: {exc.socketError}") from exc
        except OSError as exc:
            raise WebBindError(f"cannot listen on {config.host}:{port}: {exc}") from exc
        except FutureTimeout as exc:
            raise WebBindError(f"the reactor did not bind within {BIND_TIMEOUT_S:g} s") from exc

    def _listen(self, config: WebConfig) -> Any:
        """Reactor thread."""
        app = WebApp(config, self._services, self._reactor)
        # Store and file reads run in the reactor's pool (10 threads by default): room for
        # concurrent readers without starving the shutdown and health paths.
        self._reactor.suggestThreadPoolSize(20)
        endpoint_type = TCP6ServerEndpoint if ":" in config.host else TCP4ServerEndpoint
        endpoint: Any = endpoint_type(self._reactor, config.port, interface=config.host)

        def listening(port: Any) -> int:
            self._port = port
            actual = int(port.getHost().port)
            app.base_url = f"http://{config.host}:{actual}"
            app.hub.start()
            self.app = app
            return actual

        return endpoint.listen(build_site(app)).addCallback(listening)

    def teardown(self) -> None:
        if self._port is None:
            return
        if not getattr(self._reactor, "running", False):
            return  # the process is exiting: the sockets close with it
        try:
            call_in_reactor(self._reactor, self._close, UNBIND_TIMEOUT_S)
        except FutureTimeout:
            log.error("unbinding the web site took over %g s", UNBIND_TIMEOUT_S)
        except Exception:
            log.exception("unbinding the web site failed")
        if self.app is not None:
            self.app.hub.join(2.0)

    def _close(self) -> Any:
        """Reactor thread: end the SSE streams, then stop listening (a Deferred)."""
        if self.app is not None:
            self.app.hub.close()
        port, self._port = self._port, None
        return port.stopListening() if port is not None else None


def web_config(node: Config, env: Mapping[str, str]) -> WebConfig:
    """The web knobs from the node's config; GHOST_HTTP_RATE="<per second>[,<burst>]" (0 =
    off) tunes rate limiting until the config file grows an [http] table."""
    proxies = node.node.trusted_proxies
    if proxies is None:
        proxies = ("127.0.0.0/8", "::1") if node.tunnels else ()
    config = WebConfig(
        host=node.node.host,
        port=node.node.port,
        trusted_proxies=proxies,
        allowed_hosts=tuple(
            urlsplit(t.url).hostname or "" for t in node.tunnels if t.url is not None
        ),
        allowed_host_patterns=tuple(
            t.url_pattern for t in node.tunnels if t.url_pattern is not None
        ),
    )
    raw = env.get("GHOST_HTTP_RATE")
    if raw:
        rate_text, _, burst_text = raw.partition(",")
        rate = float(rate_text)
        burst = float(burst_text) if burst_text else max(1.0, rate * 4)
        if rate < 0 or burst < 1:
            raise ValueError("GHOST_HTTP_RATE: expected '<per second>[,<burst>]' with burst >= 1")
        config = replace(config, rate_per_s=rate, burst=burst)
    return config
