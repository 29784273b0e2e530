"""Replay benchmark: rebuild every projection from 1M events (events/s), and the whole-process
wall time of `ghost audit --patch ID` and `ghost show ID` on a 1M-event store against the same
commands on a 1k-event store (the index makes them independent of the store's size).

    .venv/bin/python tests/bench/replay.py [--events 1000000]

The store holds a realistic mix: per patch 6 events (Received, Applying, Applied, TestsStarted,
TestsFinished, sometimes RolledBack), watcher FilesChanged, and actor/health events.

The rebuild's reference, on the same store in the same run: plain sqlite3 reading the same
columns in position order and msgpack-decoding every payload (what any replay must at least
do), without building records or folding them. For scale, the same rebuild event by event as
the node folds live (a RecordedEvent per event through `NodeProjection.apply`), whose result
the bulk rebuild must equal (checked).

With snapshots (replay/snapshots.py, what `ghost replay` and `ghost status` use): the first
rebuild, which also saves one, and a rebuild from a snapshot half a snapshot interval back
(SNAPSHOT_EVERY / 2 events: what a replay finds on average), both equal to the one from scratch.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventstore import NewEvent, SQLiteEventStore
from eventstore.rows import RowScan
from replay.reading import SNAPSHOT_EVERY, replay
from replay.snapshots import SnapshotDir
from replay.state import NodeProjection

GHOST = Path(__file__).resolve().parents[2] / "bin" / "ghost"


DIFF = b"--- a/src/f.py\n+++ b/src/f.py\n@@ -1,2 +1,2 @@\n-x = 1\n+x = 2\n y = 3\n"
DIFF_SHA = __import__("hashlib").sha256(DIFF).hexdigest()


def patch_events(pid: str, n: int) -> list[tuple[str, NewEvent]]:
    stream = f"patch-{pid}"
    changes = [{"path": f"src/f{n % 50}.py", "before_sha256": "a" * 64, "after_sha256": "b" * 64}]
    files = [
        {
            "path": f"src/f{n % 50}.py",
            "action": "update",
            "before_sha256": "a" * 64,
            "after_sha256": "b" * 64,
            "added": 2,
            "removed": 1,
        }
    ]
    events = [
        NewEvent(
            "PatchReceived",
            {
                "patch_id": pid,
                "workspace": "main",
                "client_id": None,
                "format": "v4a",
                "body_sha256": "c" * 64,
                "body_blob": "c" * 64,
                "description": f"patch {n}",
                "author": "gpt",
                "dry_run": False,
            },
        ),
        NewEvent("PatchApplying", {"patch_id": pid, "txn_id": pid, "files": files}),
        NewEvent(
            "PatchApplied",
            {
                "patch_id": pid,
                "txn_id": pid,
                "files": files,
                "changes": changes,
                "diff_blob": "d" * 64,
            },
        ),
        NewEvent("TestsStarted", {"patch_id": pid, "command": "pytest -q"}),
        NewEvent(
            "TestsFinished",
            {
                "patch_id": pid,
                "status": "passed",
                "exit_code": 0,
                "duration_s": 1.2,
                "output_tail": "3 passed",
                "output_blob": "e" * 64,
            },
        ),
    ]
    return [(stream, e) for e in events]


def build(path: Path, total: int) -> str:
    """Returns the id of a patch in the middle of the store."""
    middle = ""
    with SQLiteEventStore(path, durability="normal") as store:
        n = 0
        pending = []
        while n < total:
            pid = uuid.uuid4().hex[:16]
            if n >= total // 2 and not middle:
                middle = pid
            batch = patch_events(pid, n)
            batch.append(
                (
                    "workspace-main",
                    NewEvent(
                        "FilesChanged",
                        {
                            "paths": [
                                {
                                    "path": f"src/f{n % 50}.py",
                                    "kind": "modified",
                                    "sha256": "b" * 64,
                                }
                            ],
                            "source": f"patch:{pid}",
                            "overflow": 0,
                        },
                    ),
                )
            )
            batch += [
                ("actor-health", NewEvent("HealthChanged", {"from": "ok", "to": "ok"}))
                for _ in range(4)
            ]
            for stream, event in batch[: total - n]:
                pending.append(store.append_async(stream, [event]))
            n += len(batch)
            if len(pending) > 5000:
                for future in pending:
                    future.result()
                pending.clear()
        for future in pending:
            future.result()
    return middle


def raw_read(path: Path) -> tuple[int, float]:
    """(events, seconds): every row in position order, each payload msgpack-decoded."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        start = time.perf_counter()
        n = 0
        for row in conn.execute(
            "SELECT position, event_id, stream, version, type, recorded_at, schema, data, meta, "
            "hash FROM events ORDER BY position"
        ):
            msgpack.unpackb(row[7], raw=False, timestamp=3, strict_map_key=False)
            n += 1
        return n, time.perf_counter() - start
    finally:
        conn.close()


def snapshot_figures(db: Path, scratch: NodeProjection) -> list[tuple[str, str, str]]:
    """The rebuild with snapshots (replay/snapshots.py): the first one, which also saves a
    snapshot, and one from a snapshot half a snapshot interval back (a replay finds on average),
    each checked equal to the rebuild from scratch."""
    snapshots = SnapshotDir.beside(db)
    with SQLiteEventStore(db, readonly=True) as store:
        last = store.last_position()
        start = time.perf_counter()
        first = replay(store, snapshots=snapshots)
        saving = time.perf_counter() - start
        [position] = snapshots.positions()
        size = (snapshots.path / f"projection-{position}.msgpack").stat().st_size
        shutil.rmtree(snapshots.path)
        back = min(last, SNAPSHOT_EVERY // 2)
        earlier = replay(store, until=last - back)
        scan = RowScan(store)
        link = scan.chain_hash_at(earlier.position)
        scan.close()
        assert link is not None
        snapshots.save(earlier, link, store.upcasters.fingerprint())
        del earlier
        start = time.perf_counter()
        resumed = replay(store, snapshots=snapshots)
        from_snapshot = time.perf_counter() - start
        shutil.rmtree(snapshots.path)
    if first != scratch or resumed != scratch:
        raise SystemExit("a rebuild with snapshots differs from the rebuild from scratch")
    return [
        (
            "the same, saving a snapshot at the end",
            f"{last / saving:,.0f} ev/s",
            f"{saving:.2f} s; the snapshot {size / 1e6:.1f} MB",
        ),
        (
            f"rebuild from a snapshot {back:,} events back",
            f"{last / from_snapshot:,.0f} ev/s",
            f"{from_snapshot:.2f} s for all {last:,} events, same result",
        ),
    ]


def wall(*args: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, str(GHOST), *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        small, big = tmp / "small", tmp / "big"
        small.mkdir()
        big.mkdir()
        small_pid = build(small / "events.db", 1000)
        start = time.perf_counter()
        big_pid = build(big / "events.db", args.events)
        built = time.perf_counter() - start
        with SQLiteEventStore(big / "events.db", readonly=True) as store:
            start = time.perf_counter()
            projection = replay(store)
            rebuild = time.perf_counter() - start
            start = time.perf_counter()
            live = NodeProjection()
            for event in store.iter_all():
                live.apply(event)
            one_by_one = time.perf_counter() - start
        if live != projection:
            raise SystemExit("the rebuild differs from the event-by-event fold")
        del live
        snapshotted = snapshot_figures(big / "events.db", projection)
        raw_n, raw_s = raw_read(big / "events.db")
        rows = [
            (f"build the {args.events:,}-event store", f"{built:.1f} s", ""),
            (
                f"rebuild every projection from {args.events:,} events",
                f"{projection.position / rebuild:,.0f} ev/s",
                f"{rebuild:.2f} s, {len(projection.patches):,} patches; raw sqlite3 rows + "
                f"msgpack payloads {raw_n / raw_s:,.0f} ev/s "
                f"(ours x{(projection.position / rebuild) / (raw_n / raw_s):.2f})",
            ),
            (
                "the same, event by event (the live fold)",
                f"{projection.position / one_by_one:,.0f} ev/s",
                f"{one_by_one:.2f} s, same result; the rebuild is x{one_by_one / rebuild:.2f}",
            ),
            *snapshotted,
        ]
        for label, cmd in (
            ("ghost audit --patch ID", ["audit", "--json", "--patch"]),
            ("ghost show ID", ["show", "--json"]),
        ):
            small_t = wall("--state-dir", str(small), *cmd, small_pid)
            big_t = wall("--state-dir", str(big), *cmd, big_pid)
            rows.append(
                (
                    f"{label}, whole process (median of 5)",
                    f"{big_t * 1000:.0f} ms",
                    f"on 1k events {small_t * 1000:.0f} ms (x{big_t / small_t:.2f})",
                )
            )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'ours':>14}  reference")
    for label, value, ref in rows:
        print(f"{label:<{width}}  {value:>14}  {ref}")


if __name__ == "__main__":
    main()
