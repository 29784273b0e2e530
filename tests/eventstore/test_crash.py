"""SIGKILL a process that is appending, at random moments; after reopening, the chain verifies
and every event the child saw acknowledged is stored at its acknowledged position."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventstore import SQLiteEventStore

HELPER = Path(__file__).parent / "helpers" / "append_forever.py"
ROOT = Path(__file__).resolve().parents[2]


def run_trial(db: Path, rng: random.Random) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(HELPER), str(db)], stdout=subprocess.PIPE, env=env, text=True
    )
    time.sleep(rng.uniform(0.3, 0.9))
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=10)
    acked = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:  # the last line may be cut short by the kill
            acked[int(parts[0])] = parts[1]
    with SQLiteEventStore(db) as store:
        report = store.verify()
        assert report.ok, report.problem
        stored = {e.position: e.event_id for e in store.read_all() if e.position in acked}
    assert stored == acked
    return len(acked)


@pytest.mark.parametrize("durability", ["full"])
def test_sigkill_loses_no_acknowledged_event(tmp_path: Path, durability: str) -> None:
    rng = random.Random(1234)
    db = tmp_path / "events.db"
    total = sum(run_trial(db, rng) for _ in range(5))
    assert total > 0


@pytest.mark.slow
def test_sigkill_many_trials(tmp_path: Path) -> None:
    rng = random.Random()
    db = tmp_path / "events.db"
    for _ in range(40):
        run_trial(db, rng)
