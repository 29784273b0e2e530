"""SIGKILL the process running the outbox while a message is in flight, restart it, and check
with the fake Slack's log that every interesting event arrived and at most one repeated."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from eventstore import NewEvent, SQLiteEventStore
from eventstore.catalogue import EventType as T
from tests.adapters.slack.fake_slack import FakeSlack, Reply

ROOT = Path(__file__).resolve().parents[3]
HELPER = Path(__file__).parent / "helpers" / "outbox_child.py"
N = 20


def start_child(db: Path, slack: FakeSlack) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(HELPER), str(db), slack.webhook_url],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def ids(slack: FakeSlack, accepted_only: bool) -> Counter[str]:
    got = slack.accepted() if accepted_only else list(slack.received)
    return Counter(r.text.split("`")[1] for r in got)


def test_sigkill_mid_delivery_loses_nothing_and_repeats_at_most_one(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    with SQLiteEventStore(db) as store:
        for i in range(N):
            data = {"patch_id": f"p{i:02}", "workspace": "main"}
            store.append(f"patch-p{i:02}", [NewEvent(type=T.PATCH_APPLIED, data=data)])
            store.append("workspace-main", [NewEvent(type=T.FILES_CHANGED, data={"n": i})])
    slack = FakeSlack().start()
    try:
        # 1. Slack has received message 4 and the child waits for the answer: kill it there.
        held = threading.Event()
        slack.script(Reply(), Reply(), Reply(), Reply(hold=held))
        child = start_child(db, slack)
        wait_for(lambda: len(slack.received) == 4)
        kill(child)
        held.set()  # Slack "posts" it: the restarted child will post it once more at most
        kills = 1

        # 2. Kills at random moments while replies trickle in slowly.
        rng = random.Random(7)
        for _ in range(3):
            slack.script(*[Reply(delay_s=0.02) for _ in range(N)])
            child = start_child(db, slack)
            time.sleep(rng.uniform(0.05, 0.25))
            kill(child)
            kills += 1

        # 3. A last run to the end.
        child = start_child(db, slack)
        wait_for(lambda: len(ids(slack, accepted_only=True)) == N, timeout=20)
        time.sleep(0.3)  # anything still in flight would show up now
        kill(child)
    finally:
        slack.stop()

    received = ids(slack, accepted_only=False)
    assert set(received) == {f"p{i:02}" for i in range(N)}
    repeats = sum(received.values()) - N
    assert repeats <= kills, received  # at most the one in flight per kill
    assert max(received.values()) <= 2
    with SQLiteEventStore(db) as store:
        assert store.verify().ok
        sent = store.read_all(types=[T.NOTIFICATION_SENT])
        covered = {p for e in sent for p in e.data["positions"]}
        patches = {e.position for e in store.read_all(types=[T.PATCH_APPLIED])}
        assert patches <= covered
