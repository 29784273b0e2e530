"""HealthActor: runs the health checks periodically, keeps the latest snapshot, records
HealthChanged on transitions and feeds the systemd watchdog only while the node is healthy."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from actors.backoff import Clock
from actors.base import GhostActor
from actors.handle import ChildHandle
from actors.healthchecks import (
    ActorsCheck,
    CallableCheck,
    CheckResult,
    HealthCheck,
    HealthStatus,
    ProcessCheck,
    worst,
)
from actors.messages import AddCheck, CheckNow, GetHealth, HealthTick
from actors.recorder import EventRecorder, NullRecorder
from actors.scheduler import Scheduler
from eventstore.catalogue import actor_stream

log = logging.getLogger(__name__)

HEALTH_CHANGED = "HealthChanged"
# The watchdog says "the process is alive and its core works". A degraded node (an actor in
# backoff, a tunnel down) is still worth keeping; a hung actor or a store refusing writes is not.
WATCHDOG_STATUSES = frozenset({HealthStatus.OK, HealthStatus.DEGRADED})


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    status: HealthStatus
    checked_at: float  # time.time() of the round
    uptime_s: float
    duration_s: float
    checks: Mapping[str, CheckResult] = field(default_factory=dict)

    @property
    def actors(self) -> Mapping[str, Any]:
        """{name: {state, restarts}} from the actors check (empty without one)."""
        merged: dict[str, Any] = {}
        for result in self.checks.values():
            merged.update(result.data.get("actors", {}))
        return merged

    @property
    def problems(self) -> list[str]:
        return [
            f"{r.name}: {r.detail or r.status}" for r in self.checks.values() if r.status != "ok"
        ]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for /health and events."""
        return {
            "status": str(self.status),
            "checked_at": self.checked_at,
            "uptime_s": round(self.uptime_s, 3),
            "actors": dict(self.actors),
            "checks": {
                name: {"status": str(r.status), "detail": r.detail, **r.data}
                for name, r in self.checks.items()
            },
        }


def default_checks(
    handles: Iterable[ChildHandle],
    store_check: Callable[[], object] | None = None,
    max_rss_bytes: int | None = None,
) -> list[HealthCheck]:
    """The node's checks: actors answer Pings, the store accepts a write, process resources."""
    checks: list[HealthCheck] = [ActorsCheck(handles)]
    if store_check is not None:
        checks.append(CallableCheck("store", store_check))
    checks.append(ProcessCheck(max_rss_bytes))
    return checks


class HealthActor(GhostActor):
    """Every `interval_s`, starts all checks at once and collects them within `deadline_s`
    (so one round blocks this actor's thread at most that long, however many checks hang).

    Ask ``GetHealth()`` for the latest HealthSnapshot, ``CheckNow()`` for a fresh one; tell
    ``AddCheck(check)`` to add a check. `watchdog_ping` is called after each round whose status
    is in `watchdog_statuses`, and only then.
    """

    def __init__(
        self,
        checks: Sequence[HealthCheck] = (),
        *,
        interval_s: float = 10.0,
        deadline_s: float | None = None,
        recorder: EventRecorder | None = None,
        watchdog_ping: Callable[[], None] | None = None,
        watchdog_statuses: frozenset[HealthStatus] = WATCHDOG_STATUSES,
        name: str = "health",
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(name)
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.deadline_s = deadline_s if deadline_s is not None else min(5.0, interval_s / 2)
        self._checks = list(checks)
        self._recorder: EventRecorder = recorder or NullRecorder()
        self._watchdog_ping = watchdog_ping
        self._watchdog_statuses = watchdog_statuses
        self._clock = clock
        self._started = clock()
        self._snapshot: HealthSnapshot | None = None
        self._scheduler: Scheduler | None = None

    def setup(self) -> None:
        self._scheduler = Scheduler(f"{self.name}-timers")
        self.actor_ref.tell(HealthTick())  # first round right away

    def teardown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()
        for check in self._checks:
            try:
                check.close()
            except Exception:
                log.exception("closing health check %s failed", check.name)

    def receive(self, message: Any) -> Any:
        match message:
            case HealthTick():
                self._round()
                if self._scheduler is not None:
                    self._scheduler.call_later(
                        self.interval_s, partial(self.actor_ref.tell, HealthTick())
                    )
                return None
            case GetHealth():
                return self._snapshot or self._round()
            case CheckNow():
                return self._round()
            case AddCheck(check=check):
                self._checks.append(check)
                return None
            case _:
                return super().receive(message)

    def _round(self) -> HealthSnapshot:
        began = self._clock()
        pending = []
        results: dict[str, CheckResult] = {}
        for check in self._checks:
            try:
                pending.append((check, check.start()))
            except Exception as exc:
                log.exception("health check %s could not start", check.name)
                results[check.name] = _crashed(check.name, exc)
        deadline = began + self.deadline_s
        for check, waiting in pending:
            try:
                results[check.name] = waiting.result(max(0.0, deadline - self._clock()))
            except Exception as exc:
                log.exception("health check %s failed", check.name)
                results[check.name] = _crashed(check.name, exc)
        now = self._clock()
        snapshot = HealthSnapshot(
            status=worst(r.status for r in results.values()),
            checked_at=time.time(),
            uptime_s=now - self._started,
            duration_s=now - began,
            checks=results,
        )
        self._publish(snapshot)
        return snapshot

    def _publish(self, snapshot: HealthSnapshot) -> None:
        previous = self._snapshot
        self._snapshot = snapshot
        if previous is None or previous.status is not snapshot.status:
            self._recorder.record(
                actor_stream(self.name),
                HEALTH_CHANGED,
                {
                    "from": None if previous is None else str(previous.status),
                    "to": str(snapshot.status),
                    "problems": snapshot.problems,
                    "actors": dict(snapshot.actors),
                },
            )
        if self._watchdog_ping is not None and snapshot.status in self._watchdog_statuses:
            try:
                self._watchdog_ping()
            except Exception:
                log.exception("watchdog ping failed")


def _crashed(name: str, exc: Exception) -> CheckResult:
    return CheckResult(name, HealthStatus.DOWN, f"check crashed: {type(exc).__name__}: {exc}")
