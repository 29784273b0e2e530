"""Everything the routes need, built once by the node and handed to the WebhookActor.

`WebConfig` holds the knobs (limits, timeouts), `WebServices` the node's parts (the store,
and the actors behind the interfaces of adapters/operations/ports.py); `WebApp` adds what
lives as long as the listening site: the authenticator, metrics, rate limiter, SSE hub, and
the helpers that move blocking work off the reactor thread."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import threads
from twisted.internet.defer import Deferred

from adapters.config import WorkspaceConfig
from adapters.defaults import DEFAULT_HOST, DEFAULT_PORT
from adapters.operations.ports import ActorPort, HealthPort, PatchPort
from adapters.web.auth import WINDOW_S, Authenticator, SignatureMemory
from adapters.web.guard import (
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_PEER,
    HostPolicy,
)
from adapters.web.limits import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_BODY, RateLimiter
from adapters.web.metrics import Metrics
from adapters.web.patch_index import PatchIndex
from adapters.web.sessions import SessionStore
from adapters.web.sse import EventHub
from eventstore.events import NewEvent
from eventstore.protocol import EventStore

log = logging.getLogger("ghost.web")
T = TypeVar("T")

TIMED_OUT = object()  # what `wait_future` gives when the future was not done in time
HTTP_STREAM = "http"


@dataclass(frozen=True, slots=True)
class WebConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_body: int = DEFAULT_MAX_BODY
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    idle_timeout_s: float = 75.0  # keep-alive connections idle longer than this are closed
    handler_timeout_s: float = 60.0  # a route that has not answered by then answers 503
    rate_per_s: float = 50.0  # per client IP; 0 turns rate limiting off
    burst: float = 200.0
    wait_s: float = 20.0  # SPEC §4: how long POST /webhook waits before answering `queued`
    heartbeat_s: float = 15.0
    sse_max_clients: int = 1000
    sse_max_per_client: int = 32  # live streams one client (address) may hold
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_peer: int = DEFAULT_MAX_CONNECTIONS_PER_PEER
    # Peers whose X-Forwarded-For / CF-Connecting-IP name the real client (a local tunnel):
    # addresses or networks. From anyone else those headers are ignored, or rotating them
    # would give a caller a fresh rate-limit bucket per request.
    trusted_proxies: tuple[str, ...] = ()
    # Host / Origin names besides loopback ones and IP literals (guard.HostPolicy), and the
    # shapes of tunnels' public URLs (their url_pattern).
    allowed_hosts: tuple[str, ...] = ()
    allowed_host_patterns: tuple[str, ...] = ()
    tree_max: int = 10_000
    slack_response_prefixes: tuple[str, ...] = ("https://hooks.slack.com/",)


@dataclass(slots=True)
class WebServices:
    store: EventStore
    patches: PatchPort
    token: str
    version: str
    hmac_secret: str | None = None
    health: HealthPort | None = None
    actors: Mapping[str, ActorPort] = field(default_factory=dict)  # for `/ghost restart`
    # By workspace / tunnel / service name: asked for GET /watch, /health and `/ghost tunnel`.
    watchers: Mapping[str, ActorPort] = field(default_factory=dict)
    tunnels: Mapping[str, ActorPort] = field(default_factory=dict)
    services: Mapping[str, ActorPort] = field(default_factory=dict)
    slack_signing_secret: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    # Wall clock of the start, and the HMAC signatures accepted: both live as long as the
    # process, not as one incarnation of the web actor (a restart must not forget them).
    started_wall: float = field(default_factory=time.time)
    signatures: SignatureMemory = field(default_factory=lambda: SignatureMemory(WINDOW_S))
    # The state directory's signature journal (StateDir.signatures_path): when given, the
    # signatures are loaded from it and journaled to it, so that the next run of the node
    # knows what this one accepted (RELIABILITY.md O1), and `signatures` is built from it.
    signatures_path: Path | None = None
    # Dashboard sign-ins (adapters/web/sessions.py), kept in `<state>/sessions` when given.
    sessions_path: Path | None = None
    sessions: SessionStore = field(default_factory=SessionStore)
    # Writes a new node token where the node keeps it and returns it (the daemon's, which
    # also adds it to the log redactor); None: this node's token cannot be rotated (it
    # comes from GHOST_TOKEN).
    rotate_token: Callable[[], str] | None = None

    def __post_init__(self) -> None:
        if self.signatures_path is not None:
            self.signatures = SignatureMemory.persistent(
                self.signatures_path, WINDOW_S, started=self.started_wall
            )
        if self.sessions_path is not None:
            self.sessions = SessionStore(self.sessions_path)

    @property
    def workspaces(self) -> Mapping[str, WorkspaceConfig]:
        return self.patches.workspaces


class WebApp:
    def __init__(self, config: WebConfig, services: WebServices, reactor: Any) -> None:
        self.config = config
        self.services = services
        self.reactor = reactor
        self.auth = Authenticator(
            services.token,
            services.hmac_secret,
            signatures=services.signatures,
            not_before=services.started_wall,
            sessions=services.sessions,
        )
        self.metrics = Metrics()
        self.limiter = RateLimiter(config.rate_per_s, config.burst)
        self.hub = EventHub(
            services.store,
            reactor,
            heartbeat_s=config.heartbeat_s,
            max_clients=config.sse_max_clients,
            on_events=self._count_events,
        )
        self.metrics.bind_sse_count(lambda: len(self.hub.clients))
        self.index = PatchIndex(services.store)
        self.hosts = HostPolicy.build(
            (config.host, *config.allowed_hosts), config.allowed_host_patterns
        )
        self.proxies = tuple(ipaddress.ip_network(p, strict=False) for p in config.trusted_proxies)
        self.caches: dict[str, object] = {}  # per-route caches (health snapshots)
        self.base_url = f"http://{config.host}:{config.port}"

    def _count_events(self, batch: Any) -> None:
        # The feed thread sees every event once: the natural place to count them.
        for event in batch:
            self.metrics.events.labels(event.type).inc()
            if event.type == "ActorRestarting":
                self.metrics.restarts.labels(event.stream.removeprefix("actor-")).inc()
        self.metrics.position.set(batch[-1].position)

    # --- off the reactor thread ----------------------------------------------------------------
    def in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """Blocking work (store reads, file reads) in the reactor's thread pool."""
        return threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), fn, *args, **kwargs
        )

    def wait_future(self, future: Future[T], timeout_s: float) -> Deferred[Any]:
        """The done Future, or TIMED_OUT after `timeout_s`; parks no thread: the Future's
        callback hops to the reactor with callFromThread."""
        d: Deferred[Any] = Deferred()

        def deliver(done: Future[T]) -> None:
            if d.called:
                return  # timed out already; the outcome is in the store for GET /patches/{id}
            if timer.active():
                timer.cancel()
            d.callback(done)

        def expire() -> None:
            if not d.called:
                d.callback(TIMED_OUT)

        timer = self.reactor.callLater(max(0.0, timeout_s), expire)
        future.add_done_callback(lambda done: self.reactor.callFromThread(deliver, done))
        return d

    def record_http_error(self, route: str, method: str, request_id: str, error: str) -> None:
        """An unexpected failure as an event (never the body, headers or secrets)."""
        data = {"route": route, "method": method, "request_id": request_id, "error_type": error}
        try:
            self.services.store.append_async(HTTP_STREAM, [NewEvent("HttpError", data)])
        except Exception:  # a closed store while stopping: the log line is enough
            log.exception("could not record HttpError %s", request_id)
