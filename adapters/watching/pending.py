"""Paths with unreported filesystem events: per-path debounce, burst coalescing, storm bound.

Pure bookkeeping on times given by the caller (no clock, no threads, no lock: the watcher
holds its lock around every call).

- Events are keyed by path: one save gives created/modified/closed events plus directory
  events, and they all collapse into one entry (its value is the time of the latest event).
- A burst is reported as one flush: everything pending goes once the workspace has been quiet
  for `debounce_s`. If activity never stops, a flush still happens every `max_delay_s`, taking
  only the paths quiet for `debounce_s` (a file being written stays until it settles).
- Memory is bounded: when more than `max_paths` distinct paths (and directories) would be
  pending, individual tracking stops (a "storm"). Further events are only counted, and once
  the storm is over (quiet for `debounce_s`, or at the latest every `storm_interval_s`) the
  caller reconciles the whole tree against its known state.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Due:
    paths: list[str]  # files to re-read
    dirs: list[str]  # directories whose whole subtree must be re-read (moved away, moved in)
    rescan: bool  # a storm or a lost-events overflow ended: reconcile the whole tree
    overflow: int  # events not tracked one by one (set when rescan is)


class Pending:
    def __init__(
        self, debounce_s: float, max_delay_s: float, max_paths: int, storm_interval_s: float
    ) -> None:
        if max_paths < 1:
            raise ValueError("max_paths must be at least 1")
        self.debounce_s = debounce_s
        self.max_delay_s = max_delay_s
        self.max_paths = max_paths
        self.storm_interval_s = storm_interval_s
        self._files: dict[str, float] = {}
        self._dirs: dict[str, float] = {}
        self._last_event = float("-inf")
        self._window_start: float | None = None  # oldest event not yet flushed
        self._storm_start: float | None = None  # set while paths are not tracked one by one
        self._overflow = 0
        self.peak = 0  # most entries ever tracked at once (for tests and metrics)

    @property
    def size(self) -> int:
        return len(self._files) + len(self._dirs)

    @property
    def storming(self) -> bool:
        return self._storm_start is not None

    def tracks(self, rel: str) -> bool:
        """Is this file pending right now? (A dict lookup: safe to ask without the lock.)"""
        return rel in self._files

    def note(self, rel: str, now: float, *, is_dir: bool = False) -> bool:
        """Record an event; True if nothing was waiting before (the flusher must be woken to
        learn its new deadline)."""
        idle = self._window_start is None and self._storm_start is None
        self._last_event = now
        if self._storm_start is not None:
            self._overflow += 1
            return idle
        table = self._dirs if is_dir else self._files
        if rel not in table:
            size = len(self._files) + len(self._dirs)
            if size >= self.max_paths:
                self._start_storm(now)
                return idle
            if size >= self.peak:
                self.peak = size + 1
        table[rel] = now
        if self._window_start is None:
            self._window_start = now
        return idle

    def lost_events(self, now: float) -> bool:
        """The kernel or the observer dropped events: reconcile the tree once things calm down.
        Returns True like note()."""
        idle = self._window_start is None and self._storm_start is None
        self._last_event = now
        if self._storm_start is None:
            self._start_storm(now)
        else:
            self._overflow += 1
        return idle

    def _start_storm(self, now: float) -> None:
        # The paths tracked so far are dropped too: the reconciliation covers them.
        self._overflow += self.size + 1
        self._files.clear()
        self._dirs.clear()
        self._window_start = None
        self._storm_start = now

    def deadline(self) -> float | None:
        """When take_due() will next have something (None: not until another event)."""
        if self._storm_start is not None:
            return min(
                self._last_event + self.debounce_s, self._storm_start + self.storm_interval_s
            )
        if self._window_start is None:
            return None
        return min(self._last_event + self.debounce_s, self._window_start + self.max_delay_s)

    def take_due(self, now: float, *, everything: bool = False) -> Due | None:
        deadline = self.deadline()
        if deadline is None or (now < deadline and not everything):
            return None
        if self._storm_start is not None:
            overflow, self._overflow, self._storm_start = self._overflow, 0, None
            return Due([], [], rescan=True, overflow=overflow)
        if everything or now - self._last_event >= self.debounce_s:
            files, dirs = list(self._files), list(self._dirs)
            self._files.clear()
            self._dirs.clear()
            self._window_start = None
            return Due(files, dirs, rescan=False, overflow=0)
        # Still busy after max_delay_s: report what has settled, keep what is being written.
        files = _take_quiet(self._files, now - self.debounce_s)
        dirs = _take_quiet(self._dirs, now - self.debounce_s)
        self._window_start = now if self.size else None
        return Due(files, dirs, rescan=False, overflow=0)


def _take_quiet(table: dict[str, float], settled_before: float) -> list[str]:
    quiet = [rel for rel, last in table.items() if last <= settled_before]
    for rel in quiet:
        del table[rel]
    return quiet
