"""One timer thread per owner, for delayed and periodic messages to actors.

Actors must not sleep (it blocks their inbox) and a threading.Timer per restart would cost a
thread each. A Scheduler runs callbacks on a single daemon thread; callbacks must be quick (in
practice: `ref.tell(...)`), so that one slow callback cannot delay the others.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pykka import ActorDeadError

log = logging.getLogger(__name__)


@dataclass(order=True, slots=True)
class _Entry:
    due: float
    seq: int
    fn: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class TimerHandle:
    __slots__ = ("_entry",)

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    def cancel(self) -> None:
        # A flag rather than removal from the heap: O(1), and the thread skips it when due.
        self._entry.cancelled = True


class Scheduler:
    """call_later(delay, fn) runs fn on the scheduler's thread after delay seconds."""

    def __init__(self, name: str = "scheduler") -> None:
        self._name = name
        self._heap: list[_Entry] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> TimerHandle:
        entry = _Entry(time.monotonic() + max(0.0, delay_s), next(self._seq), fn)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"scheduler {self._name} is closed")
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                # Started lazily so that building actors costs no thread until one is needed.
                # Daemon: a forgotten scheduler must never keep the process alive.
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return TimerHandle(entry)

    def close(self, timeout: float | None = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def pending(self) -> int:
        with self._cond:
            return sum(1 for e in self._heap if not e.cancelled)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0].due > time.monotonic()):
                    timeout = self._heap[0].due - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                entry = heapq.heappop(self._heap)
            if entry.cancelled:
                continue
            try:
                entry.fn()
            except ActorDeadError:
                pass  # the target actor stopped meanwhile; its timers no longer matter
            except Exception:
                log.exception("timer callback of %s failed", self._name)
