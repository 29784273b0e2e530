"""The supervision tree and the actors of ghost-node (one module per concept).

Building the tree in the daemon::

    recorder = StoreRecorder(store)
    backoff = BackoffPolicy(min_s=cfg.min_backoff_s, max_s=cfg.max_backoff_s)
    patch = ChildSpec("patch", lambda: PatchActor(...))            # un-started instances
    io = [ChildSpec("watcher", lambda: WatcherActor(...))]
    health = ChildSpec("health", lambda: HealthActor(
        default_checks([patch.handle, *(s.handle for s in io)], store_check=...),
        recorder=recorder, watchdog_ping=lambda: sd_notify("WATCHDOG=1")))
    root = Supervisor(
        "root",
        [patch, ChildSpec("io", lambda: Supervisor("io", io, backoff=backoff, recorder=recorder)),
         health],
        backoff=backoff, max_restarts=cfg.max_restarts, period_s=cfg.period_s,
        recorder=recorder,
        # runs in the supervisor's thread: hand over to the reactor
        on_give_up=lambda gave_up: reactor.callFromThread(exit_with, 70, gave_up),
    )
    root_ref = root.launch()
    patch.handle.tell(...)   # or .ask(msg, timeout=...): ChildUnavailableError while it restarts

On shutdown stop the root first (``root_ref.stop(timeout=...)`` in a thread: it stops its
children in reverse order), then ``ActorRegistry.stop_all`` for anything else.
"""

from actors.backoff import BackoffPolicy, RestartIntensity
from actors.base import GhostActor
from actors.errors import ChildUnavailableError
from actors.handle import ChildHandle
from actors.health import HealthActor, HealthSnapshot, default_checks
from actors.healthchecks import (
    ActorsCheck,
    CallableCheck,
    CheckResult,
    HealthCheck,
    HealthStatus,
    ProcessCheck,
)
from actors.messages import GaveUp, GetHealth, Ping, Pong
from actors.recorder import EventRecorder, ListRecorder, StoreRecorder
from actors.spec import ChildSpec, Liveness, Restart, Strategy
from actors.states import STATE_EVENTS, ActorState
from actors.supervisor import Supervisor

__all__ = [
    "STATE_EVENTS",
    "ActorState",
    "ActorsCheck",
    "BackoffPolicy",
    "CallableCheck",
    "CheckResult",
    "ChildHandle",
    "ChildSpec",
    "ChildUnavailableError",
    "EventRecorder",
    "GaveUp",
    "GetHealth",
    "GhostActor",
    "HealthActor",
    "HealthCheck",
    "HealthSnapshot",
    "HealthStatus",
    "ListRecorder",
    "Liveness",
    "Ping",
    "Pong",
    "ProcessCheck",
    "Restart",
    "RestartIntensity",
    "StoreRecorder",
    "Strategy",
    "Supervisor",
    "default_checks",
]
