"""inotify limits and lost events: polling fallback with a warning, rescans after overflow."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from watchdog.observers import inotify_c

from adapters.defaults import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
from adapters.watching import Watcher

if TYPE_CHECKING:
    from conftest import WatcherFactory

pytestmark = pytest.mark.parametrize("mode", ["inotify"], indirect=True)


def _fail_watches(monkeypatch: pytest.MonkeyPatch, name: bytes) -> None:
    """Make inotify_add_watch fail with ENOSPC (watch limit) for directories called `name`."""
    original = inotify_c.InotifyFD.add_callback

    def add_callback(self, path, mask, callback, id_):  # type: ignore[no-untyped-def]
        if path.endswith(b"/" + name):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return original(self, path, mask, callback, id_)

    monkeypatch.setattr(inotify_c.InotifyFD, "add_callback", add_callback)


def test_watch_limit_at_start_falls_back_to_polling(
    ws: Path, make_watcher: WatcherFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ws / "deep").mkdir()
    _fail_watches(monkeypatch, b"deep")  # watchdog itself only raises for the root
    watcher, got = make_watcher(ws)
    assert watcher.stats().observer == "polling"
    assert any("limit" in w and "polling" in w for w in got.warnings)
    (ws / "deep" / "x.py").write_text("x")
    got.wait_change("deep/x.py", "created")


def test_watch_limit_on_the_root(
    ws: Path, make_watcher: WatcherFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_watches(monkeypatch, ws.name.encode())
    watcher, got = make_watcher(ws)
    assert watcher.stats().observer == "polling"
    assert got.warnings
    with pytest.raises(OSError, match="limit"):
        Watcher(ws, DEFAULT_INCLUDE, DEFAULT_EXCLUDE, got, polling=False).start()


def test_no_inotify_instance_left(
    ws: Path, make_watcher: WatcherFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_instance() -> int:
        raise OSError(errno.EMFILE, "inotify instance limit reached")

    monkeypatch.setattr(inotify_c.InotifyFD, "_create_inotify_fd", staticmethod(no_instance))
    watcher, got = make_watcher(ws)
    assert watcher.stats().observer == "polling"
    (ws / "src" / "app.py").write_text("v2")
    got.wait_change("src/app.py", "modified")


def test_watch_limit_later_switches_to_polling(
    ws: Path, make_watcher: WatcherFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher, got = make_watcher(ws)
    assert watcher.stats().observer == "inotify"
    _fail_watches(monkeypatch, b"deep")
    (ws / "deep").mkdir()  # its watch fails: inotify would be blind below it
    got.wait_for(lambda: watcher.stats().observer == "polling")
    (ws / "deep" / "x.py").write_text("x")
    got.wait_change("deep/x.py", "created")
    assert any("limit" in w for w in got.warnings)


def test_kernel_queue_overflow_triggers_a_reconciling_rescan(
    ws: Path, make_watcher: WatcherFactory
) -> None:
    watcher, got = make_watcher(ws)
    # What the kernel sends when its queue overflowed (wd -1, IN_Q_OVERFLOW), fed to the
    # observer's own inotify reader: it is the path a real overflow takes.
    fd = watcher._observer._ghost_fd  # type: ignore[union-attr]
    fd.handle_event(inotify_c.InotifyEvent(-1, inotify_c.InotifyConstants.IN_Q_OVERFLOW, 0, b""))
    got.wait_for(lambda: any(b.overflow for b in got.batches))
    assert [b.source for b in got.batches] == ["rescan"]
    assert any("overflow" in w for w in got.warnings)
    # Watching goes on afterwards.
    (ws / "after.py").write_text("a")
    got.wait_change("after.py", "created")
