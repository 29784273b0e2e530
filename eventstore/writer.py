"""The single writer of events.db: one thread owns the write connection and commits every
request that arrived together in one transaction (group commit).

Why a thread and not an actor: appends come from every actor, the HTTP layer and the CLI; a
plain thread draining a queue batches them without pykka's one-message-at-a-time loop, and it
keeps the store usable (and contract-testable) without an actor system.

Each request runs inside its own SAVEPOINT, so one failing request (a version conflict, a
duplicate event id) is rolled back alone and the others in the batch still commit. Callers
block on a Future that resolves only after COMMIT returned, so an acknowledged append is durable
at the configured synchronous level.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from eventstore.errors import (
    ConcurrencyError,
    DuplicateEventError,
    StoreClosedError,
    StoreError,
)
from eventstore.events import ANY, NO_STREAM, ExpectedVersion
from eventstore.hashchain import GENESIS, chain_hash

log = logging.getLogger(__name__)

MAX_BATCH = 2000  # requests per transaction; bounds the time one commit holds the lock
_STREAM_CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A NewEvent already encoded by the caller's thread (so codec errors raise there)."""

    event_id: str
    type: str
    schema: int
    data: bytes
    meta: bytes


@dataclass(slots=True)
class _Request:
    future: Future[Any] = field(default_factory=Future)


@dataclass(slots=True)
class AppendRequest(_Request):
    stream: str = ""
    events: Sequence[EncodedEvent] = ()
    expected: ExpectedVersion = ANY


@dataclass(slots=True)
class BlobRequest(_Request):
    sha256: str = ""
    content: bytes = b""


@dataclass(slots=True)
class CheckpointRequest(_Request):
    subscriber: str = ""
    position: int = 0


@dataclass(slots=True)
class _Stop(_Request):
    pass


Request = AppendRequest | BlobRequest | CheckpointRequest


class Writer:
    """Owns the write connection. `submit` is thread-safe and never blocks on SQLite."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        on_commit: Callable[[int], None],
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self._connect = connect
        self._on_commit = on_commit
        self._clock_us = clock_us
        self._queue: queue.SimpleQueue[Request | _Stop] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, name="eventstore-writer", daemon=True)
        # State below is touched only by the writer thread.
        self._conn: sqlite3.Connection | None = None
        self._last_position = 0
        self._last_hash = GENESIS
        self._last_recorded_us = 0
        self._versions: dict[str, int] = {}

    def start(self) -> None:
        self._thread.start()
        self._ready.result()  # re-raises an error from opening the database

    def submit(self, request: Request) -> None:
        if self._closed:
            raise StoreClosedError("the event store is closed")
        self._queue.put(request)

    def close(self, timeout: float = 30.0) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_Stop())
        self._thread.join(timeout)

    # --- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._conn = self._connect()
            self._load_state()
        except (sqlite3.Error, StoreError) as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            stopping = False
            while not stopping:
                batch: list[Request] = []
                item = self._queue.get()
                while True:
                    if isinstance(item, _Stop):
                        stopping = True
                    else:
                        batch.append(item)
                    if len(batch) >= MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._commit_batch(batch)
            # Anything submitted after the stop marker raced close(): refuse it clearly.
            while True:
                try:
                    late = self._queue.get_nowait()
                except queue.Empty:
                    break
                late.future.set_exception(StoreClosedError("the event store is closed"))
        finally:
            self._conn.close()

    def _load_state(self) -> None:
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1"
        ).fetchone()
        if row:
            self._last_position, self._last_hash, self._last_recorded_us = row
        else:
            self._last_position, self._last_hash, self._last_recorded_us = 0, GENESIS, 0
        self._versions.clear()

    def _commit_batch(self, batch: list[Request]) -> None:
        conn = self._conn
        assert conn is not None
        results: list[tuple[_Request, Any, BaseException | None]] = []
        saved = (self._last_position, self._last_hash, self._last_recorded_us)
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Another process may have written since our last batch (an offline `ghost rollback`
            # holds the state lock, but be safe anyway): the lock is ours now, so re-read.
            if conn.execute("SELECT MAX(position) FROM events").fetchone()[0] != (
                self._last_position or None
            ):
                self._load_state()
                saved = (self._last_position, self._last_hash, self._last_recorded_us)
            for request in batch:
                conn.execute("SAVEPOINT request")
                before = (self._last_position, self._last_hash, self._last_recorded_us)
                try:
                    value = self._apply(conn, request)
                except StoreError as exc:
                    conn.execute("ROLLBACK TO request")
                    conn.execute("RELEASE request")
                    # The stream-version cache needs no undo: it is only written after a
                    # request's rows are in.
                    self._last_position, self._last_hash, self._last_recorded_us = before
                    results.append((request, None, exc))
                    continue
                conn.execute("RELEASE request")
                results.append((request, value, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # The whole transaction is lost (disk full, database locked past busy_timeout...):
            # fail every request in it with the store's error and reload the true state.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._last_position, self._last_hash, self._last_recorded_us = saved
            self._versions.clear()
            failure = StoreError(f"commit failed, nothing of this batch was written: {exc}")
            log.error("event store commit failed: %s", exc)
            for request in batch:
                request.future.set_exception(failure)
            try:
                self._load_state()
            except sqlite3.Error as reload_exc:
                log.error("event store could not reload its state: %s", reload_exc)
            return
        if len(self._versions) > _STREAM_CACHE_LIMIT:
            self._versions.clear()
        self._on_commit(self._last_position)
        for done, value, error in results:
            if error is None:
                done.future.set_result(value)
            else:
                done.future.set_exception(error)

    def _apply(self, conn: sqlite3.Connection, request: Request) -> Any:
        if isinstance(request, AppendRequest):
            return self._append(conn, request)
        if isinstance(request, BlobRequest):
            conn.execute(
                "INSERT OR IGNORE INTO blobs (sha256, size, content, created_at) "
                "VALUES (?, ?, ?, ?)",
                (request.sha256, len(request.content), request.content, self._clock_us()),
            )
            return request.sha256
        conn.execute(
            "INSERT INTO checkpoints (subscriber, position, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(subscriber) DO UPDATE SET position=excluded.position, "
            "updated_at=excluded.updated_at",
            (request.subscriber, request.position, self._clock_us()),
        )
        return None

    def _stream_version(self, conn: sqlite3.Connection, stream: str) -> int:
        version = self._versions.get(stream)
        if version is None:
            row = conn.execute("SELECT MAX(version) FROM events WHERE stream = ?", (stream,))
            version = int(row.fetchone()[0] or 0)
            self._versions[stream] = version
        return version

    def _existing(self, conn: sqlite3.Connection, request: AppendRequest) -> list[int] | None:
        """Positions of an append that is already stored (an idempotent retry), None when none
        of its event ids is stored; raises DuplicateEventError for a partial or foreign match."""
        ids = [e.event_id for e in request.events]
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT event_id, stream, type, position FROM events WHERE event_id IN ({marks})",
            ids,
        ).fetchall()
        if not rows:
            return None
        found = {row[0]: row for row in rows}
        positions: list[int] = []
        for event in request.events:
            row = found.get(event.event_id)
            if row is None:
                raise DuplicateEventError(
                    rows[0][0], "part of this append is already stored, part is not"
                )
            if row[1] != request.stream or row[2] != event.type:
                raise DuplicateEventError(
                    event.event_id,
                    f"as a {row[2]} in stream {row[1]!r} at position {row[3]}",
                )
            positions.append(row[3])
        if positions != list(range(positions[0], positions[0] + len(positions))):
            raise DuplicateEventError(ids[0], "stored, but not as one contiguous append")
        return positions

    def _append(self, conn: sqlite3.Connection, request: AppendRequest) -> list[int]:
        if not request.events:
            return []
        existing = self._existing(conn, request)
        if existing is not None:
            return existing
        stream = request.stream
        version = self._stream_version(conn, stream)
        expected = request.expected
        if expected is NO_STREAM:
            if version != 0:
                raise ConcurrencyError(stream, expected, version)
        elif expected is not ANY and expected != version:
            raise ConcurrencyError(stream, expected, version)
        # Monotonic recorded_at even if the wall clock steps back (a clock jump must not make
        # the log read as if later events happened earlier).
        recorded_us = max(self._clock_us(), self._last_recorded_us)
        position, previous = self._last_position, self._last_hash
        rows = []
        positions = []
        for event in request.events:
            position += 1
            version += 1
            digest = chain_hash(
                previous,
                position,
                event.event_id,
                stream,
                version,
                event.type,
                recorded_us,
                event.schema,
                event.data,
                event.meta,
            )
            rows.append(
                (
                    position,
                    event.event_id,
                    stream,
                    version,
                    event.type,
                    recorded_us,
                    event.schema,
                    event.data,
                    event.meta,
                    digest,
                )
            )
            positions.append(position)
            previous = digest
        try:
            conn.executemany(
                "INSERT INTO events (position, event_id, stream, version, type, recorded_at, "
                "schema, data, meta, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except sqlite3.IntegrityError as exc:
            # Duplicate ids inside one request, or a concurrent writer outside this process.
            raise DuplicateEventError(request.events[0].event_id, str(exc)) from exc
        self._last_position, self._last_hash = position, previous
        self._last_recorded_us = recorded_us
        self._versions[stream] = version
        return positions
