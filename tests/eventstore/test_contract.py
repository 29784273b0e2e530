"""The event store contract, written once against the EventStore Protocol and run against every
backend in conftest.BACKENDS."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from eventstore import (
    ANY,
    NO_STREAM,
    BlobNotFoundError,
    ConcurrencyError,
    DuplicateEventError,
    EventStore,
    NewEvent,
    StoreClosedError,
)

Factory = Callable[[], EventStore]


def ev(type_: str = "Thing", **data: object) -> NewEvent:
    return NewEvent(type=type_, data=data)


# --- appending and reading ------------------------------------------------------------------


def test_a_non_durable_append_is_committed_and_kept(open_store: Factory) -> None:
    store = open_store()
    assert store.append("s-1", [ev(n=1)], durable=False) == [1]
    assert [e.data["n"] for e in store.read_stream("s-1")] == [1]
    store.close()
    assert [e.data["n"] for e in open_store().read_all()] == [1]


def test_append_returns_gapless_positions_and_reads_back(store: EventStore) -> None:
    assert store.last_position() == 0
    assert store.append("s-1", [ev(n=1), ev(n=2)]) == [1, 2]
    assert store.append("s-2", [ev("Other", n=3)]) == [3]
    events = store.read_all()
    assert [e.position for e in events] == [1, 2, 3]
    assert [(e.stream, e.version) for e in events] == [("s-1", 1), ("s-1", 2), ("s-2", 1)]
    assert [e.data["n"] for e in events] == [1, 2, 3]
    assert all(e.recorded_at.tzinfo is not None for e in events)
    assert store.last_position() == 3
    assert store.stream_version("s-1") == 2
    assert store.stream_version("missing") == 0


def test_data_and_meta_round_trip_exactly(store: EventStore) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    data = {
        "when": when,
        "raw": b"\x00\xff",
        "pair": (1, "a"),
        "list": [1, 2],
        "none": None,
        "nested": {"t": (b"x", (2.5,))},
        "big": 2**63 - 1,
        "flag": True,
    }
    [position] = store.append("s", [NewEvent("T", data, meta={"request_id": "r1"})])
    [event] = store.read_all()
    assert event.position == position
    assert dict(event.data) == data
    assert isinstance(event.data["pair"], tuple)
    assert event.meta == {"request_id": "r1"}


def test_read_filters_by_type_stream_and_limit(store: EventStore) -> None:
    for i in range(10):
        store.append(f"s-{i % 3}", [ev("Even" if i % 2 == 0 else "Odd", i=i)])
    assert [e.data["i"] for e in store.read_all(types=["Odd"])] == [1, 3, 5, 7, 9]
    assert [e.data["i"] for e in store.read_all(streams=["s-0"])] == [0, 3, 6, 9]
    assert [e.data["i"] for e in store.read_all(streams=["s-0"], types=["Even"])] == [0, 6]
    assert [e.position for e in store.read_all(after=4, limit=3)] == [5, 6, 7]
    assert [e.version for e in store.read_stream("s-1", after_version=1)] == [2, 3]
    assert [e.version for e in store.read_stream("s-1", limit=1)] == [1]
    assert [e.position for e in store.iter_all(after=2, batch=3)] == list(range(3, 11))


def test_streams_by_prefix(store: EventStore) -> None:
    for stream in ("patch-4730aa", "patch-4730bb", "patch-47x", "patch-5", "node", "patch_47"):
        store.append(stream, [NewEvent("E", {})])
    store.append("patch-4730aa", [NewEvent("E", {})])  # a second event: one name
    assert store.streams("patch-4730") == ["patch-4730aa", "patch-4730bb"]
    assert store.streams("patch-47") == ["patch-4730aa", "patch-4730bb", "patch-47x"]
    assert store.streams("patch-47", limit=1) == ["patch-4730aa"]
    assert store.streams("patch-9") == []
    assert store.streams("patch_4") == ["patch_47"]  # `_` is no wildcard


def test_empty_append_is_a_no_op(store: EventStore) -> None:
    assert store.append("s", []) == []
    assert store.last_position() == 0


# --- idempotency and optimistic concurrency -----------------------------------------------------


def test_same_event_ids_twice_is_idempotent(store: EventStore) -> None:
    batch = [ev(n=1), ev(n=2)]
    assert store.append("s", batch) == [1, 2]
    store.append("other", [ev()])
    assert store.append("s", batch) == [1, 2]
    # a retry is answered even when the expected version no longer holds
    assert store.append("s", batch, expected_version=NO_STREAM) == [1, 2]
    assert store.last_position() == 3


def test_event_id_reused_elsewhere_is_a_duplicate(store: EventStore) -> None:
    first = ev()
    store.append("s", [first])
    with pytest.raises(DuplicateEventError, match=first.event_id):
        store.append("elsewhere", [first])
    with pytest.raises(DuplicateEventError):
        store.append("s", [first, ev()])  # half stored, half new
    twice = ev()
    with pytest.raises(DuplicateEventError):
        store.append("s", [twice, twice])
    assert store.last_position() == 1


def test_expected_version_is_checked(store: EventStore) -> None:
    store.append("s", [ev()], expected_version=NO_STREAM)
    with pytest.raises(ConcurrencyError) as info:
        store.append("s", [ev()], expected_version=NO_STREAM)
    assert "expected version no_stream, actual version 1" in str(info.value)
    store.append("s", [ev(), ev()], expected_version=1)
    with pytest.raises(ConcurrencyError) as info:
        store.append("s", [ev()], expected_version=2)
    assert (info.value.expected, info.value.actual) == (2, 3)
    assert "'s'" in str(info.value)
    store.append("s", [ev()], expected_version=ANY)
    store.append("new", [ev()], expected_version=0)
    assert store.stream_version("s") == 4


def test_a_failing_append_fails_alone_in_its_group(store: EventStore) -> None:
    store.append("s", [ev()])
    futures = []
    for i in range(200):  # queued together, so they share commits
        expected = 0 if i == 100 else ANY  # this one conflicts: "s" exists
        stream = "s" if i == 100 else f"ok-{i}"
        futures.append(store.append_async(stream, [ev(i=i)], expected_version=expected))
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.result())
        except ConcurrencyError:
            outcomes.append(None)
    assert outcomes.count(None) == 1
    assert outcomes[100] is None
    positions = [p for o in outcomes if o for p in o]
    assert sorted(positions) == list(range(2, 201))  # gapless despite the failure
    assert store.verify().ok


def test_concurrency_only_one_of_racing_writers_wins(store: EventStore) -> None:
    store.append("s", [ev()])
    barrier = threading.Barrier(8)
    results: list[str] = []

    def racer(i: int) -> None:
        barrier.wait()
        try:
            store.append("s", [ev(i=i)], expected_version=1)
            results.append("won")
        except ConcurrencyError:
            results.append("lost")

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["lost"] * 7 + ["won"]


def test_many_threads_appending_concurrently_stay_gapless(store: EventStore) -> None:
    def work(t: int) -> list[int]:
        got = []
        for i in range(50):
            got += store.append(f"t-{t}", [ev(t=t, i=i)], expected_version=i)
        return got

    with ThreadPoolExecutor(8) as pool:
        acked = [p for ps in pool.map(work, range(8)) for p in ps]
    assert sorted(acked) == list(range(1, 401))
    events = store.read_all()
    assert [e.position for e in events] == list(range(1, 401))
    for t in range(8):
        assert [e.data["i"] for e in store.read_stream(f"t-{t}")] == list(range(50))
    assert store.verify().ok


# --- subscriptions ---------------------------------------------------------------------------


def test_subscription_catches_up_then_goes_live(store: EventStore) -> None:
    store.append("s", [ev(n=i) for i in range(5)])
    sub = store.subscribe(after=2)
    assert [e.position for e in sub.poll(timeout=1)] == [3, 4, 5]
    assert sub.poll(timeout=0.05) == []
    timer = threading.Timer(0.1, lambda: store.append("s", [ev(n=99)]))
    timer.start()
    live = sub.poll(timeout=5)
    timer.join()
    assert [e.data["n"] for e in live] == [99]
    assert sub.position == 6
    sub.close()
    assert sub.poll(timeout=0.01) == []


def test_subscription_wait_reads_nothing(store: EventStore) -> None:
    store.append("s", [ev(n=1)])
    sub = store.subscribe(after=1)
    assert sub.committed == 1
    assert sub.wait(timeout=0.05) is False
    timer = threading.Timer(0.1, lambda: store.append("s", [ev(n=2)]))
    timer.start()
    assert sub.wait(timeout=5) is True
    timer.join()
    assert (sub.position, sub.committed) == (1, 2)  # waiting handed nothing out
    assert [e.data["n"] for e in sub.poll(timeout=0)] == [2]
    assert sub.wait(timeout=0.01) is False
    sub.close()
    assert sub.wait(timeout=5) is False


def test_subscription_by_type(store: EventStore) -> None:
    sub = store.subscribe(types=["Want"])
    store.append("s", [ev("Skip"), ev("Want", n=1), ev("Skip")])
    store.append("s", [ev("Want", n=2)])
    got: list[int] = []
    while len(got) < 2:
        got += [e.data["n"] for e in sub.poll(timeout=5)]
    assert got == [1, 2]
    sub.close()


def test_subscription_sees_no_gap_and_no_duplicate_under_concurrent_writers(
    store: EventStore,
) -> None:
    store.append("pre", [ev() for _ in range(30)])
    sub = store.subscribe(after=10)
    seen: list[int] = []

    def consume() -> None:
        while len(seen) < 30 + 8 * 40 - 10:
            seen.extend(e.position for e in sub.poll(timeout=10, max_count=7))

    consumer = threading.Thread(target=consume)
    consumer.start()

    def write(t: int) -> None:
        for i in range(40):
            store.append(f"w-{t}", [ev(i=i)])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    consumer.join(30)
    sub.close()
    assert seen == list(range(11, 30 + 8 * 40 + 1))


def test_close_wakes_a_blocked_iterator(store: EventStore) -> None:
    sub = store.subscribe()
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.extend(e.position for e in sub))
    reader.start()
    store.append("s", [ev()])
    deadline = threading.Event()
    for _ in range(100):
        if got:
            break
        deadline.wait(0.02)
    sub.close()
    reader.join(5)
    assert not reader.is_alive()
    assert got == [1]


# --- blobs and checkpoints ---------------------------------------------------------------------


def test_blobs_are_content_addressed_and_deduplicated(store: EventStore) -> None:
    content = b"print('hello')\n" * 100
    digest = store.put_blob(content)
    assert digest == store.put_blob(content)
    assert store.has_blob(digest)
    assert store.get_blob(digest) == content
    assert store.put_blob(b"") != digest
    assert not store.has_blob("0" * 64)
    with pytest.raises(BlobNotFoundError):
        store.get_blob("0" * 64)


def test_checkpoints(store: EventStore) -> None:
    assert store.load_checkpoint("slack") == 0
    store.save_checkpoint("slack", 5)
    store.save_checkpoint("slack", 7)
    store.save_checkpoint("other", 1)
    assert store.load_checkpoint("slack") == 7
    assert store.load_checkpoint("other") == 1


# --- lifecycle --------------------------------------------------------------------------------


def test_reopen_after_close_keeps_everything_and_continues_the_chain(open_store: Factory) -> None:
    first = open_store()
    first.append("s", [ev(n=1), ev(n=2)])
    digest = first.put_blob(b"backup")
    first.save_checkpoint("c", 2)
    first.close()
    first.close()  # idempotent
    with pytest.raises(StoreClosedError):
        first.append("s", [ev()])
    second = open_store()
    assert [e.data["n"] for e in second.read_all()] == [1, 2]
    assert second.append("s", [ev(n=3)], expected_version=2) == [3]
    assert second.get_blob(digest) == b"backup"
    assert second.load_checkpoint("c") == 2
    report = second.verify()
    assert report.ok
    assert report.checked == 3
    assert report.last_position == 3


def test_close_commits_what_was_already_queued(open_store: Factory) -> None:
    first = open_store()
    futures = [first.append_async("s", [ev(i=i)]) for i in range(500)]
    first.close()
    assert [f.result() for f in futures] == [[i] for i in range(1, 501)]
    assert open_store().last_position() == 500
