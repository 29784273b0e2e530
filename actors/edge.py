"""From the Config to ChildSpecs for the watchers, tunnels, services and the notifier, and the
health checks of tunnels and services. One line each in the node::

    watchers = watcher_specs(config, store, recorder)          # TreeSpec.core, before patch.*
    tunnels = tunnel_specs(config, recorder)                   # TreeSpec.edge
    services = service_specs(config, recorder)                 # TreeSpec.edge
    notifier = notifier_spec(config, secrets, store, url)      # TreeSpec.edge
    for check in edge_checks(tunnels, services):               # after build_tree
        tree.health.tell(AddCheck(check))

Child processes get the node's environment without its secrets: the GHOST_/SLACK_ prefixes
and whatever variable names the [slack] section points at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import pykka

from actors.errors import ChildUnavailableError
from actors.handle import ChildHandle
from actors.healthchecks import CheckResult, Done, HealthCheck, HealthStatus, PendingCheck
from actors.notifier import NotifierActor
from actors.recorder import EventRecorder
from actors.service import GetService, ServiceActor
from actors.spec import ChildSpec
from actors.tunnel import GetTunnel, TunnelActor
from actors.watcher import WatcherActor
from adapters.config import Config, EnvSecrets
from adapters.processes import CrashLoopDetector, clean_env
from eventstore.protocol import EventStore

log = logging.getLogger(__name__)

Judge = Callable[[Mapping[str, Any]], tuple[HealthStatus, str]]


def child_env(config: Config, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) minus the node's secrets, for tunnels and services."""
    slack = config.slack
    names = [slack.webhook_url_env, slack.bot_token_env, slack.signing_secret_env] if slack else []
    return clean_env(base, extra_secret_names=[n for n in names if n])


def watcher_specs(
    config: Config, store: EventStore, recorder: EventRecorder, debounce_s: float = 0.2
) -> list[ChildSpec]:
    return [
        ChildSpec(f"watcher.{ws.name}", partial(WatcherActor, ws, store, recorder, debounce_s))
        for ws in config.workspaces
    ]


def _parking(config: Config) -> dict[str, Any]:
    """The crash-loop arguments of a tunnel or service actor. One detector for all of a
    child's incarnations; it trips before the supervisor's restart budget runs out
    (max_exits <= max_restarts), and the parked actor waits out the period."""
    sup = config.supervisor
    detector = CrashLoopDetector(max_exits=max(1, min(5, sup.max_restarts)), window_s=sup.period_s)
    return {"crash_loop": detector, "cooldown_s": sup.period_s}


def tunnel_specs(
    config: Config, recorder: EventRecorder, env: Mapping[str, str] | None = None
) -> list[ChildSpec]:
    env = child_env(config) if env is None else env
    return [
        ChildSpec(
            f"tunnel.{tunnel.name}",
            partial(TunnelActor, tunnel, recorder, env, **_parking(config)),
        )
        for tunnel in config.tunnels
    ]


def service_specs(
    config: Config, recorder: EventRecorder, env: Mapping[str, str] | None = None
) -> list[ChildSpec]:
    env = child_env(config) if env is None else env
    return [
        ChildSpec(
            f"service.{svc.name}",
            partial(ServiceActor, svc, recorder, env, **_parking(config)),
        )
        for svc in config.services
    ]


def notifier_spec(
    config: Config, secrets: EnvSecrets, store: EventStore, dashboard_url: str | None = None
) -> ChildSpec:
    return ChildSpec(
        "notifier", partial(NotifierActor, config.slack, secrets, store, dashboard_url)
    )


# --- health --------------------------------------------------------------------------------------
class StatusCheck:
    """Asks an actor for its status and judges it. Anything short of a verdict (the actor is
    restarting, busy, gone) is DEGRADED: tunnels and services are not the node's core, and
    a hung actor is already reported DOWN by the ActorsCheck."""

    def __init__(self, name: str, handle: ChildHandle, message: object, judge: Judge) -> None:
        self._name = name
        self._handle = handle
        self._message = message
        self._judge = judge
        self._outstanding: pykka.Future[Any] | None = None

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> PendingCheck:
        future = self._outstanding  # never a second ask while one is unanswered
        if future is None:
            try:
                future = self._handle.ask_future(self._message)
            except ChildUnavailableError:
                detail = f"{self._handle.name} {self._handle.state}"
                return Done(CheckResult(self._name, HealthStatus.DEGRADED, detail))
            self._outstanding = future
        return _PendingStatus(self, future)

    def outcome(self, future: pykka.Future[Any], timeout: float) -> CheckResult:
        try:
            status = future.get(timeout=timeout)
        except pykka.Timeout:
            return CheckResult(self._name, HealthStatus.DEGRADED, "no answer (busy)")
        except Exception as exc:  # died or replaced meanwhile
            log.debug("status of %s failed", self._handle.name, exc_info=True)
            self._outstanding = None
            return CheckResult(self._name, HealthStatus.DEGRADED, f"{type(exc).__name__}")
        self._outstanding = None
        verdict, detail = self._judge(status)
        return CheckResult(self._name, verdict, detail, {self._name: dict(status)})

    def close(self) -> None:
        self._outstanding = None


class _PendingStatus:
    def __init__(self, check: StatusCheck, future: pykka.Future[Any]) -> None:
        self._check = check
        self._future = future

    def result(self, timeout: float) -> CheckResult:
        return self._check.outcome(self._future, timeout)


def _judge_tunnel(status: Mapping[str, Any]) -> tuple[HealthStatus, str]:
    if status.get("state") == "up":
        return HealthStatus.OK, str(status.get("url") or "")
    last = status.get("last_check") or {}
    return HealthStatus.DEGRADED, f"tunnel {status.get('state')}: {last.get('reason', '')}"


def _judge_service(status: Mapping[str, Any]) -> tuple[HealthStatus, str]:
    state = status.get("state")
    if state == "running":
        return HealthStatus.OK, ""
    health = status.get("health") or {}
    return HealthStatus.DEGRADED, f"service {state}: {health.get('reason', '')}".rstrip(": ")


def edge_checks(tunnels: Sequence[ChildSpec], services: Sequence[ChildSpec]) -> list[HealthCheck]:
    """One DEGRADED-at-worst check per tunnel and service (a tunnel down is not a node down)."""
    checks: list[HealthCheck] = [
        StatusCheck(spec.name, spec.handle, GetTunnel(), _judge_tunnel) for spec in tunnels
    ]
    checks += [
        StatusCheck(spec.name, spec.handle, GetService(), _judge_service) for spec in services
    ]
    return checks
