"""The workspace watcher: filesystem events in, batches of net changes out.

Threads, and why there are only these:
- the observer's threads (watchdog) call `_on_event`, which filters the path and records it
  in `Pending` under `_lock`: no I/O, no callback, so the observer's queue keeps draining even
  during a storm;
- one flusher thread owns everything else: it sleeps on a condition until the next debounce
  deadline (no polling, no thread per path), reads the pending paths (sha256 at flush time: a
  file may be gone by then) and has the `Reporter` turn them into attributed net changes
  and call `on_batch`. Rescans, the polling fallback and warnings run
  there too, so batches are delivered in order and never while a lock is held.

The start takes the last known state (from the event store) and rescans, which reports what
changed while the node was down; a storm or a kernel queue overflow ends with a rescan too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver

from adapters.watching import observers
from adapters.watching.expectations import Expectations
from adapters.watching.known import KnownState
from adapters.watching.model import MAX_BATCH, ChangeBatch
from adapters.watching.patterns import PathFilter
from adapters.watching.pending import Due, Pending
from adapters.watching.reporter import Reporter

log = logging.getLogger(__name__)

# Opening and closing without writing, and metadata changes, cannot change content; a
# directory's own "modified" only says an entry changed, and that entry has its own event.
_IGNORED_EVENTS = frozenset({"opened", "closed_no_write", "attrib"})


@dataclass(frozen=True, slots=True)
class WatcherStats:
    observer: str  # "inotify", "native" (another OS's), "polling", or "" before start
    pending: int  # entries tracked right now
    pending_peak: int  # most entries ever tracked at once (never above max_pending)
    overflow_events: int  # events not tracked one by one, over the watcher's life
    rescans: int
    batches: int
    changes: int


@dataclass(slots=True)
class _Work:
    warnings: list[str] = field(default_factory=list)
    limit: OSError | None = None
    rescans: list[threading.Event] = field(default_factory=list)
    due: Due | None = None


class _Handler(FileSystemEventHandler):
    def __init__(self, on_event: Callable[[FileSystemEvent], None]) -> None:
        self._on_event = on_event

    def dispatch(self, event: FileSystemEvent) -> None:
        self._on_event(event)


class Watcher:
    def __init__(
        self,
        root: Path,
        include: Iterable[str],
        exclude: Iterable[str],
        on_batch: Callable[[ChangeBatch], None],
        debounce_s: float = 0.2,
        max_pending: int = 100_000,
        polling: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_warning: Callable[[str], None] | None = None,
        poll_interval_s: float = 1.0,
        max_delay_s: float | None = None,
        storm_interval_s: float = 5.0,
        batch_limit: int = MAX_BATCH,
        expectations: Expectations | None = None,
    ) -> None:
        """`polling`: None = inotify, falling back to polling when it is unavailable or out of
        watches (with a warning); True = polling only; False = native only.
        `max_delay_s` (default max(1 s, 5 x debounce)) bounds how long constant activity can
        hold a batch back; `storm_interval_s` how long a storm can hold back its rescan.
        `expectations`: announced writes shared with others (e.g. every incarnation of an
        actor) instead of this watcher's own; their expiry times are on `clock`."""
        self.root = Path(os.path.realpath(root))  # inotify watches what it is given, links too
        self._root_str = str(self.root)
        self._root_prefix = self._root_str + os.sep
        self._filter = PathFilter(include, exclude)
        self._on_warning = on_warning
        self._polling = polling
        self._poll_interval_s = poll_interval_s
        self._clock = clock
        delay = max_delay_s if max_delay_s is not None else max(1.0, 5 * debounce_s)
        self._pending = Pending(debounce_s, delay, max_pending, storm_interval_s)
        self._expect = expectations if expectations is not None else Expectations()
        self._reporter = Reporter(
            self.root,
            self._filter,
            self._expect,
            on_batch,
            clock=clock,
            batch_limit=batch_limit,
            max_paths=max_pending,
        )

        self._lock = threading.Lock()  # guards _pending, _work, _state; never held in I/O
        self._wake = threading.Condition(self._lock)
        self._work = _Work()
        self._state = "new"  # new -> running -> stopping -> stopped
        self._ready = threading.Event()
        self._flusher: threading.Thread | None = None
        self._silent_start = True

        self._observer_lock = threading.Lock()  # start/stop/fallback of the observer
        self._observer: BaseObserver | None = None
        self._observer_kind = ""
        self._closing = False

    # -- public API ----------------------------------------------------------------------

    def start(self, known: Mapping[str, str] | None = None) -> None:
        """Start watching. `known` is the last known state (path -> sha256) from the event
        store: the first rescan reports every difference from it (source "rescan"). None means
        no previous state: the first rescan only takes a baseline and reports nothing.
        Returns once the observer runs; `wait_ready()` waits for the first rescan."""
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"watcher already {self._state}")
            self._state = "running"
        self._reporter.known = KnownState(known)
        self._silent_start = known is None
        # The observer starts before the first rescan: a change made during the rescan is
        # then seen by one or the other, never by neither.
        try:
            with self._observer_lock:
                started = observers.start_observer(
                    self.root,
                    _Handler(self._on_event),
                    self._filter,
                    polling=self._polling,
                    poll_interval_s=self._poll_interval_s,
                    on_lost_events=self._on_lost_events,
                    on_limit=self._on_limit,
                )
                self._observer, self._observer_kind = started.observer, started.kind
        except BaseException:
            with self._lock:
                self._state = "stopped"
            raise
        self._flusher = threading.Thread(
            target=self._run, name=f"watcher-flush:{self.root.name}", daemon=True
        )
        self._flusher.start()
        if started.warning:
            self._warn(started.warning)

    def stop(self) -> None:
        """Stop and join the observer, flush what is pending, join the flusher. Idempotent.
        A storm still unreconciled is left to the next start's rescan."""
        with self._lock:
            if self._state == "new":
                self._state = "stopped"
                return
        # The observer goes first, while the flusher still runs normally: once it is joined,
        # every event it saw is in _pending, and the flusher's final flush reports them.
        with self._observer_lock:
            self._closing = True
            observer, self._observer = self._observer, None
        if observer is not None:
            observers.stop_observer(observer)
        with self._lock:
            if self._state == "running":
                self._state = "stopping"
            self._wake.notify_all()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()
        with self._lock:
            self._state = "stopped"

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait for the first rescan after start() (True once done)."""
        return self._ready.wait(timeout)

    def rescan(self, timeout: float | None = None) -> bool:
        """Compare the whole tree with the known state now and report differences (source
        "rescan", or a matching expectation's). Returns False if not done within timeout."""
        if threading.current_thread() is self._flusher:  # e.g. from inside on_batch
            self._reporter.reconcile(report=True, overflow=0)
            return True
        done = threading.Event()
        with self._lock:
            if self._state != "running":
                raise RuntimeError(f"watcher is {self._state}")
            self._work.rescans.append(done)
            self._wake.notify()
        return done.wait(timeout)

    def expect(
        self, paths_to_sha: Mapping[str, str | None], source: str, ttl_s: float = 5.0
    ) -> None:
        """Announce writes about to happen (path -> resulting sha256, None for a deletion):
        the changes they cause are reported with `source` (e.g. "patch:<id>")."""
        self._expect.add(paths_to_sha, source, self._clock() + ttl_s)

    def known(self) -> dict[str, str]:
        """A copy of the last known state (path -> sha256)."""
        return self._reporter.known.snapshot()

    def stats(self) -> WatcherStats:
        reporter = self._reporter
        with self._lock:
            return WatcherStats(
                observer=self._observer_kind,
                pending=self._pending.size,
                pending_peak=self._pending.peak,
                overflow_events=reporter.overflow_events,
                rescans=reporter.rescans,
                batches=reporter.batches,
                changes=reporter.changes,
            )

    # -- observer threads: record and return -------------------------------------------

    def _on_event(self, event: FileSystemEvent) -> None:
        # The hot path of a burst (about three events per file written): kept lean.
        kind = event.event_type
        if kind in _IGNORED_EVENTS:
            return
        is_dir = event.is_directory
        if is_dir and kind == "modified":
            return
        if kind == "moved":
            # Each side on its own: an atomic save moves an excluded temp over a watched file.
            sides = (self._relative(event.src_path), self._relative(event.dest_path))
            notes = [side for side in sides if side is not None and self._tracked(side, is_dir)]
            if not notes:
                return
            now = self._clock()
            with self._lock:
                wake = False
                for note in notes:
                    wake |= self._pending.note(note, now, is_dir=is_dir)
                if wake:
                    self._wake.notify()
            return
        rel = self._relative(event.src_path)
        if rel is None:
            if kind == "deleted" and self._is_root(event.src_path):
                self._queue_warning("the workspace root was deleted: nothing is watched now")
            return
        if not self._tracked(rel, is_dir):
            return
        now = self._clock()
        with self._lock:
            if self._pending.note(rel, now, is_dir=is_dir):
                self._wake.notify()

    def _relative(self, raw: bytes | str) -> str | None:
        """The workspace-relative path of an event path, None outside the root (or the root)."""
        path = raw if isinstance(raw, str) else os.fsdecode(raw)
        if not path.startswith(self._root_prefix):
            return None
        rel = path[len(self._root_prefix) :]
        return rel if os.sep == "/" else rel.replace(os.sep, "/")

    def _is_root(self, raw: bytes | str) -> bool:
        return (raw if isinstance(raw, str) else os.fsdecode(raw)) == self._root_str

    def _tracked(self, rel: str, is_dir: bool) -> bool:
        """Is this path one to track? A file already pending matched when it was noted (the
        patterns never change), so only its first event pays for the pattern match. Read
        without the lock on purpose: a stale answer only means matching once more."""
        if is_dir:
            return not self._filter.dir_excluded(rel)
        return self._pending.tracks(rel) or self._filter.file_matches(rel)

    def _on_lost_events(self) -> None:
        with self._lock:
            first = not self._pending.storming
            self._pending.lost_events(self._clock())
            self._wake.notify()
        if first:
            self._queue_warning("inotify queue overflowed (events lost): reconciling by rescan")

    def _on_limit(self, exc: OSError) -> None:
        with self._lock:
            if self._work.limit is None:
                self._work.limit = exc
                self._wake.notify()

    def _queue_warning(self, message: str) -> None:
        with self._lock:
            self._work.warnings.append(message)
            self._wake.notify()

    # -- the flusher thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._reporter.reconcile(report=not self._silent_start, overflow=0)
        except Exception:
            log.exception("watcher %s: first rescan failed", self.root)
            self._warn("the first rescan failed; see the log")
        finally:
            self._ready.set()
        while (work := self._next_work()) is not None:
            try:
                self._do(work)
            except Exception:  # a bug must not kill the only thread that reports changes
                log.exception("watcher %s: flush failed", self.root)
                self._warn("a flush failed (see the log); changes may be reported late")

    def _next_work(self) -> _Work | None:
        with self._lock:
            while True:
                stopping = self._state != "running"
                now = self._clock()
                due = self._pending.take_due(now, everything=stopping)
                work = self._work
                if due is not None or work.warnings or work.limit or work.rescans:
                    self._work = _Work()
                    work.due = due
                    return work
                if stopping:
                    return None
                deadline = self._pending.deadline()
                self._wake.wait(None if deadline is None else max(deadline - now, 0.001))

    def _do(self, work: _Work) -> None:
        for message in work.warnings:
            self._warn(message)
        if work.limit is not None:
            self._fall_back_to_polling(work.limit)
        due = work.due
        if due is not None:
            if not due.rescan:
                self._reporter.flush(due)
            elif not self._closing:  # else the next start's rescan reconciles
                self._reporter.reconcile(report=True, overflow=due.overflow)
        if work.rescans:
            self._reporter.reconcile(report=True, overflow=0)
            for done in work.rescans:
                done.set()
        self._expect.purge(self._clock())

    def _fall_back_to_polling(self, exc: OSError) -> None:
        message = observers.limit_message(exc)
        with self._observer_lock:
            if self._closing or self._observer_kind == "polling":
                return
            if self._polling is False:
                old = None
                message += " (polling is disabled: some directories are not watched)"
            else:
                old = self._observer
                self._observer = observers.start_polling(
                    self.root, _Handler(self._on_event), self._filter, self._poll_interval_s
                )
                self._observer_kind = "polling"
                if old is not None:
                    observers.stop_observer(old)
        self._warn(message)
        if self._observer_kind == "polling":
            # Directories inotify could not watch may have changed unseen.
            self._reporter.reconcile(report=True, overflow=0)

    def _warn(self, message: str) -> None:
        full = f"watcher {self.root}: {message}"
        if self._on_warning is None:
            log.warning("%s", full)
            return
        try:
            self._on_warning(full)
        except Exception:
            log.exception("watcher %s: on_warning raised", self.root)
