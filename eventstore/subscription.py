"""Catch-up-then-live subscriptions over the event store.

A subscription reads committed events after its position in pages; when it has caught up it
waits on the store's commit notifier (a Condition the writer signals after each COMMIT) instead
of polling. Positions are assigned by the single writer inside its transaction and become
visible only at COMMIT, so everything at or below the notified position is already readable:
reading `position > mine AND position <= committed` can neither skip nor repeat an event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

from eventstore.events import RecordedEvent


class CommitNotifier:
    """The highest committed position, with a way to wait for it to pass a given one."""

    def __init__(self, position: int = 0) -> None:
        self._position = position
        self._cond = threading.Condition()
        self._closed = False

    @property
    def position(self) -> int:
        return self._position

    def committed(self, position: int) -> None:
        with self._cond:
            if position > self._position:
                self._position = position
            self._cond.notify_all()

    def wait_beyond(
        self,
        position: int,
        timeout: float | None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> int:
        """Wait until the committed position exceeds `position`, the timeout ends, the notifier
        closes or `cancelled()` turns true (checked whenever `wake_all` is called); returns the
        committed position."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._position <= position and not self._closed and not cancelled():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._position

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


ReadRange = Callable[[int, int, int, Sequence[str] | None], list[RecordedEvent]]


class StoreSubscription:
    """See the module docstring. `read_range(after, upto, limit, types)` reads committed
    events with after < position <= upto, in order, at most `limit` of them."""

    def __init__(
        self,
        notifier: CommitNotifier,
        read_range: ReadRange,
        after: int,
        types: Sequence[str] | None,
    ) -> None:
        self._notifier = notifier
        self._read_range = read_range
        self._position = after
        self._types = tuple(types) if types else None
        self._closed = threading.Event()
        self._lock = threading.Lock()  # one poller at a time keeps the position consistent

    @property
    def position(self) -> int:
        return self._position

    @property
    def committed(self) -> int:
        """The store's last committed position, which may be ahead of `position`."""
        return self._notifier.position

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def poll(self, timeout: float | None = None, max_count: int = 1000) -> list[RecordedEvent]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._closed.is_set():
                upto = self._notifier.position
                if upto > self._position:
                    events = self._read_range(self._position, upto, max_count, self._types)
                    if self._types is not None and len(events) < max_count:
                        # Nothing else of our types up to `upto`: skip the rest of the range.
                        self._position = upto
                    elif events:
                        self._position = events[-1].position
                    if events:
                        return events
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._notifier.wait_beyond(self._position, remaining, self._closed.is_set)
        return []

    def wait(self, timeout: float | None = None) -> bool:
        """Wait, without reading, until something is committed past this subscription's
        position (True), or the timeout ends or the subscription closes (False). For a
        follower that lets a burst of commits settle before one `poll` reads them all."""
        committed = self._notifier.wait_beyond(self._position, timeout, self._closed.is_set)
        return committed > self._position and not self._closed.is_set()

    def close(self) -> None:
        self._closed.set()
        self._notifier.wake_all()

    def __iter__(self) -> Iterator[RecordedEvent]:
        while not self._closed.is_set():
            yield from self.poll(timeout=None)
