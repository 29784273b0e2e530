"""Raw event rows for bulk readers (a projection rebuild), without a RecordedEvent per event.

`RowScan(store, types=...)` reads `(position, stream, type, recorded_us, data)` straight from
SQLite in position order: the type filter runs in SQL (rows of other types are never fetched,
let alone decoded), only those five columns are read, and `recorded_at` stays the stored integer
(microseconds since the epoch, UTC) until a consumer asks for a datetime (`recorded_at(us)`, the
same value a RecordedEvent holds). Payloads are decoded with the store's codec, size limit and
upcasters, exactly as the store's own readers decode them, so a consumer sees the same data.

A scan runs on its own read-only connection inside one read transaction: its bound (`position`,
the last stored position in range, whatever its type) and its rows come from one snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

import msgpack

from eventstore import codec
from eventstore.catalogue import EventType, unreadable_data
from eventstore.errors import CorruptEventError, StoreClosedError, StoreError
from eventstore.sqlite import SQLiteEventStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_BATCH = 1000  # rows per fetch: small enough that a batch's payloads are still in cache
_PROGRESS_EVERY = 10_000  # positions between progress calls
_MAX_POSITION = 2**63 - 1

# position, stream, type, recorded_at (µs since the epoch), data (decoded and upcast)
Row = tuple[int, str, str, int, Mapping[str, Any]]


def recorded_at(us: int) -> datetime:
    """A row's recorded time as the store's readers give it (RecordedEvent.recorded_at)."""
    return _EPOCH + timedelta(0, 0, us)


def to_us(when: datetime) -> int:
    """The stored form of an aware datetime: microseconds since the epoch."""
    return (when - _EPOCH) // _MICROSECOND


class RowScan:
    """The events in `(after, upto]` (and recorded at or before `until_us`, which relies on
    recorded_at never decreasing along positions, as the writer guarantees: the bound is found
    by binary search), of the given types and of types starting with one of `type_prefixes`,
    in position order. `types=None` and no prefixes: every type.

    `position` is the last stored position within the bounds, known before iterating: a
    consumer that skipped types in SQL has still seen the store up to there."""

    def __init__(
        self,
        store: SQLiteEventStore,
        types: Collection[str] | None = None,
        type_prefixes: Collection[str] = (),
        after: int = 0,
        upto: int | None = None,
        until_us: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        if store._closed:
            raise StoreClosedError("the event store is closed")
        # Package-internal: the scan decodes exactly as the store's readers do.
        self._upcasters = store._upcasters
        self._max_payload = store._max_payload
        self._progress = progress
        self._after = after
        try:
            self._conn = sqlite3.connect(store.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {store.path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA query_only = 1")
            self._conn.execute("BEGIN")  # one snapshot for the bound and the rows
            if until_us is not None:
                first_later = self._first_position_after(until_us)
                upto = first_later - 1 if upto is None else min(upto, first_later - 1)
            row = self._conn.execute(
                "SELECT MAX(position) FROM events WHERE position > ? AND position <= ?",
                (after, _MAX_POSITION if upto is None else upto),
            ).fetchone()
            self._filter = self._type_filter(types, tuple(type_prefixes))
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"read failed: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise
        self.position: int = int(row[0]) if row[0] is not None else after
        self._done = False

    def _type_filter(
        self, types: Collection[str] | None, prefixes: tuple[str, ...]
    ) -> tuple[str, list[object]]:
        """The SQL condition on `type` (and its parameters) that selects the wanted types:
        the shorter of `IN (wanted)` and `NOT IN (unwanted)` over the types the store holds
        (a handful, found by a skip-scan of the (type, position) index), or none at all."""
        if types is None and not prefixes:
            return "", []
        wanted = frozenset(types or ())
        try:
            stored = self._stored_types()
        except (sqlite3.OperationalError, UnicodeError):  # a type that is not UTF-8 text
            stored = None
        if stored is None:  # filter by the wanted names themselves
            terms = [f"+type IN ({','.join('?' * len(wanted))})"] if wanted else []
            params: list[object] = [*sorted(wanted)]
            for prefix in prefixes:
                terms.append("substr(type, 1, ?) = ?")  # case-sensitive, unlike LIKE
                params += [len(prefix), prefix]
            return f" AND ({' OR '.join(terms)})" if terms else " AND 0", params
        keep: list[object] = [t for t in stored if t in wanted or t.startswith(prefixes)]
        skip: list[object] = [t for t in stored if t not in keep]
        if not skip:
            return "", []
        if not keep:
            return " AND 0", []
        # `+type`: filter while walking the table in position order, rather than through the
        # (type, position) index and a sort of most of the table.
        if len(skip) <= len(keep):
            return f" AND +type NOT IN ({','.join('?' * len(skip))})", skip
        return f" AND +type IN ({','.join('?' * len(keep))})", keep

    def _stored_types(self) -> list[str]:
        found: list[str] = []
        row = self._conn.execute("SELECT MIN(type) FROM events").fetchone()
        while row[0] is not None:
            found.append(row[0])
            row = self._conn.execute(
                "SELECT MIN(type) FROM events WHERE type > ?", (row[0],)
            ).fetchone()
        return found

    def _first_position_after(self, until_us: int) -> int:
        """The first position whose row (or the first row after it) was recorded after
        `until_us`; one past the last position if none was."""
        last = self._conn.execute("SELECT MAX(position) FROM events").fetchone()[0] or 0
        lo, hi = 1, int(last) + 1
        while lo < hi:
            mid = (lo + hi) // 2
            found = self._conn.execute(
                "SELECT recorded_at FROM events WHERE position >= ? ORDER BY position LIMIT 1",
                (mid,),
            ).fetchone()
            if found is None or found[0] > until_us:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def chain_hash_at(self, position: int) -> bytes | None:
        """The stored hash-chain link of the event at `position` (None: no such event), from
        the scan's snapshot: what a derived state taken at `position` is checked against."""
        try:
            row = self._conn.execute(
                "SELECT hash FROM events WHERE position = ?", (position,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        return row[0] if row is not None and isinstance(row[0], bytes) else None

    def resume_after(self, position: int) -> None:
        """Read only the events after `position` (a state already folded up to there), within
        the same bounds and snapshot. Before iterating."""
        if self._done:
            raise RuntimeError("resume_after() after the scan was iterated")
        if not self._after <= position <= self.position:
            raise ValueError(f"position {position} is outside ({self._after}, {self.position}]")
        self._after = position

    def __iter__(self) -> Iterator[Row]:
        if self._done:
            raise RuntimeError("a RowScan is iterated once")
        self._done = True
        # Rows are made batch by batch in C (zip), not one by one in a generator.
        return chain.from_iterable(self._batches())

    def close(self) -> None:
        self._conn.close()

    def _batches(self) -> Iterator[Iterable[Row]]:
        condition, type_params = self._filter
        # The schema column only matters to upcasters.
        schema = "schema" if self._upcasters else "1"
        sql = (
            f"SELECT position, stream, type, recorded_at, {schema}, data FROM events "
            f"WHERE position <= ?{condition} AND position > ? ORDER BY position"
        )
        params = (self.position, *type_params)
        progress, reported = self._progress, self._after
        last = self._after
        try:
            while True:
                try:
                    cursor = self._conn.execute(sql, (*params, last))
                    while batch := cursor.fetchmany(_BATCH):
                        last = batch[-1][0]
                        yield self._decode(batch)
                        if progress is not None and last - reported >= _PROGRESS_EVERY:
                            reported = last
                            progress(last)
                    return
                except sqlite3.OperationalError as exc:
                    # Text that is not UTF-8 (a tampered row): go on from the last good row,
                    # reading text as the store's readers do. The default text factory
                    # is kept for the common case: it is much cheaper than a Python one.
                    if self._conn.text_factory is _lenient_text or "decode" not in str(exc):
                        raise
                    self._conn.text_factory = _lenient_text
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        finally:
            self._conn.close()

    def _decode(self, batch: list[tuple[Any, ...]]) -> Iterable[Row]:
        positions, streams, kinds, times, schemas, datas = zip(*batch, strict=True)
        payloads: list[Mapping[str, Any]] | None = None
        # codec.decode_mapping's fast path with its checks made once per batch: the size
        # limit before unpacking, a map after; any failure redoes the batch through the codec.
        try:
            if max(map(len, datas)) <= self._max_payload:
                unpackb, hook = msgpack.unpackb, codec._ext_hook
                payloads = [
                    unpackb(d, raw=False, timestamp=3, strict_map_key=False, ext_hook=hook)
                    for d in datas
                ]
                if set(map(type, payloads)) != {dict}:
                    payloads = None
        except Exception:  # noqa: BLE001 - redone row by row below, with the codec's errors
            payloads = None
        if payloads is None:
            payloads = [
                self._decode_one(p, k, d) for p, k, d in zip(positions, kinds, datas, strict=True)
            ]
            if max(map(len, datas)) > self._max_payload:
                kinds = tuple(
                    EventType.EVENT_UNREADABLE.value if len(d) > self._max_payload else k
                    for k, d in zip(kinds, datas, strict=True)
                )
        if self._upcasters:
            upcast = self._upcasters.upcast
            payloads = [
                upcast(kind, schema, data)[1]
                for kind, schema, data in zip(kinds, schemas, payloads, strict=True)
            ]
        return zip(positions, streams, kinds, times, payloads, strict=True)

    def _decode_one(self, position: int, kind: str, data: bytes) -> Mapping[str, Any]:
        """One payload exactly as the store's readers decode it (a CorruptEventError names
        the position; one too large to decode becomes EventUnreadable's data)."""
        if len(data) > self._max_payload:
            return unreadable_data(kind, len(data), self._max_payload)
        try:
            return codec.decode_mapping(data, self._max_payload)
        except CorruptEventError as exc:
            raise CorruptEventError(f"event at position {position}: {exc}") from exc


def _lenient_text(raw: bytes) -> str:
    # As the store's readers: a tampered row's text that is not UTF-8 is still read.
    return raw.decode("utf-8", "surrogateescape")
