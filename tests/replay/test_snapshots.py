"""Projection snapshots (replay/snapshots.py): a replay that starts from one equals a replay from
scratch, wherever the snapshot was taken; a snapshot that cannot be trusted (another store,
another version of the folds or the upcasters, a damaged file, an event changed under it) is
skipped, never believed; `ghost replay --verify` never uses one."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import NewEvent, SQLiteEventStore, codec
from eventstore.rows import RowScan
from eventstore.upcasting import Upcasters
from replay import reading
from replay import snapshots as snapshot_module
from replay.reading import replay
from replay.snapshots import KEEP, SnapshotDir
from replay.state import NodeProjection
from tests.replay.generated import assert_same, build_store, lifting_upcasters

GHOST = Path(__file__).resolve().parents[2] / "bin" / "ghost"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("snapshots") / "events.db"
    build_store(path)
    return path


@pytest.fixture
def db(source: Path, tmp_path: Path) -> Path:
    """A private copy of the generated store (with no snapshots yet)."""
    path = tmp_path / "state" / "events.db"
    path.parent.mkdir()
    shutil.copy(source, path)
    return path


@pytest.fixture(scope="module")
def scratch(source: Path) -> NodeProjection:
    with SQLiteEventStore(source, readonly=True) as store:
        return replay(store)


def snapshot_at(store: SQLiteEventStore, snapshots: SnapshotDir, position: int) -> Path:
    projection = replay(store, until=position)
    scan = RowScan(store)
    try:
        link = scan.chain_hash_at(projection.position)
    finally:
        scan.close()
    assert link is not None
    saved = snapshots.save(projection, link, store.upcasters.fingerprint())
    assert saved is not None
    return saved


@settings(max_examples=25, deadline=None)
@given(cut=st.floats(min_value=0.0, max_value=1.0), until=st.floats(min_value=0.0, max_value=1.1))
def test_a_replay_from_any_snapshot_equals_one_from_scratch(
    source: Path,
    scratch: NodeProjection,
    tmp_path_factory: pytest.TempPathFactory,
    cut: float,
    until: float,
) -> None:
    snapshots = SnapshotDir(tmp_path_factory.mktemp("snaps"))
    with SQLiteEventStore(source, readonly=True) as store:
        last = store.last_position()
        snapshot_at(store, snapshots, max(1, int(cut * last)))
        assert_same(replay(store, snapshots=snapshots), scratch)
        # Time travel: a snapshot after the bound is never used, one before it is.
        bound = int(until * last)
        assert_same(replay(store, until=bound, snapshots=snapshots), replay(store, until=bound))


def test_a_long_replay_to_the_end_leaves_a_snapshot_for_the_next(
    db: Path, scratch: NodeProjection, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshots = SnapshotDir.beside(db)
    with SQLiteEventStore(db, readonly=True) as store:
        last = store.last_position()
        monkeypatch.setattr(reading, "SNAPSHOT_EVERY", last + 1)
        replay(store, snapshots=snapshots)
        assert snapshots.positions() == []  # not enough folded to be worth a file
        monkeypatch.setattr(reading, "SNAPSHOT_EVERY", last // 3)
        replay(store, until=last - 1, snapshots=snapshots)
        assert snapshots.positions() == []  # time travel leaves none either
        assert_same(replay(store, snapshots=snapshots), scratch)
        assert snapshots.positions() == [last]
        assert_same(replay(store, snapshots=snapshots), scratch)  # from it, folding nothing
    with SQLiteEventStore(db) as store:
        for i in range(last // 3):
            store.append("node", [NewEvent("NotificationSent", {"n": i})])
    with SQLiteEventStore(db, readonly=True) as store:
        grown = replay(store, snapshots=snapshots)
        assert grown.notifications["sent"] == scratch.notifications["sent"] + last // 3
        assert_same(grown, replay(store))
    assert snapshots.positions() == [last + last // 3, last]


def test_only_the_newest_snapshots_are_kept(db: Path) -> None:
    snapshots = SnapshotDir.beside(db)
    with SQLiteEventStore(db, readonly=True) as store:
        for position in (10, 20, 30, 40):
            snapshot_at(store, snapshots, position)
    assert snapshots.positions() == [40, 30, 20, 10][:KEEP]


def test_a_snapshot_of_another_store_is_skipped(
    db: Path, tmp_path: Path, scratch: NodeProjection
) -> None:
    other = tmp_path / "other" / "events.db"
    other.parent.mkdir()
    build_store(other, seed=99)
    with SQLiteEventStore(other, readonly=True) as store:
        snapshot_at(store, SnapshotDir.beside(other), store.last_position() // 2)
    shutil.copytree(other.parent / "snapshots", db.parent / "snapshots")
    with SQLiteEventStore(db, readonly=True) as store:
        assert_same(replay(store, snapshots=SnapshotDir.beside(db)), scratch)


def test_an_event_changed_under_a_snapshot_makes_it_unusable(db: Path) -> None:
    snapshots = SnapshotDir.beside(db)
    with SQLiteEventStore(db, readonly=True) as store:
        position = store.last_position() // 2
        snapshot_at(store, snapshots, position)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE events SET hash = zeroblob(32) WHERE position = ?", (position,))
    conn.commit()
    conn.close()
    with SQLiteEventStore(db, readonly=True) as store:
        assert_same(replay(store, snapshots=snapshots), replay(store))


@pytest.mark.parametrize(
    "damage",
    [
        lambda body: body[: len(body) // 2],  # truncated
        lambda body: b"\xc1" + body[1:],  # not msgpack
        lambda body: codec.encode({**codec.decode(body, 1 << 31), "code": "an older fold"}),
        lambda body: codec.encode({**codec.decode(body, 1 << 31), "format": 0}),
        lambda body: codec.encode({**codec.decode(body, 1 << 31), "position": 1}),
        lambda body: codec.encode({**codec.decode(body, 1 << 31), "state": {"patches": [[1]]}}),
        lambda body: msgpack.packb([1, 2, 3]),  # not a map at all
    ],
    ids=[
        "truncated",
        "garbage",
        "other-code",
        "other-format",
        "wrong-position",
        "bad-state",
        "list",
    ],
)
def test_a_damaged_or_foreign_snapshot_is_skipped_and_removed(
    db: Path, scratch: NodeProjection, damage: object
) -> None:
    snapshots = SnapshotDir.beside(db)
    with SQLiteEventStore(db, readonly=True) as store:
        path = snapshot_at(store, snapshots, store.last_position() // 2)
        assert callable(damage)
        path.write_bytes(damage(path.read_bytes()))
        assert_same(replay(store, snapshots=snapshots), scratch)
    assert not path.exists()


def test_a_snapshot_read_through_other_upcasters_is_not_used(db: Path) -> None:
    snapshots = SnapshotDir.beside(db)
    with SQLiteEventStore(db, readonly=True) as plain:
        path = snapshot_at(plain, snapshots, plain.last_position())
    with SQLiteEventStore(db, readonly=True, upcasters=lifting_upcasters()) as lifted:
        assert_same(replay(lifted, snapshots=snapshots), replay(lifted))
    assert path.exists()  # not damaged: still right for readers without those upcasters
    other = Upcasters()
    other.register("TestsFinished", 1, lambda d: {**d, "status": "passed"})
    assert other.fingerprint() != lifting_upcasters().fingerprint() != Upcasters().fingerprint()


def test_a_snapshot_directory_that_cannot_be_written_only_costs_time(
    db: Path, scratch: NodeProjection, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = db.parent / "snapshots"
    blocked.write_text("a file where the directory would be")
    monkeypatch.setattr(reading, "SNAPSHOT_EVERY", 1)
    with SQLiteEventStore(db, readonly=True) as store:
        assert_same(replay(store, snapshots=SnapshotDir(blocked)), scratch)
    assert blocked.read_text() == "a file where the directory would be"


def test_ghost_replay_uses_a_snapshot_and_verify_does_not(db: Path) -> None:
    """A snapshot that lies (but is of this store, at the right link) changes what `ghost
    replay` says, which proves the CLI starts from it; `--verify` folds every event itself."""
    snapshots = SnapshotDir.beside(db)
    with SQLiteEventStore(db, readonly=True) as store:
        true_state = replay(store)
        last = store.last_position()
        scan = RowScan(store)
        link = scan.chain_hash_at(last)
        scan.close()
    assert link is not None
    lie = replace(true_state, notifications={"sent": 12345, "failed": 0})
    snapshots.save(lie, link, Upcasters().fingerprint())

    def ghost(*args: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, str(GHOST), "--state-dir", str(db.parent), "replay", "--json", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode in (0, 1), done.stderr
        answer = json.loads(done.stdout)
        assert isinstance(answer, dict)
        return answer

    assert ghost()["state"]["notifications"]["sent"] == 12345  # type: ignore[index]
    verified = ghost("--verify")["state"]["notifications"]  # type: ignore[index]
    assert verified == true_state.notifications


def test_patches_keep_their_stream_key_through_a_snapshot(tmp_path: Path) -> None:
    """The projection keys a patch by its stream; an event's own patch_id (odd, or tampered
    with) may differ, and a snapshot must not re-key it."""
    db = tmp_path / "events.db"
    with SQLiteEventStore(db) as store:
        store.append("patch-abc", [NewEvent("PatchReceived", {"patch_id": "xyz"})])
        store.append("patch-abc", [NewEvent("PatchQueued", {"patch_id": "xyz"})])
        store.append("patch-def", [NewEvent("PatchReceived", {"patch_id": "def"})])
    snapshots = SnapshotDir.beside(db)
    with SQLiteEventStore(db, readonly=True) as store:
        snapshot_at(store, snapshots, 2)
        resumed = replay(store, snapshots=snapshots)
        assert set(resumed.patches) == {"abc", "def"}
        assert resumed.patches["abc"].patch_id == "xyz"
        assert_same(resumed, replay(store))


def test_without_readable_fold_sources_no_snapshot_is_saved_or_used(
    db: Path, scratch: NodeProjection, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshots = SnapshotDir.beside(db)
    with SQLiteEventStore(db, readonly=True) as store:
        half = store.last_position() // 2
        snapshot_at(store, snapshots, half)
        monkeypatch.setattr(snapshot_module, "CODE", None)
        monkeypatch.setattr(reading, "SNAPSHOT_EVERY", 1)
        assert snapshots.latest(store.last_position(), lambda _p: None, "") is None
        assert_same(replay(store, snapshots=snapshots), scratch)
    assert snapshots.positions() == [half]  # nothing new saved
