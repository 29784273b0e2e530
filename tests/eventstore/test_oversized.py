"""An event too large for readers (hostile-input issue, hole 1): the writer refuses it, and
a store that holds one anyway (written under a larger limit) still serves every other event,
that one as EventUnreadable, to every reader: read_all, read_stream, RowScan and verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore import EventTooLargeError, NewEvent, SQLiteEventStore
from eventstore.rows import RowScan

LIMIT = 4096


def test_the_writer_refuses_an_event_it_could_not_read_back(tmp_path: Path) -> None:
    with SQLiteEventStore(tmp_path / "e.db", max_payload_bytes=LIMIT) as store:
        store.append("s", [NewEvent("Small", {"x": 1})])
        with pytest.raises(EventTooLargeError, match="Big"):
            store.append("s", [NewEvent("Big", {"x": "y" * LIMIT})])
        with pytest.raises(EventTooLargeError):
            store.append("s", [NewEvent("BigMeta", {}, meta={"m": "y" * LIMIT})])
        assert [e.type for e in store.read_all()] == ["Small"]
        assert store.append("s", [NewEvent("After")]) == [2]  # nothing half-written


def test_a_stored_oversized_event_is_shown_as_unreadable_not_fatal(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    with SQLiteEventStore(db) as store:  # the default (large) limit lets it in
        store.append("patch-a", [NewEvent("PatchReceived", {"n": 1})])
        store.append("patch-a", [NewEvent("PatchRejected", {"details": "z" * (2 * LIMIT)})])
        store.append("patch-b", [NewEvent("PatchReceived", {"n": 2})])
    with SQLiteEventStore(db, max_payload_bytes=LIMIT) as store:
        events = store.read_all()
        assert [e.type for e in events] == ["PatchReceived", "EventUnreadable", "PatchReceived"]
        bad = events[1]
        assert bad.data["type"] == "PatchRejected"
        assert bad.data["bytes"] > LIMIT
        assert (bad.stream, bad.version) == ("patch-a", 2)
        assert [e.type for e in store.read_stream("patch-a")] == [
            "PatchReceived",
            "EventUnreadable",
        ]
        assert store.verify().ok  # its bytes are intact: the chain still holds
        store.append("patch-c", [NewEvent("PatchReceived")])  # and the writer goes on
        rows = list(RowScan(store))
        assert [r[2] for r in rows] == [
            "PatchReceived",
            "EventUnreadable",
            "PatchReceived",
            "PatchReceived",
        ]
        assert rows[1][4]["type"] == "PatchRejected"
