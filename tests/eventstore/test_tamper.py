"""Edits, deletions and insertions made behind the store's back with plain sqlite3 are found
by verify(), which names the first bad position; corrupt payloads raise the store's error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from eventstore import CorruptEventError, NewEvent, SQLiteEventStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    with SQLiteEventStore(path) as store:
        for i in range(20):
            store.append(f"s-{i % 4}", [NewEvent("T", {"i": i})])
        assert store.verify().ok
    return path


def tamper(path: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def verify(path: Path) -> tuple[int | None, str | None]:
    with SQLiteEventStore(path) as store:
        report = store.verify()
    return report.first_bad_position, report.problem


def test_edited_data(db: Path) -> None:
    tamper(db, "UPDATE events SET data = ? WHERE position = 7", b"\x81\xa1i\x63")
    assert verify(db)[0] == 7


@pytest.mark.parametrize("column", ["type", "stream", "event_id"])
def test_edited_text_columns(db: Path, column: str) -> None:
    tamper(db, f"UPDATE events SET {column} = 'forged' WHERE position = 12")
    assert verify(db)[0] == 12


def test_edited_time(db: Path) -> None:
    tamper(db, "UPDATE events SET recorded_at = recorded_at - 1 WHERE position = 3")
    assert verify(db)[0] == 3


def test_deleted_row(db: Path) -> None:
    tamper(db, "DELETE FROM events WHERE position = 9")
    bad, problem = verify(db)
    assert bad == 9
    assert problem is not None
    assert "missing" in problem


def test_deleted_last_row_then_appends_continue_cleanly(db: Path) -> None:
    # Truncating the tail is only detectable against an outside anchor; what matters is that
    # the store keeps a valid chain afterwards instead of writing a broken link.
    tamper(db, "DELETE FROM events WHERE position = 20")
    with SQLiteEventStore(db) as store:
        assert store.append("s", [NewEvent("T")]) == [20]
        assert store.verify().ok


def test_inserted_row_in_a_gap(db: Path) -> None:
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT * FROM events WHERE position = 5").fetchone()
    conn.execute("DELETE FROM events WHERE position = 5")
    conn.execute(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (5, "forged-id", *row[2:]),
    )
    conn.commit()
    conn.close()
    assert verify(db)[0] == 5


def test_inserted_row_at_the_end(db: Path) -> None:
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT * FROM events WHERE position = 20").fetchone()
    conn.execute(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (21, "forged", row[2], 99, *row[4:]),
    )
    conn.commit()
    conn.close()
    assert verify(db)[0] == 21


def test_renumbered_rows(db: Path) -> None:
    tamper(db, "UPDATE events SET position = position + 100 WHERE position >= 15")
    assert verify(db)[0] == 15


def test_corrupt_payload_raises_the_stores_error_naming_the_position(db: Path) -> None:
    tamper(db, "UPDATE events SET data = ? WHERE position = 4", b"\x92\x01")
    with SQLiteEventStore(db) as store:
        with pytest.raises(CorruptEventError, match="position 4"):
            store.read_all()
        assert [e.position for e in store.read_all(limit=3)] == [1, 2, 3]
        assert store.append("s", [NewEvent("T")]) == [21]  # the writer is unaffected


def test_corrupt_blob_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with SQLiteEventStore(path) as store:
        digest = store.put_blob(b"original")
    tamper(path, "UPDATE blobs SET content = ? WHERE sha256 = ?", b"forged", digest)
    with SQLiteEventStore(path) as store, pytest.raises(CorruptEventError, match=digest):
        store.get_blob(digest)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SQLiteEventStore(path).close()
    tamper(path, "INSERT INTO schema_version VALUES (999, 0)")
    with pytest.raises(Exception, match="newer than this ghost-runner"):
        SQLiteEventStore(path)


def test_column_turned_into_invalid_text(db: Path) -> None:
    # `||` makes SQLite store TEXT; with bytes that are not UTF-8 the row cannot even be read
    # as written: verify() and readers must still name the position.
    tamper(db, "UPDATE events SET data = data || x'ff' WHERE position = 6")
    assert verify(db)[0] == 6
    with SQLiteEventStore(db) as store, pytest.raises(CorruptEventError, match="position 6"):
        store.read_all()
