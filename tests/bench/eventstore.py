"""Event store benchmark: durable appends with 1 and 8 appenders against raw sqlite3 (one
transaction per event, same schema and pragmas) and the `eventsourcing` library's SQLite recorder;
read + decode over a 1M-event store; time to open that store.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python tests/bench/eventstore.py [--events N]

Prints a table; the ratios compare work measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventstore import (
    NewEvent,
    SQLiteEventStore,
    codec,
)
from eventstore.hashchain import GENESIS, chain_hash
from eventstore.schema import migrate

PAYLOAD = {"path": "src/app.py", "sha256": "ab" * 32, "lines": 42, "kind": "modified"}


def run_threads(threads: int, per_thread: int, work: Callable[[int, int], None]) -> float:
    """Run work(t, i) per_thread times in each of `threads` threads; events per second."""
    barrier = threading.Barrier(threads + 1)

    def body(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            work(t, i)

    pool = [threading.Thread(target=body, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    return threads * per_thread / (time.perf_counter() - start)


def ours(tmp: Path, threads: int, per_thread: int) -> float:
    store = SQLiteEventStore(tmp / f"ours-{threads}.db", durability="full")
    try:
        return run_threads(
            threads, per_thread, lambda t, i: store.append(f"s-{t}", [NewEvent("T", PAYLOAD)])
        )
    finally:
        store.close()


def ours_pipelined(tmp: Path, threads: int, per_thread: int, in_flight: int = 32) -> float:
    """Each appender keeps up to `in_flight` appends outstanding (append_async), as actors do:
    they record events with a tell-like append and never wait on each commit."""
    store = SQLiteEventStore(tmp / f"ours-async-{threads}.db", durability="full")
    windows: list[list[Future[list[int]]]] = [[] for _ in range(threads)]

    def work(t: int, i: int) -> None:
        window = windows[t]
        window.append(store.append_async(f"s-{t}", [NewEvent("T", PAYLOAD)]))
        if len(window) >= in_flight:
            window.pop(0).result()
        if i == per_thread - 1:
            for future in window:
                future.result()

    try:
        return run_threads(threads, per_thread, work)
    finally:
        store.close()


def raw_sqlite(tmp: Path, threads: int, per_thread: int) -> float:
    """The same rows (encoded, hash-chained) with one transaction per event and a shared
    connection under a lock: what a naive 'commit every event' store does."""
    conn = sqlite3.connect(tmp / f"raw-{threads}.db", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    migrate(conn)
    lock = threading.Lock()
    state = {"position": 0, "hash": GENESIS}
    versions: dict[str, int] = {}
    data, meta = codec.encode(PAYLOAD), codec.encode({})

    def work(t: int, i: int) -> None:
        stream = f"s-{t}"
        with lock:
            position = state["position"] + 1  # type: ignore[operator]
            version = versions.get(stream, 0) + 1
            event_id = uuid.uuid4().hex
            now = time.time_ns() // 1000
            digest = chain_hash(
                state["hash"], position, event_id, stream, version, "T", now, 1, data, meta
            )  # type: ignore[arg-type]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (position, event_id, stream, version, "T", now, 1, data, meta, digest),
            )
            conn.execute("COMMIT")
            state["position"], state["hash"] = position, digest
            versions[stream] = version

    try:
        return run_threads(threads, per_thread, work)
    finally:
        conn.close()


def eventsourcing_recorder(tmp: Path, threads: int, per_thread: int) -> float:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(str(tmp / f"es-{threads}.db"), pool_size=threads + 1)
    recorder = SQLiteAggregateRecorder(datastore)
    recorder.create_table()
    ids = [uuid.uuid4() for _ in range(threads)]
    state = codec.encode(PAYLOAD)

    def work(t: int, i: int) -> None:
        recorder.insert_events([StoredEvent(ids[t], i + 1, "bench:T", state)])

    return run_threads(threads, per_thread, work)


def build_big_store(path: Path, count: int) -> float:
    start = time.perf_counter()
    with SQLiteEventStore(path, durability="normal") as store:
        batch = 1000
        futures = []
        for n in range(0, count, batch):
            events = [NewEvent("FilesChanged", {**PAYLOAD, "n": n + k}) for k in range(batch)]
            futures.append(store.append_async(f"workspace-{n % 7}", events))
            if len(futures) > 20:
                futures.pop(0).result()
        for future in futures:
            future.result()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000, help="size of the read store")
    parser.add_argument("--appends", type=int, default=4000, help="appends per configuration")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp_name:
        tmp = Path(tmp_name)
        for threads in (1, 8):
            per = args.appends // threads
            ref_raw = raw_sqlite(tmp, threads, per)
            ref_es = eventsourcing_recorder(tmp, threads, per)
            mine = ours(tmp, threads, per)
            rows.append(
                (
                    f"durable appends/s, {threads} appender(s), FULL",
                    f"{mine:,.0f}",
                    f"raw sqlite3 1 txn/event {ref_raw:,.0f} (x{mine / ref_raw:.1f}); "
                    f"eventsourcing {ref_es:,.0f} (x{mine / ref_es:.1f})",
                )
            )
            piped = ours_pipelined(tmp, threads, per)
            rows.append(
                (
                    "  same, pipelined (append_async, 32 in flight each)",
                    f"{piped:,.0f}",
                    f"raw sqlite3 x{piped / ref_raw:.1f}; eventsourcing x{piped / ref_es:.1f}",
                )
            )

        big = tmp / "big.db"
        built = build_big_store(big, args.events)
        rows.append(
            (
                f"build {args.events:,}-event store (batches of 1000)",
                f"{args.events / built:,.0f} ev/s",
                "",
            )
        )
        opens = []
        for _ in range(5):
            start = time.perf_counter()
            store = SQLiteEventStore(big)
            opens.append(time.perf_counter() - start)
            store.close()
        rows.append(
            (
                "open a store of that size (median of 5)",
                f"{statistics.median(opens) * 1000:.1f} ms",
                "",
            )
        )

        with SQLiteEventStore(big) as store:
            start = time.perf_counter()
            n = sum(1 for _ in store.iter_all())
            elapsed = time.perf_counter() - start
        conn = sqlite3.connect(big)
        start = time.perf_counter()
        raw_n = sum(1 for _ in conn.execute("SELECT * FROM events ORDER BY position"))
        raw_elapsed = time.perf_counter() - start
        conn.close()
        rows.append(
            (
                "read all + decode",
                f"{n / elapsed:,.0f} ev/s",
                f"raw sqlite3 rows without decoding {raw_n / raw_elapsed:,.0f}/s "
                f"(x{(n / elapsed) / (raw_n / raw_elapsed):.2f})",
            )
        )
        with SQLiteEventStore(big) as store:
            start = time.perf_counter()
            report = store.verify()
            rows.append(
                (
                    "verify hash chain",
                    f"{report.checked / (time.perf_counter() - start):,.0f} ev/s",
                    f"ok={report.ok}",
                )
            )

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'ours':>14}  reference")
    for name, value, ref in rows:
        print(f"{name:<{width}}  {value:>14}  {ref}")


if __name__ == "__main__":
    main()
