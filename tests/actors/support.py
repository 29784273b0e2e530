"""Test support for the supervision tests: a scriptable worker actor and polling helpers.

Everything runs on real threads; waits poll with deadlines instead of sleeping.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.backoff import BackoffPolicy
from actors.base import GhostActor
from actors.spec import ChildSpec, Liveness
from eventstore import RecordedEvent

FAST = BackoffPolicy(min_s=0.01, max_s=0.05, jitter=0.0)
NO_PING = Liveness(interval_s=None)


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.002)


@dataclass
class Control:
    """Scripts a Worker across its incarnations and records what they did."""

    fail_starts: int = 0  # the first N setups raise
    hang_start: threading.Event | None = None  # setup waits on it
    starts: int = 0
    teardowns: int = 0
    received: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bump_start(self) -> int:
        with self.lock:
            self.starts += 1
            return self.starts


class Worker(GhostActor):
    """Messages: "crash" raises, "exit" stops itself, "sysexit" calls sys.exit, ("hang", ev)
    blocks on ev, ("echo", x) answers x, ("ask-crash",) raises (as an ask); anything else is
    appended to control.received."""

    def __init__(self, control: Control) -> None:
        super().__init__()
        self.control = control

    def setup(self) -> None:
        n = self.control.bump_start()
        if self.control.hang_start is not None:
            self.control.hang_start.wait()
        if n <= self.control.fail_starts:
            raise OSError(f"setup failure {n}")

    def receive(self, message: Any) -> Any:
        match message:
            case "crash":
                raise ValueError("boom")
            case "exit":
                self.stop()
            case "sysexit":
                sys.exit(3)
            case ("hang", threading.Event() as event):
                event.wait()
            case ("echo", value):
                return value
            case ("ask-crash",):
                raise KeyError("only the caller sees this")
            case _:
                with self.control.lock:
                    self.control.received.append(message)
        return None

    def teardown(self) -> None:
        with self.control.lock:
            self.control.teardowns += 1


def worker_spec(name: str, control: Control, **kwargs: Any) -> ChildSpec:
    return ChildSpec(name, lambda: Worker(control), **kwargs)


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


def types(events: list[RecordedEvent]) -> list[str]:
    return [e.type for e in events]
