"""A local service the node keeps alive (SPEC §3 [[service]]): start, health, memory, exit.

Restart decisions belong to the supervisor; this module gives it the facts (exit status with
the last stderr lines, health, RSS of the whole tree) and a crash-loop detector.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from adapters.processes import ports, tree
from adapters.processes.group import Command, ExitStatus, LineHandler, ProcessGroup
from adapters.processes.http_check import ProbeResult, http_check


class PortInUseError(RuntimeError):
    """The service's port is taken by a process we did not start. We never kill it: it may
    be the developer's own server."""

    def __init__(self, service: str, port: int, owner: ports.PortOwner | None) -> None:
        self.service, self.port, self.owner = service, port, owner
        held = owner.describe() if owner else f"something answers on port {port}"
        super().__init__(f"service {service!r} cannot start: {held}")


@dataclass(frozen=True, slots=True)
class ServiceExit:
    """What ServiceExited records."""

    name: str
    status: ExitStatus
    uptime_s: float
    stderr_tail: tuple[str, ...]
    stdout_tail: tuple[str, ...]

    def describe(self) -> str:
        last = f"; last stderr: {self.stderr_tail[-1]}" if self.stderr_tail else ""
        return f"service {self.name!r} {self.status.describe()} after {self.uptime_s:.1f} s{last}"


class ServiceProcess:
    def __init__(
        self,
        name: str,
        command: Command,
        *,
        port: int | None = None,
        health_url: str | None = None,
        max_rss_mb: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        tail_lines: int = 20,
        health_timeout_s: float = 5.0,
        on_line: LineHandler | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.health_url = health_url
        self.max_rss_mb = max_rss_mb
        self.host = host
        self._env = env
        self._cwd = cwd
        self._tail_lines = tail_lines
        self._health_timeout_s = health_timeout_s
        self._on_line = on_line
        self._group: ProcessGroup | None = None
        self._started_at = 0.0

    def start(self) -> None:
        """Start it (again, after an exit). Raises PortInUseError if its port is taken."""
        if self._group is not None:
            if self._group.running:
                raise RuntimeError(f"service {self.name!r} is already running")
            self._group.terminate(grace_s=1.0)  # a previous run nobody polled: reap, clean up
        if self.port is not None:
            owner = ports.port_owner(self.port, self.host)
            if owner is not None or ports.is_port_open(self.host, self.port, timeout=0.5):
                raise PortInUseError(self.name, self.port, owner)
        self._group = ProcessGroup.start(
            self.command, cwd=self._cwd, env=self._env, tail_bytes=32 * 1024, on_line=self._on_line
        )
        self._started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return None if self._group is None else self._group.pid

    @property
    def running(self) -> bool:
        return self._group is not None and self._group.running

    def poll(self, grace_s: float = 2.0) -> ServiceExit | None:
        """The exit, once the service's main process has exited. Also ends what it left
        behind (may take `grace_s` if leftovers ignore SIGTERM) and reaps it."""
        if self._group is None or self._group.poll() is None:
            return None
        return self.stop(grace_s)

    def stop(self, grace_s: float = 5.0) -> ServiceExit | None:
        """End it and everything it started; None if it was never started."""
        if self._group is None:
            return None
        status = self._group.terminate(grace_s)
        captures = self._group.captures
        return ServiceExit(
            self.name,
            status,
            time.monotonic() - self._started_at,
            tuple(captures["stderr"].last_lines(self._tail_lines)),
            tuple(captures["stdout"].last_lines(self._tail_lines)),
        )

    def health(self) -> ProbeResult:
        """health_url answering 2xx if given, else the port accepting connections, else the
        process being alive. Blocking: call from an actor thread."""
        if not self.running:
            return ProbeResult(False, "not running")
        if self.health_url is not None:
            return http_check(self.health_url, self._health_timeout_s)
        if self.port is not None:
            if ports.is_port_open(self.host, self.port, self._health_timeout_s):
                return ProbeResult(True, f"port {self.port} open")
            return ProbeResult(False, f"port {self.port} not accepting connections")
        return ProbeResult(True, "running")

    def rss_bytes(self) -> int:
        """Resident memory of the service and every process it started."""
        if self._group is None or not self._group.running:
            return 0
        return tree.rss_bytes(self._group.processes())

    def over_memory_limit(self, rss_bytes: int | None = None) -> bool:
        """True when max_rss_mb is set and exceeded: the supervisor should restart it."""
        if self.max_rss_mb is None:
            return False
        rss = self.rss_bytes() if rss_bytes is None else rss_bytes
        return rss > self.max_rss_mb * 1024 * 1024


class CrashLoopDetector:
    """`max_exits` exits within `window_s` seconds is a crash loop: restarting again would only
    repeat it. Pure: the caller passes the time (monotonic seconds)."""

    def __init__(self, max_exits: int = 5, window_s: float = 60.0) -> None:
        if max_exits < 1 or window_s <= 0:
            raise ValueError("max_exits must be >= 1 and window_s > 0")
        self.max_exits = max_exits
        self.window_s = window_s
        self._exits: deque[float] = deque()

    def record_exit(self, now: float) -> bool:
        """Note an exit at `now`; True if that makes a crash loop."""
        self._exits.append(now)
        return self.count(now) >= self.max_exits

    def count(self, now: float) -> int:
        while self._exits and now - self._exits[0] > self.window_s:
            self._exits.popleft()
        return len(self._exits)

    def reset(self) -> None:
        self._exits.clear()
