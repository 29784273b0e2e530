"""Event storms: bounded memory, overflow marker, and a correct state afterwards."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from adapters.watching import MAX_BATCH

if TYPE_CHECKING:
    from conftest import WatcherFactory


def tree_state(root: Path) -> dict[str, str]:
    state = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            state[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.mark.parametrize("mode", ["inotify"], indirect=True)
def test_20k_file_storm_is_bounded_and_reconciled(
    fast_ws: Path, make_watcher: WatcherFactory
) -> None:
    bound = 1000
    ws = fast_ws
    initial = tree_state(ws)
    watcher, got = make_watcher(ws, max_pending=bound, debounce_s=0.2)
    peak = 0
    sampling = True

    def sample() -> None:  # the bound must hold at every instant, not just at the end
        nonlocal peak
        while sampling:
            peak = max(peak, watcher.stats().pending)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for d in range(20):
            (ws / "gen" / f"d{d}").mkdir(parents=True)
            for i in range(1000):
                (ws / "gen" / f"d{d}" / f"f{i}.py").write_text(f"{d}/{i}")
        (ws / "README.md").unlink()  # a deletion lost in the storm must come out too
        got.wait_for(lambda: any(b.overflow for b in got.batches), timeout=30)
        # Until the rescan has reported everything (a fixed quiet period is not enough on a
        # busy machine: the rescan can pause longer than that between two batches).
        final = tree_state(ws)
        got.wait_for(lambda: got.net(initial) == final, timeout=60)
    finally:
        sampling = False
        sampler.join()
    assert got.net(initial) == tree_state(ws)

    stats = watcher.stats()
    assert peak <= bound
    assert stats.pending_peak <= bound
    assert sum(b.overflow for b in got.batches) == stats.overflow_events > 0
    assert all(len(b.changes) <= MAX_BATCH for b in got.batches)
    assert watcher.known() == tree_state(ws)
    # Everything went into the known state exactly once: no duplicates across batches.
    created = [c.path for c in got.changes() if c.kind == "created"]
    assert len(created) == len(set(created)) == 20_000


@pytest.mark.parametrize("mode", ["polling"], indirect=True)
def test_polling_storm_is_bounded_too(fast_ws: Path, make_watcher: WatcherFactory) -> None:
    ws = fast_ws
    initial = tree_state(ws)
    watcher, got = make_watcher(ws, max_pending=100, poll_interval_s=0.2)
    for i in range(500):
        (ws / "src" / f"f{i}.ts").write_text(str(i))
    got.wait_for(lambda: any(b.overflow for b in got.batches))
    got.wait_for(lambda: got.net(initial) == tree_state(ws))
    assert watcher.stats().pending_peak <= 100
