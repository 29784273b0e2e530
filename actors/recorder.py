"""Where supervision events go: a tiny interface, its event-store implementation, and a list
for tests.

`record` must never block and never raise: it is called from supervisor threads in the middle
of handling a failure, and a slow or broken store must not take supervision down with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from eventstore.events import NewEvent
from eventstore.protocol import EventStore

log = logging.getLogger(__name__)


class EventRecorder(Protocol):
    def record(self, stream: str, type: str, data: Mapping[str, Any]) -> None:
        """Queue one event for `stream`; returns at once, never raises."""


class StoreRecorder:
    """EventRecorder over the event store's non-blocking append_async.

    Appends from one thread keep their order: the store's writer commits requests FIFO.
    """

    def __init__(self, store: EventStore) -> None:
        self._store = store

    def record(self, stream: str, type: str, data: Mapping[str, Any]) -> None:
        try:
            future = self._store.append_async(stream, [NewEvent(type=type, data=dict(data))])
        except Exception:  # encoding errors, closed store: log, supervision goes on
            log.exception("cannot record %s on %s", type, stream)
            return
        future.add_done_callback(_log_failure(stream, type))


def _log_failure(stream: str, type: str) -> Callable[[Future[list[int]]], None]:
    def done(future: Future[list[int]]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("recording %s on %s failed: %r", type, stream, future.exception())

    return done


@dataclass(frozen=True, slots=True)
class Recorded:
    stream: str
    type: str
    data: Mapping[str, Any]
    at: float = field(default_factory=time.monotonic)  # lets tests measure delays


class ListRecorder:
    """Keeps events in memory, in recording order (tests, and a node without a store)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Recorded] = []

    def record(self, stream: str, type: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            self._events.append(Recorded(stream, type, dict(data)))

    def events(self, stream: str | None = None, type: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                e
                for e in self._events
                if (stream is None or e.stream == stream) and (type is None or e.type == type)
            ]

    def types(self, stream: str | None = None) -> list[str]:
        return [e.type for e in self.events(stream)]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


class NullRecorder:
    def record(self, stream: str, type: str, data: Mapping[str, Any]) -> None:
        pass
