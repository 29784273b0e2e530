"""Behaviour of the SQLite backend beyond the contract: pragmas, locks held by other processes,
upcasting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from eventstore import NewEvent, SQLiteEventStore, StoreError
from eventstore.upcasting import Upcasters


@pytest.mark.parametrize(("durability", "level"), [("full", 2), ("normal", 1)])
def test_durability_sets_synchronous(tmp_path: Path, durability: str, level: int) -> None:
    with SQLiteEventStore(tmp_path / "e.db", durability=durability) as store:  # type: ignore[arg-type]
        store.append("s", [NewEvent("T")])
        # synchronous is per connection: inspect the writer's own (a test-only peek).
        conn = store._writer._conn
        assert conn is not None
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == level
    assert sqlite3.connect(tmp_path / "e.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_non_durable_append_commits_without_sync_and_the_next_durable_one_syncs(
    tmp_path: Path,
) -> None:
    with SQLiteEventStore(tmp_path / "e.db", durability="full") as store:
        conn = store._writer._conn  # a test-only peek at the writer's connection
        assert conn is not None
        store.append("s", [NewEvent("T", {"n": 1})], durable=False)
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: no WAL fsync
        store.put_blob(b"x")  # anything but a non-durable append is durable
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        store.append("s", [NewEvent("T", {"n": 2})], durable=False)
        store.append("s", [NewEvent("T", {"n": 3})])
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    with SQLiteEventStore(tmp_path / "e.db", durability="normal") as store:
        store.append("s", [NewEvent("T", {"n": 4})])  # "normal" never asks for FULL
        conn = store._writer._conn
        assert conn is not None
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert [e.data["n"] for e in store.read_all()] == [1, 2, 3, 4]


def test_bad_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        SQLiteEventStore(tmp_path / "e.db", durability="fast")  # type: ignore[arg-type]


def test_database_locked_by_another_process_fails_clearly_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    with SQLiteEventStore(path) as store:
        store.append("s", [NewEvent("T", {"n": 1})])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        future = store.append_async("s", [NewEvent("T", {"n": 2})])
        with pytest.raises(StoreError, match="locked"):
            future.result(timeout=30)
        other.execute("ROLLBACK")
        other.close()
        assert store.append("s", [NewEvent("T", {"n": 3})]) == [2]
        assert [e.data["n"] for e in store.read_all()] == [1, 3]
        assert store.verify().ok


def test_upcasters_lift_old_schemas_on_read(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    with SQLiteEventStore(path) as store:
        store.append("s", [NewEvent("PatchApplied", {"file": "a.py"}, schema=1)])
        store.append("s", [NewEvent("PatchApplied", {"files": ["b.py"]}, schema=2)])
    upcasters = Upcasters()
    upcasters.register("PatchApplied", 1, lambda d: {"files": [d["file"]]})
    with SQLiteEventStore(path, upcasters=upcasters) as store:
        events = store.read_all()
    assert [(e.schema, e.data) for e in events] == [
        (2, {"files": ["a.py"]}),
        (2, {"files": ["b.py"]}),
    ]
    with pytest.raises(ValueError, match="exists already"):
        upcasters.register("PatchApplied", 1, lambda d: d)


def test_readonly_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    with pytest.raises(StoreError, match="no event store"):
        SQLiteEventStore(path, readonly=True)
    with SQLiteEventStore(path) as writer:
        writer.append("s", [NewEvent("T", {"n": 1})])
        with SQLiteEventStore(path, readonly=True) as reader:
            assert [e.data["n"] for e in reader.read_all()] == [1]
            writer.append("s", [NewEvent("T", {"n": 2})])
            assert reader.last_position() == 2
            with pytest.raises(StoreError, match="read-only"):
                reader.append("s", [NewEvent("T")])
            with pytest.raises(StoreError, match="read-only"):
                reader.put_blob(b"x")
            assert reader.verify().ok


def test_unopenable_path_raises_the_stores_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the event store"):
        SQLiteEventStore(tmp_path / "missing-dir" / "e.db")
