"""Per-path debounce, burst coalescing and the storm bound, on explicit times."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters.watching.pending import Pending


def make(max_paths: int = 100) -> Pending:
    return Pending(debounce_s=0.25, max_delay_s=1.0, max_paths=max_paths, storm_interval_s=5.0)


def test_events_of_one_path_collapse_and_flush_after_quiet() -> None:
    p = make()
    assert p.note("a.py", 0.0)  # first event: the flusher must learn the deadline
    assert not p.note("a.py", 0.125)
    assert not p.note("b.py", 0.25)
    assert p.deadline() == 0.5
    assert p.take_due(0.375) is None
    due = p.take_due(0.5)
    assert due is not None
    assert sorted(due.paths) == ["a.py", "b.py"]
    assert not due.rescan
    assert p.deadline() is None
    assert p.size == 0


def test_constant_activity_flushes_settled_paths_after_max_delay() -> None:
    p = make()
    p.note("settled.py", 0.0)
    t = 0.0
    while t < 1.0:  # "hot.py" is written every 125 ms: the workspace is never quiet
        t += 0.125
        p.note("hot.py", t)
    due = p.take_due(1.0)
    assert due is not None
    assert due.paths == ["settled.py"]
    assert p.size == 1  # hot.py waits until it settles
    p.note("hot.py", 1.125)
    due = p.take_due(1.375)
    assert due is not None
    assert due.paths == ["hot.py"]


def test_storm_stops_tracking_and_asks_for_a_rescan() -> None:
    p = make(max_paths=10)
    for i in range(10):
        p.note(f"f{i}.py", 0.0)
    assert p.size == 10
    assert not p.storming
    for i in range(10, 30):
        p.note(f"f{i}.py", 0.125)
    assert p.storming
    assert p.size == 0
    assert p.peak == 10
    assert p.take_due(0.25) is None
    due = p.take_due(0.375)
    assert due is not None
    assert due.rescan
    assert due.overflow == 30  # the 10 dropped entries and the 20 untracked events
    assert due.paths == []
    assert not p.storming
    assert p.deadline() is None


def test_endless_storm_is_reconciled_every_storm_interval() -> None:
    p = make(max_paths=1)
    p.note("a", 0.0)
    p.note("b", 0.0)
    t = 0.0
    while p.take_due(t) is None:
        t += 0.125
        p.note("c", t)
    assert 5.0 <= t <= 5.125


def test_lost_events_ask_for_a_rescan() -> None:
    p = make()
    p.note("a.py", 0.0)
    p.lost_events(0.125)
    due = p.take_due(0.375)
    assert due is not None
    assert due.rescan
    assert due.overflow == 2


def test_everything_flushes_at_once_on_stop() -> None:
    p = make()
    p.note("a.py", 0.0)
    due = p.take_due(0.0, everything=True)
    assert due is not None
    assert due.paths == ["a.py"]


@given(st.lists(st.tuples(st.integers(0, 300), st.booleans()), max_size=400), st.integers(1, 50))
def test_never_more_than_max_paths_tracked(events: list[tuple[int, bool]], bound: int) -> None:
    p = make(max_paths=bound)
    for i, (n, is_dir) in enumerate(events):
        p.note(f"p{n}", i * 0.01, is_dir=is_dir)
        assert p.size <= bound
        p.take_due(i * 0.01)
    assert p.peak <= bound
