"""TunnelActor: one per [[tunnel]]; keeps a tunnel program running and says when it is up.

setup() only starts the process (its own process group). A timer tick then waits for the
public URL (bounded by `url_timeout_s`), notices the process exiting, and every
`check_interval_s` asks `<url>/health` through the tunnel (every `retry_s` after a failure);
TunnelMonitor turns results into TunnelUp/TunnelDown on `tunnel-<name>`. Until the tunnel was
up once, failures within `startup_s` of the start do not count. The tick keeps the actor's
thread free between steps (Ping, GetTunnel and Stop are answered while the URL is awaited); a
check blocks it at most `check_timeout_s`.

Restarts are the supervisor's job: when the process exits, no URL appears in time, or checks
keep failing, the tick raises, the actor fails, teardown() ends the process group, and the
supervisor starts a new incarnation (a new process, often a new URL) after its backoff.

Crash loops (as ServiceActor): the CrashLoopDetector is shared by every incarnation. When
failures come too fast, the actor *parks* instead of failing: it ends the process, reports
"crash-looping", and fails only after `cooldown_s`. A tunnel that dies on every start then
costs its supervisor one restart per cooldown, never its whole restart budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from actors.base import GhostActor
from actors.recorder import EventRecorder
from actors.scheduler import Scheduler
from adapters.config import TunnelConfig
from adapters.processes import (
    CrashLoopDetector,
    ExitStatus,
    TunnelMonitor,
    TunnelProcess,
    TunnelTransition,
)
from adapters.processes.tunnel import TunnelUrlError
from eventstore.catalogue import EventType, tunnel_stream

log = logging.getLogger(__name__)


class TunnelFailedError(RuntimeError):
    """The tunnel process exited or stopped answering: the supervisor restarts the actor."""


@dataclass(frozen=True, slots=True)
class GetTunnel:
    """Ask: {name, url, state, process, pid, last_check, consecutive_failures, since}."""


@dataclass(frozen=True, slots=True)
class _Tick:
    generation: int  # ticks salvaged from a failed incarnation must not start a second chain


@dataclass(frozen=True, slots=True)
class _Retry:
    generation: int
    reason: str


class TunnelActor(GhostActor):
    def __init__(
        self,
        config: TunnelConfig,
        recorder: EventRecorder,
        env: Mapping[str, str] | None = None,
        *,
        url_timeout_s: float = 30.0,
        startup_s: float = 60.0,
        check_timeout_s: float = 5.0,
        retry_s: float = 5.0,
        failure_threshold: int = 3,
        poll_s: float = 0.25,
        grace_s: float = 5.0,
        health_path: str = "/health",
        crash_loop: CrashLoopDetector | None = None,
        cooldown_s: float = 60.0,
    ) -> None:
        super().__init__(f"tunnel.{config.name}")
        self.crash_loop = crash_loop or CrashLoopDetector()
        self.cooldown_s = cooldown_s
        self._parked: str | None = None  # why, while crash-looping
        self.config = config
        self.recorder = recorder
        self.env = env  # None: ProcessGroup's default, the node's environment minus secrets
        self.url_timeout_s = url_timeout_s
        self.startup_s = startup_s
        self.check_timeout_s = check_timeout_s
        self.retry_s = min(retry_s, config.check_interval_s)
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.health_path = health_path
        self.stream = tunnel_stream(config.name)
        self.monitor = TunnelMonitor(config.name, failure_threshold)
        self._process: TunnelProcess | None = None
        self._scheduler: Scheduler | None = None
        self._started_at = 0.0
        self._next_check = 0.0
        self._last_check: dict[str, Any] | None = None
        self._since: float | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def setup(self) -> None:
        self._scheduler = Scheduler(f"{self.name}-timers")
        self._process = TunnelProcess(
            self.config.name,
            self.config.command.popen_args(),
            url_pattern=self.config.url_pattern,
            url=self.config.url,
            check_interval_s=self.config.check_interval_s,
            env=self.env,
            health_path=self.health_path,
            check_timeout_s=self.check_timeout_s,
        )
        self._process.start()  # ProcessStartError fails the start: nothing to clean up
        self._started_at = time.monotonic()
        self.actor_ref.tell(_Tick(self.generation))

    def teardown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()
        process, self._process = self._process, None
        if process is None:
            return
        status = process.stop(self.grace_s)  # SIGTERM to the group, SIGKILL after grace_s
        if self.monitor.state == "up":
            # Stopped while up (node stopping, or a failure outside the checks): whoever
            # relies on the URL must learn it is gone.
            reason = f"stopped ({status.describe()})" if status else "stopped"
            self._record(TunnelTransition(self.config.name, "down", reason, process.url))

    def receive(self, message: Any) -> Any:
        match message:
            case _Tick(generation=generation):
                if generation == self.generation:
                    self._tick_or_park()
            case _Retry(generation=generation, reason=reason):
                if generation == self.generation:
                    raise TunnelFailedError(f"{reason}; retrying after {self.cooldown_s:g} s")
            case GetTunnel():
                return self._status()
            case _:
                return super().receive(message)
        return None

    # --- the tick ------------------------------------------------------------------------------
    def _tick_or_park(self) -> None:
        if self._parked is not None:
            return
        try:
            self._on_tick()
        except (TunnelFailedError, TunnelUrlError) as exc:
            if not self.crash_loop.record_exit(time.monotonic()):
                raise
            self._park(str(exc))

    def _park(self, reason: str) -> None:
        self._parked = reason
        process, self._process = self._process, None
        if process is not None:
            process.stop(self.grace_s)
        log.error("%s is crash-looping (%s); next try in %g s", self.name, reason, self.cooldown_s)
        if self._scheduler is not None and not self.stopping:
            retry = _Retry(self.generation, reason)
            self._scheduler.call_later(self.cooldown_s, partial(self.actor_ref.tell, retry))

    def _on_tick(self) -> None:
        process = self._process
        if process is None:
            return
        status = process.poll()
        if status is not None:
            self._exited(process, status)
        now = time.monotonic()
        if process.url is None:
            if self._age() >= self.url_timeout_s:
                last = " | ".join(process.last_lines(5))
                raise TunnelUrlError(
                    f"tunnel {self.config.name!r}: no URL in {self.url_timeout_s:g} s; "
                    f"last output: {last}"
                )
        elif now >= self._next_check:
            ok = self._check(process)
            self._next_check = time.monotonic() + (
                self.config.check_interval_s if ok else self.retry_s
            )
        self._schedule(self.poll_s)

    def _check(self, process: TunnelProcess) -> bool:
        result = process.check()  # blocks at most check_timeout_s (bounded GET)
        self._last_check = {
            "ok": result.ok,
            "reason": result.reason,
            "at": time.time(),
            "elapsed_s": round(result.elapsed_s, 3),
        }
        was = self.monitor.state
        if not result.ok and was == "unknown" and self._age() < self.startup_s:
            # A fresh quick-tunnel URL often fails for a while (DNS, edge registration):
            # only failures after the start-up allowance count towards "down".
            return False
        transition = self.monitor.on_result(result, process.url)
        if transition is not None and not (was == "unknown" and transition.state == "down"):
            # unknown -> down is a tunnel that never came up: the ActorFailed event already
            # says why, and one TunnelDown per restart attempt would only be noise in Slack.
            self._record(transition, pid=process.pid)
        if self.monitor.state == "down":
            raise TunnelFailedError(
                f"tunnel {self.config.name!r} down: {transition.reason if transition else ''}"
            )
        return result.ok

    def _exited(self, process: TunnelProcess, status: ExitStatus) -> None:
        was = self.monitor.state
        transition = self.monitor.on_exit(status.describe())
        if transition is not None and was == "up":
            self._record(transition, url=process.url)
        last = " | ".join(process.last_lines(5))
        raise TunnelFailedError(
            f"tunnel {self.config.name!r} exited ({status.describe()}); last output: {last}"
        )

    def _age(self) -> float:
        return time.monotonic() - self._started_at

    def _schedule(self, delay_s: float) -> None:
        if self._scheduler is not None and not self.stopping:
            self._scheduler.call_later(
                delay_s, partial(self.actor_ref.tell, _Tick(self.generation))
            )

    # --- recording and status ------------------------------------------------------------------
    def _record(self, transition: TunnelTransition, **extra: Any) -> None:
        self._since = time.time()
        kind = EventType.TUNNEL_UP if transition.state == "up" else EventType.TUNNEL_DOWN
        data = {
            "name": transition.name,
            "url": transition.url,
            "reason": transition.reason,
            **extra,
        }
        self.recorder.record(self.stream, kind, data)

    def _status(self) -> dict[str, Any]:
        process = self._process
        return {
            "name": self.config.name,
            "url": process.url if process is not None else None,
            # unknown | up | down, or crash-looping while parked
            "state": "crash-looping" if self._parked is not None else self.monitor.state,
            "parked_reason": self._parked,
            "process": process.state if process is not None else "stopped",
            "pid": process.pid if process is not None else None,
            "last_check": self._last_check,
            "consecutive_failures": self.monitor.consecutive_failures,
            "since": self._since,
        }
