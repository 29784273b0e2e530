"""The bulk rebuild (`replay.reading.replay`: raw rows, types filtered in SQL, mutable patch
states, gc off) against the event-by-event fold the node runs live (`NodeProjection.apply`
per RecordedEvent, `replay.patches.fold` per patch), on a generated store that uses every
event type the projections know, events they do not, odd streams, old schemas (upcast), and
several runs of the node.

Both must agree on everything: every patch view, every file, actor, tunnel, service, the
notifications, the runs, paused, and the position, for the whole store and for any `--until`
(position or time)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import CorruptEventError, NewEvent, RecordedEvent, SQLiteEventStore
from eventstore.rows import RowScan
from eventstore.upcasting import Upcasters
from replay.patches import PATCH_EVENT_TYPES, PatchView, fold, fold_all
from replay.reading import replay
from replay.state import FOLDED_TYPES, NodeProjection

SEED = 7
PATCHES = 120


def _upcasters() -> Upcasters:
    upcasters = Upcasters()
    # Schema 1 of TestsFinished said "result" where schema 2 says "status".
    upcasters.register(
        "TestsFinished",
        1,
        lambda d: {("status" if k == "result" else k): v for k, v in d.items()},
    )
    return upcasters


def _changes(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        path = f"src/f{rng.randrange(12)}.py"
        after = None if rng.random() < 0.1 else f"{rng.getrandbits(64):016x}"
        out.append(
            {"path": path, "before_sha256": f"{rng.getrandbits(64):016x}", "after_sha256": after}
        )
    return out


def _patch_events(rng: random.Random, pid: str) -> Iterator[tuple[str, NewEvent]]:
    stream = f"patch-{pid}"
    ws = rng.choice(["main", "other"])
    received: dict[str, Any] = {
        "patch_id": pid,
        "workspace": ws,
        "client_id": rng.choice([None, f"c-{pid}"]),
        "format": rng.choice(["v4a", "unified", "files"]),
        "body_sha256": pid * 4,
        "body_blob": pid * 4,
        "description": f"patch {pid}",
        "author": rng.choice(["gpt", "op", ""]),
        "dry_run": False,
    }
    if rng.random() < 0.1:
        del received["author"]  # an old writer: defaults must apply alike
    yield stream, NewEvent("PatchReceived", received)
    files = [
        {"path": c["path"], "action": "update", "added": 1, "removed": 2} for c in _changes(rng, 2)
    ]
    roll = rng.random()
    if roll < 0.1:
        yield stream, NewEvent("PatchQueued", {"patch_id": pid})
    if roll < 0.2:
        by = rng.choice([None, "op"])
        yield (
            stream,
            NewEvent(
                "PatchRejected",
                {
                    "patch_id": pid,
                    "code": "no_match",
                    "message": "nope",
                    "details": {"n": 1},
                    "by": by,
                },
            ),
        )
        return
    if roll < 0.3:
        yield (
            stream,
            NewEvent("PatchDryRun", {"patch_id": pid, "files": files, "diff_blob": "d" * 8}),
        )
        return
    if roll < 0.45:
        yield (
            stream,
            NewEvent(
                "PatchPendingApproval", {"patch_id": pid, "files": files, "diff_blob": "p" * 8}
            ),
        )
        if rng.random() < 0.3:
            yield stream, NewEvent("PatchRejected", {"patch_id": pid, "message": "no", "by": "op"})
            return
        yield stream, NewEvent("PatchApproved", {"patch_id": pid, "by": "op"})
    applying = {"patch_id": pid, "txn_id": pid}
    if rng.random() < 0.8:
        applying["files"] = files
    yield stream, NewEvent("PatchApplying", applying)
    changes = _changes(rng, rng.randrange(1, 4))
    if rng.random() < 0.1:  # interrupted: recovered at the next start
        outcome = rng.choice(["applied", "rolled_back"])
        yield (
            stream,
            NewEvent(
                "PatchRecovered",
                {"patch_id": pid, "kind": "apply", "outcome": outcome, "changes": changes},
            ),
        )
        return
    applied: dict[str, Any] = {"patch_id": pid, "changes": changes}
    if rng.random() < 0.7:
        applied["files"] = files
    if rng.random() < 0.7:
        applied["diff_blob"] = "a" * 8
    yield stream, NewEvent("PatchApplied", applied)
    yield stream, NewEvent("TestsStarted", {"patch_id": pid, "command": "pytest"})
    passed = rng.random() < 0.7
    finished = {"exit_code": 0 if passed else 1, "duration_s": 0.5, "output_tail": "..."}
    if rng.random() < 0.3:  # schema 1: "result", lifted to "status" by the upcaster
        yield (
            stream,
            NewEvent(
                "TestsFinished", {**finished, "result": "passed" if passed else "failed"}, schema=1
            ),
        )
    else:
        finished["status"] = "passed" if passed else "failed"
        yield stream, NewEvent("TestsFinished", {**finished, "output_blob": "o" * 8}, schema=2)
    if not passed or rng.random() < 0.15:
        back = [{**c, "after_sha256": c["before_sha256"]} for c in changes]
        if rng.random() < 0.2:
            yield (
                stream,
                NewEvent(
                    "PatchRecovered",
                    {"patch_id": pid, "kind": "rollback", "outcome": "applied", "changes": back},
                ),
            )
        else:
            yield (
                stream,
                NewEvent(
                    "PatchRolledBack",
                    {
                        "patch_id": pid,
                        "by": "auto",
                        "reason": "tests",
                        "forced": False,
                        "changes": back,
                    },
                ),
            )


def _noise(rng: random.Random, step: int) -> Iterator[tuple[str, NewEvent]]:
    roll = rng.random()
    if roll < 0.25:
        paths = [
            {"path": f"src/f{rng.randrange(12)}.py", "kind": "modified", "sha256": f"{step:016x}"},
            {"path": f"notes/n{rng.randrange(3)}.md", "kind": rng.choice(["deleted", "created"])},
        ]
        if paths[1]["kind"] == "created":
            paths[1]["sha256"] = f"{step + 1:016x}"
        yield (
            f"workspace-{rng.choice(['main', 'other'])}",
            NewEvent(
                "FilesChanged", {"paths": paths, "source": rng.choice(["external", "rescan"])}
            ),
        )
    elif roll < 0.45:
        name = rng.choice(["watcher.main", "patch.main", "web"])
        kind = rng.choice(
            [
                "ActorStarting",
                "ActorStarted",
                "ActorFailed",
                "ActorRestarting",
                "ActorStopped",
                "ActorFatal",
                "ActorSomethingNew",
            ]
        )
        data: dict[str, Any] = {"error_type": "ValueError", "message": "boom"}
        if rng.random() < 0.5:
            data["actor"] = name
        yield f"actor-{name}", NewEvent(kind, data)
    elif roll < 0.5:
        # An Actor* type outside an actor- stream, and patch types outside patch- streams:
        # the projections ignore both.
        yield "supervisor-root", NewEvent("ActorStarted", {"actor": "nobody"})
        yield "node", NewEvent("PatchApplied", {"patch_id": "x", "changes": []})
    elif roll < 0.6:
        kind = rng.choice(["TunnelUp", "TunnelDown"])
        yield "tunnel-t1", NewEvent(kind, {"url": "https://t.example", "reason": "gone"})
    elif roll < 0.7:
        kind = rng.choice(["ServiceStarted", "ServiceExited"])
        data = {"name": "svc"} if rng.random() < 0.5 else {"exit_code": 3}
        yield "service-svc", NewEvent(kind, data)
    elif roll < 0.75:
        yield "node", NewEvent(rng.choice(["NotificationSent", "NotificationFailed"]), {})
    elif roll < 0.8:
        yield "node", NewEvent(rng.choice(["NodePaused", "NodeResumed"]), {})
    elif roll < 0.9:
        yield "actor-health", NewEvent("HealthChanged", {"from": "ok", "to": "degraded"})
    else:
        yield "node", NewEvent("SomethingElse", {"n": step})


def build_store(path: Path, seed: int = SEED, patches: int = PATCHES) -> None:
    rng = random.Random(seed)
    with SQLiteEventStore(path) as store:
        pid_n = 0
        for run in range(3):
            store.append("node", [NewEvent("NodeStarted", {"pid": 100 + run, "workspaces": []})])
            live: list[Iterator[tuple[str, NewEvent]]] = []
            for step in range(patches // 3 * 4):
                if pid_n < patches * (run + 1) // 3 and rng.random() < 0.6:
                    live.append(_patch_events(rng, f"{pid_n:04d}{rng.getrandbits(32):08x}"))
                    pid_n += 1
                # Interleave the patches' events with each other and with the rest.
                if live:
                    gen = rng.choice(live)
                    item = next(gen, None)
                    if item is None:
                        live.remove(gen)
                    else:
                        store.append(*_one(item))
                for item in _noise(rng, step):
                    store.append(*_one(item))
            for gen in live:
                for item in gen:
                    store.append(*_one(item))
            clean = run != 1  # the second run ended in a crash
            stop = {"pid": 100 + run, "clean": clean} if clean else {"pid": 999, "clean": False}
            store.append("node", [NewEvent("NodeStopped", stop)])


def _one(item: tuple[str, NewEvent]) -> tuple[str, list[NewEvent]]:
    return item[0], [item[1]]


def one_by_one(events: list[RecordedEvent]) -> NodeProjection:
    """The live way: one `apply` per event, as the node's subscription feeds it."""
    projection = NodeProjection()
    for event in events:
        projection.apply(event)
    return projection


def assert_same(fast: NodeProjection, slow: NodeProjection) -> None:
    assert fast.position == slow.position
    assert fast.patches == slow.patches
    assert list(fast.patches) == list(slow.patches)  # same order too
    assert fast.files == slow.files
    assert fast.actors == slow.actors
    assert fast.tunnels == slow.tunnels
    assert fast.services == slow.services
    assert fast.notifications == slow.notifications
    assert fast.runs == slow.runs
    assert fast.paused == slow.paused
    assert fast.summary() == slow.summary()
    assert fast == slow


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rebuild") / "events.db"
    build_store(path)
    return path


@pytest.fixture(scope="module")
def events(db: Path) -> list[RecordedEvent]:
    with SQLiteEventStore(db, readonly=True, upcasters=_upcasters()) as store:
        return store.read_all()


def test_the_store_uses_every_folded_type(events: list[RecordedEvent]) -> None:
    kinds = {e.type for e in events}
    assert kinds >= FOLDED_TYPES
    assert {"HealthChanged", "SomethingElse", "ActorSomethingNew"} <= kinds
    assert any(e.schema == 2 and e.type == "TestsFinished" for e in events)


def test_rebuild_equals_the_event_by_event_fold(db: Path, events: list[RecordedEvent]) -> None:
    with SQLiteEventStore(db, readonly=True, upcasters=_upcasters()) as store:
        fast = replay(store)
    slow = one_by_one(events)
    assert_same(fast, slow)
    # ...and each patch is what the node's own fold (replay.patches.fold) makes of its stream
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
    with SQLiteEventStore(db, readonly=True, upcasters=_upcasters()) as store:
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
    with SQLiteEventStore(db, readonly=True, upcasters=_upcasters()) as store:
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
