"""The single writer of events.db: one write connection, and every request that arrived
together committed in one transaction (group commit).

Leader/follower: requests are queued; exactly one thread at a time is the leader, which drains
the queue into a transaction and commits it. A synchronous `append` that finds no leader leads
itself (so a lone appender pays no thread handoff); requests made with `append_async`, and work
still queued when a synchronous leader's own request is done, are led by the writer's own thread.
Whoever leads, only the leader touches the connection, so there is still one writer.

Why not an actor: appends come from every actor, the HTTP layer and the CLI; pykka's
one-message-at-a-time loop cannot batch them, and the store must work (and be contract-tested)
without an actor system.

Each request runs inside its own SAVEPOINT, so one failing request (a version conflict, a
duplicate event id) is rolled back alone and the others in the batch still commit. Callers
block on a Future that resolves only after COMMIT returned, so an acknowledged append is durable
at the configured synchronous level.
"""

from __future__ import annotations

import functools
import logging
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
# Stream versions kept to skip a SELECT per append. Patch streams are short-lived (a handful of
# appends within seconds), so a small cache catches nearly every hit; a large one was memory
# that grew with every patch the node ever saw (RELIABILITY.md O3).
_STREAM_CACHE_LIMIT = 4096


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
    blobs: Sequence[tuple[str, bytes]] = ()  # (sha256, content), committed with the events
    durable: bool = True  # False: this commit need not reach the disk (see EventStore.append)


@dataclass(slots=True)
class BlobRequest(_Request):
    sha256: str = ""
    content: bytes = b""


@dataclass(slots=True)
class CheckpointRequest(_Request):
    subscriber: str = ""
    position: int = 0


Request = AppendRequest | BlobRequest | CheckpointRequest

_WRITER_THREAD = object()  # marks the writer thread as the current leader


class Writer:
    """Owns the write connection. `submit` is thread-safe."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        on_commit: Callable[[int], None],
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        full: bool = False,
    ) -> None:
        self._connect = connect
        self._on_commit = on_commit
        # The connection is opened at synchronous=FULL when `full`; a batch of only
        # non-durable appends commits at NORMAL (WAL: no fsync), the next FULL commit
        # syncs the WAL with it.
        self._full = full
        self._sync_full = full
        self._clock_us = clock_us
        self._mutex = threading.Condition(threading.Lock())
        self._pending: list[Request] = []
        self._leader: object | None = None  # a caller's request, _WRITER_THREAD, or None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="eventstore-writer", daemon=True)
        # State below is touched only by the current leader.
        self._conn: sqlite3.Connection | None = None
        self._last_position = 0
        self._last_hash = GENESIS
        self._last_recorded_us = 0
        self._versions: dict[str, int] = {}

    def start(self) -> None:
        self._conn = self._connect()
        self._load_state()
        self._thread.start()

    def submit(self, request: Request, lead: bool = False) -> None:
        """Queue a request. With `lead`, the calling thread commits it itself when no other
        commit is under way (and returns once it is committed); otherwise it returns at once."""
        with self._mutex:
            if self._closed:
                raise StoreClosedError("the event store is closed")
            self._pending.append(request)
            if self._leader is not None:
                return  # the current leader will take it in its next batch
            if not lead:
                self._leader = _WRITER_THREAD
                self._mutex.notify_all()
                return
            self._leader = request
        self._lead(until=request)

    def close(self, timeout: float = 30.0) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            self._mutex.notify_all()
        self._thread.join(timeout)
        if self._conn is not None:
            self._conn.close()

    def _lead(self, until: Request | None) -> None:
        """Commit batches until the queue is empty, or (for a caller leading on its own
        behalf) until `until` is committed, handing what is left to the writer thread."""
        while True:
            with self._mutex:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                if not batch:
                    self._leader = None
                    if self._closed:
                        self._mutex.notify_all()  # close() waits for the last leader
                    return
            try:
                self._commit_batch(batch)
            except BaseException as exc:
                # A bug, not a database error (those are handled inside): fail this batch and
                # give up leadership rather than leave every later caller waiting forever.
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(StoreError(f"writer failed: {exc!r}"))
                self._hand_over()
                raise
            if until is not None and until.future.done():
                self._hand_over()
                return

    def _hand_over(self) -> None:
        """A caller stops leading: queued work goes to the writer thread. The writer thread is
        woken only when it has something to do, so a lone appender never pays a thread switch."""
        with self._mutex:
            self._leader = _WRITER_THREAD if self._pending else None
            if self._leader is not None or self._closed:
                self._mutex.notify_all()

    # --- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._mutex:
                while self._leader is not _WRITER_THREAD:
                    if self._closed and self._leader is None:
                        if not self._pending:
                            return
                        self._leader = _WRITER_THREAD  # drain what was queued before close
                        break
                    self._mutex.wait()
            self._lead(until=None)

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
            self._set_sync(conn, batch)
            conn.execute("BEGIN IMMEDIATE")
            for request in batch:
                before = (self._last_position, self._last_hash, self._last_recorded_us)
                try:
                    value = self._apply(conn, request)
                except StoreError as exc:
                    # _apply writes nothing when it fails (one atomic statement, or its own
                    # savepoint for very large appends), so only the in-memory head is undone.
                    # The stream-version cache needs no undo: it is written after the rows.
                    self._last_position, self._last_hash, self._last_recorded_us = before
                    results.append((request, None, exc))
                    continue
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

    def _set_sync(self, conn: sqlite3.Connection, batch: list[Request]) -> None:
        if not self._full:
            return
        full = any(not isinstance(r, AppendRequest) or r.durable for r in batch)
        if full != self._sync_full:
            conn.execute(f"PRAGMA synchronous = {'FULL' if full else 'NORMAL'}")
            self._sync_full = full

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
        """The hot path is one multi-row INSERT, which SQLite applies atomically, so a failing
        request leaves no rows behind without a SAVEPOINT. Duplicates and a foreign writer are
        noticed by the INSERT's constraint failure and handled off the hot path."""
        if not request.events:
            return []
        try:
            return self._insert(conn, request)
        except ConcurrencyError:
            # A retry of an append that did commit must get its positions back, even though
            # the stream has moved past the expected version since.
            existing = self._existing(conn, request)
            if existing is not None:
                return existing
            raise
        except sqlite3.IntegrityError as exc:
            existing = self._existing(conn, request)
            if existing is not None:
                return existing  # an idempotent retry of an append that is stored already
            if "events.position" not in str(exc):
                # e.g. the same new event id twice inside this very request
                raise DuplicateEventError(request.events[0].event_id, str(exc)) from exc
        # Another process appended since we read the head: we hold the write lock now, so
        # re-read it and try once more.
        self._load_state()
        try:
            return self._insert(conn, request)
        except sqlite3.IntegrityError as exc:
            raise DuplicateEventError(request.events[0].event_id, str(exc)) from exc

    def _insert(self, conn: sqlite3.Connection, request: AppendRequest) -> list[int]:
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
        params: list[object] = []
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
            params += (
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
            previous = digest
        count = len(request.events)
        if count <= _ROWS_PER_STATEMENT:
            conn.execute(_insert_sql(count), params)
        else:
            # Too many rows for one statement: a savepoint keeps the request all-or-nothing.
            conn.execute("SAVEPOINT big_append")
            try:
                for start in range(0, count, _ROWS_PER_STATEMENT):
                    chunk = params[start * 10 : (start + _ROWS_PER_STATEMENT) * 10]
                    conn.execute(_insert_sql(len(chunk) // 10), chunk)
            except sqlite3.Error:
                conn.execute("ROLLBACK TO big_append")
                conn.execute("RELEASE big_append")
                raise
            conn.execute("RELEASE big_append")
        if request.blobs:
            # In the same transaction as the events that name them: an event never refers to
            # a blob that is not there, and one commit (one fsync) covers both.
            conn.executemany(
                "INSERT OR IGNORE INTO blobs (sha256, size, content, created_at) "
                "VALUES (?, ?, ?, ?)",
                [(sha, len(content), content, recorded_us) for sha, content in request.blobs],
            )
        self._last_position, self._last_hash = position, previous
        self._last_recorded_us = recorded_us
        self._versions[stream] = version
        return list(range(position - count + 1, position + 1))


# 10 columns a row; SQLite allows 32766 bound parameters per statement since 3.32.
_ROWS_PER_STATEMENT = 3000


@functools.lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    values = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return (
        "INSERT INTO events (position, event_id, stream, version, type, recorded_at, schema, "
        f"data, meta, hash) VALUES {values}"
    )
