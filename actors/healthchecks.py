"""Health checks: a small protocol and the built-in checks (actors, a callable, the process).

A check is run in two steps so that the HealthActor never waits on one check at a time:
``start()`` must return at once (send pings, start a thread...), then ``result(timeout)`` waits
at most `timeout` seconds and always returns a CheckResult (a timeout is a result, not an
exception). Tunnels and services add their own checks with the same two methods.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import TimeoutError as ConcurrentTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil
import pykka

from actors.errors import ChildUnavailableError
from actors.handle import ChildHandle
from actors.messages import Ping
from actors.states import ActorState

log = logging.getLogger(__name__)


class HealthStatus(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # working, but something is restarting or over a soft limit
    DOWN = "down"  # a core part does not work (hung actor, store refuses writes)

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {HealthStatus.OK: 0, HealthStatus.DEGRADED: 1, HealthStatus.DOWN: 2}


def worst(statuses: Iterable[HealthStatus]) -> HealthStatus:
    return max(statuses, key=lambda s: s.rank, default=HealthStatus.OK)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: HealthStatus
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


class PendingCheck(Protocol):
    def result(self, timeout: float) -> CheckResult:
        """Wait at most `timeout` s; return a result (a failed one on timeout)."""


class HealthCheck(Protocol):
    @property
    def name(self) -> str: ...

    def start(self) -> PendingCheck:
        """Begin one round of the check; must not block."""

    def close(self) -> None:
        """Release what the check holds (the HealthActor calls it when it stops)."""


@dataclass(frozen=True, slots=True)
class Done:
    """A check that finished in start() already."""

    value: CheckResult

    def result(self, timeout: float) -> CheckResult:
        return self.value


# --- supervised actors ---------------------------------------------------------------------------
_STATE_STATUS = {
    ActorState.RUNNING: HealthStatus.OK,
    ActorState.STOPPED: HealthStatus.OK,  # on purpose, or a normal exit
    ActorState.STARTING: HealthStatus.DEGRADED,
    ActorState.BACKOFF: HealthStatus.DEGRADED,
    ActorState.FATAL: HealthStatus.DOWN,
}


class ActorsCheck:
    """Pings every running actor; reports each one's state and restarts.

    A running actor that does not answer within the round's deadline is reported "hung" with
    `hung_status` (DOWN by default: the watchdog must stop while a thread is stuck). While one
    Ping is unanswered no second one is sent, so a hung actor's inbox does not grow.
    """

    def __init__(
        self,
        handles: Iterable[ChildHandle],
        name: str = "actors",
        hung_status: HealthStatus = HealthStatus.DOWN,
    ) -> None:
        self._name = name
        self._handles = list(handles)
        self._hung_status = hung_status
        self._outstanding: dict[str, pykka.Future[Any]] = {}

    @property
    def name(self) -> str:
        return self._name

    def add(self, handle: ChildHandle) -> None:
        self._handles.append(handle)

    def start(self) -> PendingCheck:
        pings: dict[str, pykka.Future[Any] | None] = {}
        for handle in self._handles:
            future = self._outstanding.get(handle.name)
            if future is None:
                try:
                    future = handle.ask_future(Ping())
                except ChildUnavailableError:
                    future = None
            if future is None:
                self._outstanding.pop(handle.name, None)
            else:
                self._outstanding[handle.name] = future
            pings[handle.name] = future
        return _PendingPings(self, pings)

    def _collect(
        self, pings: Mapping[str, pykka.Future[Any] | None], timeout: float
    ) -> CheckResult:
        deadline = time.monotonic() + timeout
        actors: dict[str, dict[str, Any]] = {}
        statuses: list[HealthStatus] = []
        problems: list[str] = []
        for handle in self._handles:
            state: str = handle.state
            status = _STATE_STATUS[handle.state]
            future = pings.get(handle.name)
            if future is not None:
                try:
                    future.get(timeout=max(0.0, deadline - time.monotonic()))
                except pykka.Timeout:
                    state, status = "hung", self._hung_status
                except Exception:
                    # Failed or replaced meanwhile: its handle state says what it is now.
                    log.debug("ping of %s failed", handle.name, exc_info=True)
                    self._outstanding.pop(handle.name, None)
                else:
                    self._outstanding.pop(handle.name, None)
            actors[handle.name] = {"state": state, "restarts": handle.restarts}
            statuses.append(status)
            if status is not HealthStatus.OK:
                problems.append(f"{handle.name} {state}")
        return CheckResult(self._name, worst(statuses), ", ".join(problems), {"actors": actors})

    def close(self) -> None:
        self._outstanding.clear()


@dataclass(frozen=True, slots=True)
class _PendingPings:
    check: ActorsCheck
    pings: Mapping[str, pykka.Future[Any] | None]

    def result(self, timeout: float) -> CheckResult:
        return self.check._collect(self.pings, timeout)


# --- any blocking callable (the store accepts a write, a port answers...) ------------------------
class CallableCheck:
    """Runs `fn` on a short-lived daemon thread; ok when it returns anything but False.

    A run that outlives the deadline is reported failed, and no second run starts until it
    returns: at most one thread per check can be stuck, and a daemon thread never holds up
    process exit.
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[], object],
        failure_status: HealthStatus = HealthStatus.DOWN,
    ) -> None:
        self._name = name
        self._fn = fn
        self._failure_status = failure_status
        self._running: ConcurrentFuture[object] | None = None
        self._started_at = 0.0

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> PendingCheck:
        running = self._running
        if running is not None and not running.done():
            stuck = time.monotonic() - self._started_at
            detail = f"previous run still going after {stuck:.1f}s"
            return Done(CheckResult(self._name, self._failure_status, detail))
        future: ConcurrentFuture[object] = ConcurrentFuture()
        self._running = future
        self._started_at = time.monotonic()
        threading.Thread(
            target=self._run, args=(future,), name=f"check-{self._name}", daemon=True
        ).start()
        return _PendingCall(self, future)

    def _run(self, future: ConcurrentFuture[object]) -> None:
        try:
            value = self._fn()
        except Exception as exc:  # the check's failure is its result
            log.debug("health check %s raised", self._name, exc_info=True)
            future.set_exception(exc)
        else:
            future.set_result(value)

    def _outcome(self, future: ConcurrentFuture[object], timeout: float) -> CheckResult:
        try:
            value = future.result(timeout=timeout)
        except ConcurrentTimeout:
            return CheckResult(self._name, self._failure_status, f"no answer within {timeout:.1f}s")
        except Exception as exc:
            log.debug("health check %s failed", self._name, exc_info=True)
            return CheckResult(self._name, self._failure_status, f"{type(exc).__name__}: {exc}")
        if value is False:
            return CheckResult(self._name, self._failure_status, "returned False")
        return CheckResult(self._name, HealthStatus.OK)

    def close(self) -> None:
        self._running = None


@dataclass(frozen=True, slots=True)
class _PendingCall:
    check: CallableCheck
    future: ConcurrentFuture[object]

    def result(self, timeout: float) -> CheckResult:
        return self.check._outcome(self.future, timeout)


# --- this process --------------------------------------------------------------------------------
class ProcessCheck:
    """Samples RSS, CPU (since the previous sample) and thread count; DEGRADED over max_rss."""

    def __init__(self, max_rss_bytes: int | None = None, name: str = "process") -> None:
        self._name = name
        self._max_rss = max_rss_bytes
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call only sets the reference point

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> PendingCheck:
        with self._process.oneshot():
            rss = self._process.memory_info().rss
            cpu = self._process.cpu_percent(None)
            threads = self._process.num_threads()
        data = {"rss_bytes": rss, "cpu_percent": cpu, "threads": threads}
        if self._max_rss is not None and rss > self._max_rss:
            detail = f"rss {rss // 2**20} MiB over {self._max_rss // 2**20} MiB"
            return Done(CheckResult(self._name, HealthStatus.DEGRADED, detail, data))
        return Done(CheckResult(self._name, HealthStatus.OK, "", data))

    def close(self) -> None:
        pass
