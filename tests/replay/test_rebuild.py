"""The bulk rebuild (`replay.reading.replay`: raw rows, types filtered in SQL, mutable patch
states, gc off) against the event-by-event fold the node runs live (`NodeProjection.apply`
per RecordedEvent, `adapters.ledger.projection.fold` per patch), on a generated store that
uses every event type the projections know, events they do not, odd streams, old schemas
(upcast), and several runs of the node.

Both must agree on everything: every patch view, every file, actor, tunnel, service, the
notifications, the runs, paused, and the position, for the whole store and for any `--until`
(position or time)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ledger.projection import PATCH_EVENT_TYPES, PatchView, fold, fold_all
from eventstore import CorruptEventError, NewEvent, RecordedEvent, SQLiteEventStore
from eventstore.rows import RowScan
from replay.reading import replay
from replay.state import FOLDED_TYPES
from tests.replay.generated import assert_same, build_store, lifting_upcasters, one_by_one


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rebuild") / "events.db"
    build_store(path)
    return path


@pytest.fixture(scope="module")
def events(db: Path) -> list[RecordedEvent]:
    with SQLiteEventStore(db, readonly=True, upcasters=lifting_upcasters()) as store:
        return store.read_all()


def test_the_store_uses_every_folded_type(events: list[RecordedEvent]) -> None:
    kinds = {e.type for e in events}
    assert kinds >= FOLDED_TYPES
    assert {"HealthChanged", "SomethingElse", "ActorSomethingNew"} <= kinds
    assert any(e.schema == 2 and e.type == "TestsFinished" for e in events)


def test_rebuild_equals_the_event_by_event_fold(db: Path, events: list[RecordedEvent]) -> None:
    with SQLiteEventStore(db, readonly=True, upcasters=lifting_upcasters()) as store:
        fast = replay(store)
    slow = one_by_one(events)
    assert_same(fast, slow)
    # ...and each patch is what the node's own fold (adapters.ledger.projection.fold) makes of
    # its stream
    for pid, view in fast.patches.items():
        folded: PatchView | None = None
        for event in events:
            if event.stream == f"patch-{pid}":
                folded = fold(folded, event)
        assert view == folded
    assert fold_all(events) == fast.patches
    assert fast.position == events[-1].position  # the last event is not even folded...
    assert events[-1].type == "NodeStopped"


def test_upcasting_applies_to_the_rebuild(db: Path) -> None:
    with SQLiteEventStore(db, readonly=True, upcasters=lifting_upcasters()) as store:
        lifted = replay(store)
    with SQLiteEventStore(db, readonly=True) as store:
        raw = replay(store)
        assert_same(raw, one_by_one(store.read_all()))
    statuses = [v.tests.get("status") for v in raw.patches.values() if v.tests]
    assert None in statuses  # schema 1 said "result"...
    assert None not in [v.tests.get("status") for v in lifted.patches.values() if v.tests]


@settings(max_examples=30, deadline=None)
@given(cut=st.floats(min_value=0.0, max_value=1.05))
def test_rebuild_until_a_position_or_a_time(
    db: Path, events: list[RecordedEvent], cut: float
) -> None:
    until = int(cut * events[-1].position)
    with SQLiteEventStore(db, readonly=True, upcasters=lifting_upcasters()) as store:
        by_position = replay(store, until=until)
        assert_same(by_position, one_by_one([e for e in events if e.position <= until]))
        k = min(len(events) - 1, int(cut * len(events)))
        when = events[k].recorded_at + timedelta(microseconds=int(cut * 3) - 1)
        by_time = replay(store, until=when)
        assert_same(by_time, one_by_one([e for e in events if e.recorded_at <= when]))


def test_projection_position_covers_skipped_types(tmp_path: Path) -> None:
    with SQLiteEventStore(tmp_path / "e.db") as store:
        store.append("node", [NewEvent("NodePaused", {})])
        store.append("actor-health", [NewEvent("HealthChanged", {}) for _ in range(3)])
    with SQLiteEventStore(tmp_path / "e.db", readonly=True) as store:
        assert replay(store).position == 4
        assert replay(store, until=2).position == 2
        assert replay(store, until=0).position == 0
        assert replay(store).paused is True


def test_a_corrupt_folded_payload_names_its_position(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    with SQLiteEventStore(path) as store:
        for i in range(5):
            store.append(f"patch-p{i}", [NewEvent("PatchReceived", {"patch_id": f"p{i}"})])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE events SET data = x'c1' WHERE position = 4")
    conn.commit()
    conn.close()
    with (
        SQLiteEventStore(path, readonly=True) as store,
        pytest.raises(CorruptEventError, match="position 4"),
    ):
        replay(store)


def test_text_that_is_not_utf8_is_read_leniently(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    with SQLiteEventStore(path) as store:
        for i in range(3):
            store.append(
                "workspace-main",
                [NewEvent("FilesChanged", {"paths": [{"path": f"f{i}", "sha256": "s"}]})],
            )
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE events SET stream = CAST(x'776f726b73706163652dff' AS TEXT) WHERE position = 2"
    )
    conn.commit()
    conn.close()
    with SQLiteEventStore(path, readonly=True) as store:
        fast = replay(store)
        assert_same(fast, one_by_one(store.read_all()))
    assert set(fast.files) == {"main", "\udcff"}


def test_a_row_scan_reads_only_the_types_asked_for(db: Path, events: list[RecordedEvent]) -> None:
    with SQLiteEventStore(db, readonly=True) as store:
        rows = list(RowScan(store, types=PATCH_EVENT_TYPES))
        everything = list(RowScan(store))
    assert [r[0] for r in rows] == [e.position for e in events if e.type in PATCH_EVENT_TYPES]
    assert [(r[0], r[1], r[2]) for r in everything] == [
        (e.position, e.stream, e.type) for e in events
    ]
    payloads: list[Mapping[str, Any]] = [r[4] for r in everything]
    assert len(payloads) == len(events)
