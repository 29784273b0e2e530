"""A tunnel program (cloudflared, ngrok...) as a child process, and when it counts as up.

TunnelProcess starts it and learns its public URL from its output (or is given a fixed one);
check() asks `<url>/health` through the tunnel. TunnelMonitor turns check results and exits
into up/down transitions; restarts and backoff are the supervisor's business.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from adapters.processes.group import Command, ExitStatus, ProcessGroup, Stream
from adapters.processes.http_check import ProbeResult, http_check

TunnelState = Literal["stopped", "starting", "running", "exited"]


class TunnelUrlError(RuntimeError):
    """No public URL appeared in the tunnel's output (in time, or before it exited)."""


class TunnelProcess:
    def __init__(
        self,
        name: str,
        command: Command,
        *,
        url_pattern: str | re.Pattern[str] | None = None,
        url: str | None = None,
        check_interval_s: float = 60.0,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        health_path: str = "/health",
        check_timeout_s: float = 10.0,
    ) -> None:
        if (url_pattern is None) == (url is None):
            raise ValueError(f"tunnel {name!r}: give exactly one of url_pattern and url")
        self.name = name
        self.command = command
        self.check_interval_s = check_interval_s
        self._pattern = re.compile(url_pattern) if isinstance(url_pattern, str) else url_pattern
        self._fixed_url = url
        self._env = env
        self._cwd = cwd
        self._health_path = health_path
        self._check_timeout_s = check_timeout_s
        self._group: ProcessGroup | None = None
        self._url: str | None = url
        self._url_found = threading.Event()
        self._stopped = False

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._group is not None:
            raise RuntimeError(f"tunnel {self.name!r} was already started")
        if self._fixed_url is not None:
            self._url_found.set()
        self._group = ProcessGroup.start(
            self.command, cwd=self._cwd, env=self._env, tail_bytes=16 * 1024, on_line=self._line
        )

    def wait_for_url(self, timeout_s: float = 30.0) -> str:
        """The public URL, waiting up to `timeout_s` for it to appear in the output."""
        deadline = time.monotonic() + timeout_s
        while not self._url_found.wait(0.05):
            status = self.poll()
            if status is not None and self._group is not None:
                # Reap it and drain the pipes, so its last words are in the message (the
                # exit can be seen before the reader thread has read them).
                self._group.terminate(grace_s=1.0)
            if status is not None or time.monotonic() >= deadline:
                why = f"exited ({status.describe()})" if status else f"no URL in {timeout_s:g} s"
                last = " | ".join(self.last_lines(5))
                raise TunnelUrlError(f"tunnel {self.name!r}: {why}; last output: {last}")
        assert self._url is not None
        return self._url

    def poll(self) -> ExitStatus | None:
        return None if self._group is None else self._group.poll()

    def stop(self, grace_s: float = 5.0) -> ExitStatus | None:
        """End the tunnel and everything it started; None if it never started."""
        self._stopped = True
        return None if self._group is None else self._group.terminate(grace_s)

    # --- state ---------------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        return self._url

    @property
    def pid(self) -> int | None:
        return None if self._group is None else self._group.pid

    @property
    def state(self) -> TunnelState:
        if self._group is None or self._stopped:
            return "stopped"
        if self._group.poll() is not None:
            return "exited"
        return "running" if self._url is not None else "starting"

    def last_lines(self, n: int = 20) -> list[str]:
        if self._group is None:
            return []
        lines: list[str] = []
        for capture in self._group.captures.values():
            lines += capture.last_lines(n)
        return lines[-n:]

    def check(self) -> ProbeResult:
        """GET <url>/health through the tunnel (blocking: call from an actor thread)."""
        status = self.poll()
        if status is not None:
            return ProbeResult(False, f"tunnel process exited ({status.describe()})")
        if self._url is None:
            return ProbeResult(False, "no public URL yet")
        return http_check(self._url.rstrip("/") + self._health_path, self._check_timeout_s)

    def _line(self, stream: Stream, line: str) -> None:
        if self._url_found.is_set() or self._pattern is None:
            return
        match = self._pattern.search(line)
        if match:
            self._url = match.group(0)  # first match wins; later lines may repeat or vary
            self._url_found.set()


# --- up / down --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TunnelTransition:
    """What the actor records: TunnelUp or TunnelDown."""

    name: str
    state: Literal["up", "down"]
    reason: str
    url: str | None = None


class TunnelMonitor:
    """Pure state machine. One failed check is often a blip (the edge reconnecting), so only
    `failure_threshold` failures in a row, or the process exiting, make it down; one success
    makes it up. Each change is returned once; None means no change."""

    def __init__(self, name: str, failure_threshold: int = 3) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.state: Literal["unknown", "up", "down"] = "unknown"
        self.consecutive_failures = 0

    def on_check(
        self, ok: bool, reason: str = "", url: str | None = None
    ) -> TunnelTransition | None:
        if ok:
            self.consecutive_failures = 0
            return self._become("up", reason or "health check passed", url)
        self.consecutive_failures += 1
        if self.consecutive_failures < self.failure_threshold:
            return None
        why = f"{self.consecutive_failures} failed checks in a row, last: {reason or 'failed'}"
        return self._become("down", why, url)

    def on_result(self, result: ProbeResult, url: str | None = None) -> TunnelTransition | None:
        return self.on_check(result.ok, result.reason, url)

    def on_exit(self, reason: str) -> TunnelTransition | None:
        self.consecutive_failures = self.failure_threshold
        return self._become("down", f"tunnel process exited: {reason}", None)

    def _become(
        self, state: Literal["up", "down"], reason: str, url: str | None
    ) -> TunnelTransition | None:
        if self.state == state:
            return None
        self.state = state
        return TunnelTransition(self.name, state, reason, url)
