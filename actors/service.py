"""ServiceActor: one per [[service]]; keeps a local process (a dev server...) alive.

setup() starts the process in its own group and records ServiceStarted; a timer tick notices
it exiting and, every `check_interval_s`, checks its health (health_url, else the port) and
its memory. An exit, or memory past max_rss_mb (the process is stopped first), records
ServiceExited and fails the actor, so the supervisor restarts it with backoff. A port held by
a process we did not start records ServiceStartFailed naming that process (never killed: it
may be the developer's own server) and fails the same way.

Crash loops: the CrashLoopDetector is shared by every incarnation (the factory passes the
same one). When failures come too fast, the failure is marked `crash_loop: true` and the
actor *parks* instead of failing at once: it stays up, reports "crash-looping", and only
fails after `cooldown_s`. A service that crashes on start therefore does not use up the
supervisor's restart budget, which is shared with its siblings and would otherwise escalate
to the root and stop the node over a broken dev server.
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
from adapters.config import ServiceConfig
from adapters.processes import CrashLoopDetector, PortInUseError, ProcessStartError, ServiceExit
from adapters.processes import ServiceProcess as Process
from eventstore.catalogue import EventType, service_stream

log = logging.getLogger(__name__)

SERVICE_START_FAILED = EventType.SERVICE_START_FAILED
_LINE_CHARS = 300  # per stderr line kept in events
_STARTING_CHECK_S = 0.5


class ServiceFailedError(RuntimeError):
    """The service exited, could not start, or outgrew its memory limit."""


@dataclass(frozen=True, slots=True)
class GetService:
    """Ask: {name, state, pid, port, uptime_s, health, rss_bytes, max_rss_mb,
    exits_in_window, last_exit}."""


@dataclass(frozen=True, slots=True)
class _Tick:
    generation: int  # ticks salvaged from a failed incarnation must not start a second chain


@dataclass(frozen=True, slots=True)
class _Retry:
    generation: int
    reason: str


class ServiceActor(GhostActor):
    def __init__(
        self,
        config: ServiceConfig,
        recorder: EventRecorder,
        env: Mapping[str, str] | None = None,
        *,
        crash_loop: CrashLoopDetector | None = None,
        check_interval_s: float = 5.0,
        poll_s: float = 0.25,
        grace_s: float = 5.0,
        cooldown_s: float = 60.0,
        tail_lines: int = 10,
    ) -> None:
        super().__init__(f"service.{config.name}")
        self.config = config
        self.recorder = recorder
        self.env = env  # None: ProcessGroup's default, the node's environment minus secrets
        self.crash_loop = crash_loop or CrashLoopDetector()
        self.check_interval_s = check_interval_s
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.cooldown_s = cooldown_s
        self.tail_lines = tail_lines
        self.stream = service_stream(config.name)
        self._process: Process | None = None
        self._scheduler: Scheduler | None = None
        self._state = "starting"  # starting | running | unhealthy | crash-looping
        self._next_check = 0.0
        self._health: dict[str, Any] | None = None
        self._rss = 0
        self._last_exit: dict[str, Any] | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def setup(self) -> None:
        self._scheduler = Scheduler(f"{self.name}-timers")
        c = self.config
        process = Process(
            c.name,
            c.command.popen_args(),
            port=c.port,
            health_url=c.health_url,
            max_rss_mb=c.max_rss_mb,
            env=self.env,
            cwd=c.cwd,
            tail_lines=self.tail_lines,
        )
        try:
            process.start()
        except (PortInUseError, ProcessStartError) as exc:
            self._start_failed(exc)  # raises, or parks when crash-looping
            return
        self._process = process
        self.recorder.record(
            self.stream,
            EventType.SERVICE_STARTED,
            {"name": c.name, "pid": process.pid, "port": c.port},
        )
        self._tell_later(0.0, _Tick(self.generation))

    def teardown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()
        process, self._process = self._process, None
        if process is not None and process.running:
            ended = process.stop(self.grace_s)  # SIGTERM to the group, SIGKILL after grace_s
            if ended is not None:
                self._record_exit(ended, process.pid, "stopped", expected=True, crash_loop=False)

    def receive(self, message: Any) -> Any:
        match message:
            case _Tick(generation=generation):
                if generation == self.generation:
                    self._on_tick()
            case _Retry(generation=generation, reason=reason):
                if generation == self.generation:
                    raise ServiceFailedError(f"{reason}; retrying after {self.cooldown_s:g} s")
            case GetService():
                return self._status()
            case _:
                return super().receive(message)
        return None

    # --- the tick ------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        process = self._process
        if process is None:
            return
        ended = process.poll(grace_s=min(self.grace_s, 2.0))
        if ended is not None:
            self._process = None
            self._failed(ended, process.pid, ended.describe())
            return
        if time.monotonic() >= self._next_check:
            self._check(process)
            # A starting service is checked often, so that it counts as running soon after
            # it opens its port rather than a whole interval later.
            interval = self.check_interval_s
            if self._state == "starting":
                interval = min(interval, _STARTING_CHECK_S)
            self._next_check = time.monotonic() + interval
        if self._process is not None:
            self._tell_later(self.poll_s, _Tick(self.generation))

    def _check(self, process: Process) -> None:
        result = process.health()  # blocks at most its health timeout
        self._health = {"ok": result.ok, "reason": result.reason, "at": time.time()}
        if result.ok:
            self._state = "running"
        elif self._state == "running":
            self._state = "unhealthy"  # reported (GetService, health check); not a restart
        self._rss = process.rss_bytes()
        if process.over_memory_limit(self._rss):
            limit = f"rss {self._rss // 2**20} MiB over max_rss_mb {self.config.max_rss_mb}"
            self._process = None
            ended = process.stop(self.grace_s)
            if ended is None:  # cannot happen for a started process; fail all the same
                raise ServiceFailedError(f"service {self.config.name!r}: {limit}")
            # A deliberate kill, yet not `expected`: a service outgrowing its limit again and
            # again is a loop worth an alert.
            self._failed(ended, process.pid, f"restarting: {limit}")

    # --- failing -------------------------------------------------------------------------------
    def _failed(self, ended: ServiceExit, pid: int | None, reason: str) -> None:
        looping = self.crash_loop.record_exit(time.monotonic())
        self._record_exit(ended, pid, reason, expected=False, crash_loop=looping)
        self._fail_or_park(f"service {self.config.name!r}: {reason}", looping)

    def _start_failed(self, exc: PortInUseError | ProcessStartError) -> None:
        looping = self.crash_loop.record_exit(time.monotonic())
        data: dict[str, Any] = {
            "name": self.config.name,
            "port": self.config.port,
            "reason": "port_in_use" if isinstance(exc, PortInUseError) else "cannot_start",
            "message": str(exc),
            "crash_loop": looping,
        }
        if isinstance(exc, PortInUseError) and exc.owner is not None:
            owner = exc.owner
            data["owner"] = {
                "pid": owner.pid,
                "name": owner.name,
                "command": " ".join(owner.cmdline)[:_LINE_CHARS],
                "address": owner.address,
            }
        self.recorder.record(self.stream, SERVICE_START_FAILED, data)
        self._fail_or_park(str(exc), looping)

    def _fail_or_park(self, reason: str, looping: bool) -> None:
        if not looping:
            raise ServiceFailedError(reason)
        self._state = "crash-looping"
        log.error("%s is crash-looping (%s); next try in %g s", self.name, reason, self.cooldown_s)
        self._tell_later(self.cooldown_s, _Retry(self.generation, reason))

    def _record_exit(
        self,
        ended: ServiceExit,
        pid: int | None,
        reason: str,
        *,
        expected: bool,
        crash_loop: bool,
    ) -> None:
        data = {
            "name": self.config.name,
            "pid": pid,
            "exit_code": ended.status.exit_code,
            "signal": ended.status.signal,
            "stderr_tail": [line[:_LINE_CHARS] for line in ended.stderr_tail],
            "uptime_s": round(ended.uptime_s, 3),
            "reason": reason,
            "expected": expected,
            "crash_loop": crash_loop,
            "exits_in_window": self.crash_loop.count(time.monotonic()),
        }
        self._last_exit = data
        self.recorder.record(self.stream, EventType.SERVICE_EXITED, data)

    def _tell_later(self, delay_s: float, message: _Tick | _Retry) -> None:
        if self._scheduler is not None and not self.stopping:
            self._scheduler.call_later(delay_s, partial(self.actor_ref.tell, message))

    def _status(self) -> dict[str, Any]:
        process = self._process
        state = self._state
        if process is None and state != "crash-looping":
            state = "exited"
        return {
            "name": self.config.name,
            "state": state,
            "pid": process.pid if process is not None else None,
            "port": self.config.port,
            "health": self._health,
            "rss_bytes": self._rss,
            "max_rss_mb": self.config.max_rss_mb,
            "exits_in_window": self.crash_loop.count(time.monotonic()),
            "last_exit": self._last_exit,
        }
