"""Run a real ghost-node process for tests, and read its events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from eventstore import RecordedEvent, SQLiteEventStore, StoreError

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "bin" / "ghost-node"

FAST_SUPERVISOR = """
[supervisor]
min_backoff_s = 0.05
max_backoff_s = 0.4
max_restarts = {max_restarts}
period_s = 60
"""


def write_config(tmp: Path, body: str) -> Path:
    path = tmp / "ghost.toml"
    path.write_text(body)
    return path


class NodeProcess:
    def __init__(
        self,
        workspace: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.workspace = workspace
        self.state_dir = state_dir or workspace / ".ghost"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        full_env = {**base, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, str(NODE), "--port", "0", *args],
            cwd=workspace,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for(
        self, predicate: Callable[[list[RecordedEvent]], bool], timeout: float = 20
    ) -> list[RecordedEvent]:
        deadline = time.monotonic() + timeout
        events: list[RecordedEvent] = []
        while time.monotonic() < deadline:
            events = self.events()
            if predicate(events):
                return events
            if self.proc.poll() is not None and predicate(self.events()):
                return self.events()
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout}s; events: {[e.type for e in events]}")

    def events(self) -> list[RecordedEvent]:
        db = self.state_dir / "events.db"
        if not db.exists():
            return []
        try:
            with SQLiteEventStore(db, readonly=True) as store:
                return store.read_all()
        except StoreError:
            return []  # the node has created the file but not its schema yet

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def output(self) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=20)
        return out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def types(events: list[RecordedEvent]) -> list[str]:
    return [e.type for e in events]
