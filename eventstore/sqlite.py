"""The SQLite event store: events.db in WAL mode, one writer thread (group commit), readers on
their own connections, catch-up subscriptions, blobs, checkpoints and the hash-chain verifier.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from eventstore import codec
from eventstore.catalogue import EventType, unreadable_data
from eventstore.errors import (
    BlobNotFoundError,
    CorruptEventError,
    EventTooLargeError,
    StoreClosedError,
    StoreError,
)
from eventstore.events import ANY, ExpectedVersion, NewEvent, RecordedEvent, VerifyReport
from eventstore.hashchain import GENESIS, chain_hash
from eventstore.schema import SCHEMA_VERSION, current_version, migrate
from eventstore.subscription import CommitNotifier, StoreSubscription
from eventstore.upcasting import Upcasters
from eventstore.writer import (
    AppendRequest,
    BlobRequest,
    CheckpointRequest,
    EncodedEvent,
    Writer,
)

Durability = Literal["full", "normal"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = "position, event_id, stream, version, type, recorded_at, schema, data, meta, hash"
_BUSY_TIMEOUT_MS = 5000
_READONLY_POLL_S = 0.2  # how often a read-only store looks for another process's commits
_EMPTY_MAP = b"\x80"  # msgpack for {}


class SQLiteEventStore:
    """Implements eventstore.protocol.EventStore on one SQLite file.

    Thread-safe: any thread may append (appends are queued and committed in groups, see
    writer.py) and read (each reading thread gets its own connection).
    """

    def __init__(
        self,
        path: str | Path,
        durability: Durability = "full",
        upcasters: Upcasters | None = None,
        max_payload_bytes: int = codec.DEFAULT_MAX_DECODE_BYTES,
        readonly: bool = False,
    ) -> None:
        if durability not in ("full", "normal"):
            raise ValueError(f"durability must be 'full' or 'normal', not {durability!r}")
        self.path = Path(path)
        self.durability: Durability = durability
        self._upcasters = upcasters or Upcasters()
        self._max_payload = max_payload_bytes
        self._closed = False
        self._local = threading.local()
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._subscriptions: weakref.WeakSet[StoreSubscription] = weakref.WeakSet()
        self.readonly = readonly
        self._writer = Writer(self._connect_writer, self._committed, full=durability == "full")
        self._notifier = CommitNotifier()
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()
        if readonly:
            # Readers only (the CLI, tests watching a running node): no writer, no migration;
            # refuse a database this code does not understand rather than misread it.
            if not self.path.exists():
                raise StoreError(f"no event store at {self.path}")
            self._check_schema_readonly()
        else:
            try:
                self._writer.start()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the event store {self.path}: {exc}") from exc
        self._notifier.committed(self.last_position())

    # --- connections ---------------------------------------------------------------------------
    def _connect_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.durability.upper()}")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_schema_readonly(self) -> None:
        version = current_version(self._reader())
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, this ghost-runner reads "
                f"{SCHEMA_VERSION}; open it read-write once to migrate"
            )

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosedError("the event store is closed")
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is None or reader.conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.text_factory = _lenient_text
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = 1")
            reader = _Reader(conn)
            self._local.reader = reader
            with self._readers_lock:
                self._readers.add(reader)
        assert reader.conn is not None
        return reader.conn

    def _committed(self, position: int) -> None:
        self._notifier.committed(position)

    # --- writing -------------------------------------------------------------------------------
    def append_async(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        blobs: Sequence[bytes] = (),
    ) -> Future[list[int]]:
        return self._submit_append(stream, events, expected_version, blobs, lead=False)

    def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        blobs: Sequence[bytes] = (),
        durable: bool = True,
    ) -> list[int]:
        future = self._submit_append(stream, events, expected_version, blobs, True, durable)
        return future.result()

    def _submit_append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        blobs: Sequence[bytes],
        lead: bool,
        durable: bool = True,
    ) -> Future[list[int]]:
        if not stream:
            raise ValueError("stream must be a non-empty string")
        # Encoding happens in the caller's thread, so a CodecError raises right here.
        encoded = [
            EncodedEvent(e.event_id, e.type, e.schema, codec.encode(e.data), codec.encode(e.meta))
            for e in events
        ]
        for event in encoded:
            size = max(len(event.data), len(event.meta))
            if size > self._max_payload:
                raise EventTooLargeError(event.type, size, self._max_payload)
        request = AppendRequest(
            stream=stream,
            events=encoded,
            expected=expected_version,
            blobs=[(hashlib.sha256(b).hexdigest(), bytes(b)) for b in blobs],
            durable=durable,
        )
        self._submit(request, lead)
        return request.future

    def put_blob(self, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()
        request = BlobRequest(sha256=digest, content=bytes(content))
        self._submit(request, lead=True)
        return str(request.future.result())

    def save_checkpoint(self, subscriber: str, position: int) -> None:
        request = CheckpointRequest(subscriber=subscriber, position=position)
        self._submit(request, lead=True)
        request.future.result()

    def _submit(self, request: AppendRequest | BlobRequest | CheckpointRequest, lead: bool) -> None:
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")
        self._writer.submit(request, lead=lead)

    # --- reading -------------------------------------------------------------------------------
    def _decode(self, row: tuple[Any, ...]) -> RecordedEvent:
        position, event_id, stream, version, type_, recorded_us, schema, data, meta, digest = row
        if max(len(data), len(meta)) > self._max_payload:
            return self._unreadable(row)
        try:
            payload = codec.decode_mapping(data, self._max_payload)
            # Most events carry no meta: skip the decoder for the empty map.
            meta_map = {} if meta == _EMPTY_MAP else codec.decode_mapping(meta, self._max_payload)
        except CorruptEventError as exc:
            raise CorruptEventError(f"event at position {position}: {exc}") from exc
        data_map: Mapping[str, Any] = payload
        if self._upcasters:
            schema, data_map = self._upcasters.upcast(type_, schema, payload)
        return RecordedEvent(
            position,
            event_id,
            stream,
            version,
            type_,
            _EPOCH + timedelta(microseconds=recorded_us),
            data_map,
            meta_map,
            digest.hex(),
            schema,
        )

    def _unreadable(self, row: tuple[Any, ...]) -> RecordedEvent:
        """A stand-in for an intact event too large to decode (see EventType.EVENT_UNREADABLE):
        its place in the stream and the chain are kept, its data is not read."""
        position, event_id, stream, version, type_, recorded_us, schema, data, meta, digest = row
        return RecordedEvent(
            position,
            event_id,
            stream,
            version,
            EventType.EVENT_UNREADABLE.value,
            _EPOCH + timedelta(microseconds=recorded_us),
            unreadable_data(type_, max(len(data), len(meta)), self._max_payload),
            {},
            digest.hex(),
            schema,
        )

    def _query(self, sql: str, params: Sequence[object]) -> list[RecordedEvent]:
        try:
            rows = self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        return [self._decode(row) for row in rows]

    def read_stream(
        self, stream: str, after_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        return self._query(
            f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND version > ? "
            "ORDER BY version LIMIT ?",
            (stream, after_version, -1 if limit is None else limit),
        )

    def read_all(
        self,
        after: int = 0,
        limit: int | None = None,
        types: Sequence[str] | None = None,
        streams: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        return self._read(after, None, limit, types, streams)

    def _read(
        self,
        after: int,
        upto: int | None,
        limit: int | None,
        types: Sequence[str] | None,
        streams: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        where = ["position > ?"]
        params: list[object] = [after]
        if upto is not None:
            where.append("position <= ?")
            params.append(upto)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(types)
        if streams:
            where.append(f"stream IN ({','.join('?' * len(streams))})")
            params.extend(streams)
        params.append(-1 if limit is None else limit)
        return self._query(
            f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY position LIMIT ?",
            params,
        )

    def iter_all(self, after: int = 0, batch: int = 10_000) -> Iterator[RecordedEvent]:
        while True:
            page = self._read(after, None, batch, None)
            yield from page
            if len(page) < batch:
                return
            after = page[-1].position

    def last_position(self) -> int:
        row = self._reader().execute("SELECT MAX(position) FROM events").fetchone()
        return int(row[0] or 0)

    def stream_version(self, stream: str) -> int:
        row = (
            self._reader()
            .execute("SELECT MAX(version) FROM events WHERE stream = ?", (stream,))
            .fetchone()
        )
        return int(row[0] or 0)

    def streams(self, prefix: str, limit: int = 100) -> list[str]:
        # A range on the (stream, version) index, not a LIKE: `_` and `%` mean nothing here.
        rows = (
            self._reader()
            .execute(
                "SELECT DISTINCT stream FROM events WHERE stream >= ? AND stream < ? "
                "ORDER BY stream LIMIT ?",
                (prefix, prefix + "\U0010ffff", max(0, limit)),
            )
            .fetchall()
        )
        return [str(r[0]) for r in rows]

    def get_blob(self, sha256: str) -> bytes:
        row = (
            self._reader()
            .execute("SELECT content FROM blobs WHERE sha256 = ?", (sha256,))
            .fetchone()
        )
        if row is None:
            raise BlobNotFoundError(f"no blob {sha256}")
        content = bytes(row[0])
        if hashlib.sha256(content).hexdigest() != sha256:
            raise CorruptEventError(f"blob {sha256} does not match its hash")
        return content

    def has_blob(self, sha256: str) -> bool:
        row = self._reader().execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha256,))
        return row.fetchone() is not None

    def load_checkpoint(self, subscriber: str) -> int:
        row = (
            self._reader()
            .execute("SELECT position FROM checkpoints WHERE subscriber = ?", (subscriber,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def subscribe(self, after: int = 0, types: Sequence[str] | None = None) -> StoreSubscription:
        if self._closed:
            raise StoreClosedError("the event store is closed")
        subscription = StoreSubscription(
            self._notifier,
            lambda lo, hi, limit, kinds: self._read(lo, hi, limit, kinds),
            after,
            types,
        )
        self._subscriptions.add(subscription)
        if self.readonly:
            self._start_commit_poller()
        return subscription

    def _start_commit_poller(self) -> None:
        """A read-only store has no writer to signal its commits: another process (the node)
        appends. So that its subscriptions go live, a thread polls the last committed
        position and signals the notifier, as the writer does after each COMMIT."""
        with self._readers_lock:
            if self._poller is not None:
                return
            self._poller = threading.Thread(
                target=self._poll_commits, name="eventstore-readonly-poller", daemon=True
            )
            self._poller.start()

    def _poll_commits(self) -> None:
        while not self._stop_polling.wait(_READONLY_POLL_S):
            try:
                self._notifier.committed(self.last_position())
            except (StoreError, sqlite3.Error):
                if self._closed:
                    return  # closed under us: its connection went with it

    def verify(self) -> VerifyReport:
        """Walk the whole chain on a dedicated connection; report the first broken position:
        an edited row (its hash no longer follows), a deleted row (a missing position), an
        inserted row (a position or link that does not follow)."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.text_factory = _lenient_text
        try:
            previous, expected, checked = GENESIS, 1, 0
            cursor = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY position")
            for row in cursor:
                position = row[0]
                if position != expected:
                    problem = (
                        f"position {expected} is missing (next stored is {position})"
                        if position > expected
                        else f"unexpected position {position}"
                    )
                    return VerifyReport(checked, position, expected, problem)
                try:
                    if not isinstance(row[7], bytes) or not isinstance(row[8], bytes):
                        raise TypeError("data and meta must be stored as blobs")
                    digest = chain_hash(previous, *row[:9])
                except (TypeError, ValueError, UnicodeEncodeError) as exc:
                    # Column types changed behind our back: the row cannot be what we wrote.
                    return VerifyReport(
                        checked, position, position, f"position {position} was altered: {exc}"
                    )
                if digest != row[9]:
                    return VerifyReport(
                        checked,
                        position,
                        position,
                        f"hash of position {position} does not follow the chain: the row was "
                        "edited, inserted, or an earlier row was changed",
                    )
                previous, expected, checked = digest, expected + 1, checked + 1
            return VerifyReport(checked, expected - 1)
        except sqlite3.Error as exc:
            raise StoreError(f"verify failed: {exc}") from exc
        finally:
            conn.close()

    @property
    def upcasters(self) -> Upcasters:
        """The upcasters every read goes through (state derived from reads depends on them)."""
        return self._upcasters

    # --- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        if not self.readonly:
            self._writer.close()  # commits everything already queued
        self._closed = True
        self._stop_polling.set()
        if self._poller is not None:
            self._poller.join(5)  # before its connection is closed under it
        for subscription in list(self._subscriptions):
            subscription.close()
        self._notifier.close()
        with self._readers_lock:
            for reader in list(self._readers):
                reader.close()

    def __enter__(self) -> SQLiteEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lenient_text(raw: bytes) -> str:
    # A tampered row may hold text that is not UTF-8: read it anyway, so that verify() and
    # the decoder report the position instead of sqlite3 failing the whole query.
    return raw.decode("utf-8", "surrogateescape")


class _Reader:
    """A reading thread's connection, closable from the thread that closes the store."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn: sqlite3.Connection | None = conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
