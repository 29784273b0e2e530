"""The lean inotify observer: a kernel mask of content-changing events only, delivered
straight from the emitter's thread."""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler

inotify = pytest.importorskip("adapters.watching.inotify")


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()

    def __call__(self, event: FileSystemEvent) -> None:
        with self._cond:
            self.seen.append((event.event_type, os.fsdecode(event.src_path), event.is_directory))
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def wait_for(self, kind: str, path: Path, *, is_dir: bool = False) -> None:
        deadline = time.monotonic() + 10
        with self._cond:
            while (kind, str(path), is_dir) not in self.seen:
                left = deadline - time.monotonic()
                assert left > 0, f"no {kind} {path}; seen {self.seen}"
                self._cond.wait(left)


@pytest.fixture
def observed(tmp_path: Path) -> Iterator[tuple[Path, Events]]:
    root = tmp_path / "ws"
    root.mkdir()
    events = Events()
    observer = inotify.HookedInotifyObserver(lambda: None, lambda exc: None, deliver=events)
    observer.schedule(FileSystemEventHandler(), str(root), recursive=True)
    observer.start()
    yield root, events
    observer.stop()
    observer.join(10)
    assert not observer.is_alive()


def test_only_content_changes_reach_the_watcher(observed: tuple[Path, Events]) -> None:
    root, events = observed
    path = root / "a.py"
    path.write_text("x\n")
    path.chmod(0o600)  # metadata only
    os.utime(path, (1, 1))
    path.read_text()  # opened and closed without writing
    (root / "d").mkdir()
    events.wait_for("created", root / "d", is_dir=True)  # watched from then on
    (root / "d" / "b.py").write_text("y\n")
    (root / "d" / "b.py").unlink()
    events.wait_for("deleted", root / "d" / "b.py")
    kinds = {kind for kind, _, _ in events.seen}
    assert kinds <= {"created", "modified", "closed", "deleted"}
    assert not [e for e in events.seen if e[2] and e[0] == "modified"]  # no directory noise
    # Delivered by the emitter itself, not through the observer's queue and thread.
    assert len(events.threads) == 1


def test_a_file_kept_open_is_seen_at_each_write(observed: tuple[Path, Events]) -> None:
    root, events = observed
    path = root / "log.py"
    with path.open("w") as f:
        f.write("one\n")
        f.flush()
        events.wait_for("modified", path)  # before it is closed


def test_an_mmap_write_is_seen_when_closed(observed: tuple[Path, Events]) -> None:
    root, events = observed
    path = root / "m.py"
    path.write_bytes(b"0" * 64)
    events.wait_for("closed", path)
    with events._cond:
        events.seen.clear()
    with path.open("r+b") as f, mmap.mmap(f.fileno(), 0) as m:
        m[:3] = b"abc"  # no IN_MODIFY for this
    events.wait_for("closed", path)
