from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters.defaults import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
from adapters.watching import Change, ChangeBatch, Watcher

DEADLINE_S = 10.0


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


class Collector:
    """on_batch target: keeps every batch and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.batches: list[ChangeBatch] = []
        self.warnings: list[str] = []
        self._cond = threading.Condition()

    def __call__(self, batch: ChangeBatch) -> None:
        with self._cond:
            self.batches.append(batch)
            self._cond.notify_all()

    def warn(self, message: str) -> None:
        with self._cond:
            self.warnings.append(message)
            self._cond.notify_all()

    def changes(self, source: str | None = None) -> list[Change]:
        with self._cond:
            return [
                c for b in self.batches if source is None or b.source == source for c in b.changes
            ]

    def net(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` with the batches applied in order: what a consumer would hold."""
        state = dict(base or {})
        for change in self.changes():
            if change.sha256 is None:
                state.pop(change.path, None)
            else:
                state[change.path] = change.sha256
        return state

    def wait_for(self, predicate: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; batches so far: {self.batches!r}")
                self._cond.wait(min(left, 0.05))

    def wait_change(self, path: str, kind: str, timeout: float = DEADLINE_S) -> Change:
        self.wait_for(
            lambda: any(c.path == path and c.kind == kind for c in self.changes()), timeout
        )
        return next(c for c in self.changes() if c.path == path and c.kind == kind)

    def settle(self, quiet_s: float = 0.5) -> None:
        """Wait until no batch arrived for quiet_s (before asserting that nothing came)."""
        last = -1
        while len(self.batches) != last:
            last = len(self.batches)
            time.sleep(quiet_s)

    def clear(self) -> None:
        with self._cond:
            self.batches.clear()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (root / "README.md").write_text("# hi\n")
    return root


@pytest.fixture
def fast_ws(tmp_path: Path) -> Iterator[Path]:
    """A workspace on tmpfs when there is one: storms of 20k files take ~1 s there instead of
    5-10 s on a VM's disk, and the watcher's work, not the disk, is what is tested."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="ghost-watch-", dir=shm))
    try:
        (root / "src").mkdir()
        (root / "src" / "app.py").write_text("print('hi')\n")
        (root / "README.md").write_text("# hi\n")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


WatcherFactory = Callable[..., tuple[Watcher, Collector]]


@pytest.fixture(params=["inotify", "polling"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_watcher(mode: str) -> Iterator[WatcherFactory]:
    started: list[Watcher] = []

    def make(root: Path, *, start: bool = True, known: dict[str, str] | None = None, **kw: object):
        collector = Collector()
        kw.setdefault("debounce_s", 0.1)
        kw.setdefault("polling", True if mode == "polling" else None)
        kw.setdefault("poll_interval_s", 0.1)
        watcher = Watcher(
            root,
            kw.pop("include", DEFAULT_INCLUDE),
            kw.pop("exclude", DEFAULT_EXCLUDE),
            collector,
            on_warning=collector.warn,
            **kw,
        )
        started.append(watcher)
        if start:
            watcher.start(known)
            assert watcher.wait_ready(DEADLINE_S)
        return watcher, collector

    yield make
    for watcher in started:
        watcher.stop()
