"""Property: whatever the interleaving of appends from several threads, the store reads back
exactly the acknowledged sequence: every acknowledged event at its acknowledged position, in
per-stream order, nothing else."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import ANY, ConcurrencyError, NewEvent, SQLiteEventStore

# Each thread gets a script of (stream index, batch size, use expected version?) steps.
scripts = st.lists(
    st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3), st.booleans()), max_size=12),
    min_size=2,
    max_size=5,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts)
def test_reads_back_exactly_the_acknowledged_sequence(
    thread_scripts: list[list[tuple[int, int, bool]]],
) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        SQLiteEventStore(Path(tmp) / "events.db", durability="normal") as store,
    ):
        acked: dict[int, tuple[str, str]] = {}  # position -> (stream, event_id)
        lock = threading.Lock()
        barrier = threading.Barrier(len(thread_scripts))

        def run(script: list[tuple[int, int, bool]]) -> None:
            barrier.wait()
            for stream_index, size, checked in script:
                stream = f"s-{stream_index}"
                events = [NewEvent("T", {"n": i}) for i in range(size)]
                expected = store.stream_version(stream) if checked else ANY
                try:
                    positions = store.append(stream, events, expected_version=expected)
                except ConcurrencyError:
                    continue  # lost a race: nothing of it may appear
                with lock:
                    for position, event in zip(positions, events, strict=True):
                        acked[position] = (stream, event.event_id)

        threads = [threading.Thread(target=run, args=(s,)) for s in thread_scripts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        stored = store.read_all()
        assert {e.position: (e.stream, e.event_id) for e in stored} == acked
        assert [e.position for e in stored] == list(range(1, len(acked) + 1))
        for stream in {s for s, _ in acked.values()}:
            versions = [e.version for e in store.read_stream(stream)]
            assert versions == list(range(1, len(versions) + 1))
        assert store.verify().ok
