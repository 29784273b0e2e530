"""The watcher against real observers (inotify and polling) on temporary trees."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from adapters.defaults import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
from adapters.watching import ChangeBatch, Watcher

if TYPE_CHECKING:
    from conftest import WatcherFactory


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_edit_create_delete(ws: Path, make_watcher: WatcherFactory) -> None:
    watcher, got = make_watcher(ws)
    (ws / "src" / "app.py").write_text("print('bye')\n")
    (ws / "src" / "new.py").write_text("x = 1\n")
    (ws / "README.md").unlink()

    assert got.wait_change("src/app.py", "modified").sha256 == sha("print('bye')\n")
    assert got.wait_change("src/new.py", "created").sha256 == sha("x = 1\n")
    assert got.wait_change("README.md", "deleted").sha256 is None
    assert {b.source for b in got.batches} == {"external"}
    assert watcher.known() == {"src/app.py": sha("print('bye')\n"), "src/new.py": sha("x = 1\n")}


def test_rename_file_and_directory(ws: Path, make_watcher: WatcherFactory) -> None:
    watcher, got = make_watcher(ws)
    content = sha("print('hi')\n")
    os.rename(ws / "src" / "app.py", ws / "src" / "main.py")
    got.wait_change("src/main.py", "created")
    got.wait_change("src/app.py", "deleted")

    os.rename(ws / "src", ws / "lib")
    assert got.wait_change("lib/main.py", "created").sha256 == content
    got.wait_change("src/main.py", "deleted")

    # Moved out of the tree: inotify reports only the directory; its files must still go.
    os.rename(ws / "lib", ws.parent / "elsewhere")
    got.wait_change("lib/main.py", "deleted")
    got.wait_for(lambda: watcher.known() == {"README.md": sha("# hi\n")})


def test_directory_moved_in_is_reported_in_full(
    ws: Path, tmp_path: Path, make_watcher: WatcherFactory
) -> None:
    outside = tmp_path / "outside" / "pkg"
    (outside / "sub").mkdir(parents=True)
    (outside / "a.py").write_text("a")
    (outside / "sub" / "b.ts").write_text("b")
    _, got = make_watcher(ws)
    os.rename(outside, ws / "pkg")
    got.wait_change("pkg/a.py", "created")
    got.wait_change("pkg/sub/b.ts", "created")


def test_atomic_save_is_a_modification(ws: Path, make_watcher: WatcherFactory) -> None:
    watcher, got = make_watcher(ws)
    target = ws / "src" / "app.py"
    # An editor's save, then the patch engine's own temp name (adapters/workspace/transaction).
    for temp_name, body in (
        (".app.py.tmp", "v2\n"),
        (".app.py.ghost-0123456789abcdef.tmp", "v3\n"),
    ):
        temp = ws / "src" / temp_name
        temp.write_text(body)
        os.replace(temp, target)
        assert got.wait_change("src/app.py", "modified").sha256 == sha(body)
        got.clear()
    got.settle(0.3)
    assert not any(".tmp" in c.path for c in got.changes())
    assert watcher.known()["src/app.py"] == sha("v3\n")


def test_excluded_and_unincluded_paths_are_ignored(ws: Path, make_watcher: WatcherFactory) -> None:
    _, got = make_watcher(ws)
    for rel in (
        "node_modules/react/index.js",
        ".git/objects/info.json",
        ".ghost/state.json",
        "src/__pycache__/app.py",
        "data/seed.json",
        "server.log",
        "notes.txt",  # not in the include list
        "src/app.py.bak",
    ):
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("ignored")
    (ws / "sentinel.md").write_text("seen")
    got.wait_change("sentinel.md", "created")
    got.settle(0.3)
    assert [c.path for c in got.changes()] == ["sentinel.md"]


def test_custom_patterns(ws: Path, make_watcher: WatcherFactory) -> None:
    _, got = make_watcher(ws, include=["*.py", "config/*.toml"], exclude=["gen/", "!gen/keep.py"])
    for rel in ("config/app.toml", "deep/config/app.toml", "gen/x.py", "gen/keep.py", "a/b.py"):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(rel)
    got.wait_change("a/b.py", "created")
    got.wait_change("config/app.toml", "created")
    got.settle(0.3)
    # Nothing below an excluded directory comes back, as in .gitignore.
    assert sorted(c.path for c in got.changes()) == ["a/b.py", "config/app.toml"]


def test_symlinks_are_paths_never_followed(
    ws: Path, tmp_path: Path, make_watcher: WatcherFactory
) -> None:
    outside = tmp_path / "outside"
    (outside / "lib").mkdir(parents=True)
    (outside / "secret.py").write_text("secret")
    (outside / "lib" / "x.py").write_text("x")
    watcher, got = make_watcher(ws)

    os.symlink(outside / "secret.py", ws / "link.py")
    os.symlink(outside / "lib", ws / "vendor")  # a directory link: never walked into
    change = got.wait_change("link.py", "created")
    assert change.sha256 == sha(str(outside / "secret.py"))  # the link text, not the target

    os.remove(ws / "link.py")
    os.symlink(outside / "lib" / "x.py", ws / "link.py")
    assert got.wait_change("link.py", "modified").sha256 == sha(str(outside / "lib" / "x.py"))

    assert watcher.rescan(10)
    got.settle(0.3)
    assert not any(c.path.startswith("vendor") for c in got.changes())
    assert "vendor/x.py" not in watcher.known()


def test_burst_is_one_batch_and_net_effects_only(ws: Path, make_watcher: WatcherFactory) -> None:
    watcher, got = make_watcher(ws, debounce_s=0.2, max_delay_s=5.0)
    (ws / "src" / "app.py").write_text("print('hi')\n")  # same content: no change
    (ws / "gone.py").write_text("short-lived")  # created and deleted in one window: nothing
    (ws / "gone.py").unlink()
    for i in range(50):
        with open(ws / "src" / f"m{i}.py", "w") as f:
            f.write("a")
            f.flush()
            f.write("b")  # several events for one path: one change
    got.wait_for(lambda: len(got.changes()) >= 50)
    got.settle(0.4)
    assert sorted(c.path for c in got.changes()) == sorted(f"src/m{i}.py" for i in range(50))
    assert all(c.kind == "created" and c.sha256 == sha("ab") for c in got.changes())
    if watcher.stats().observer == "inotify":
        assert len(got.batches) == 1


def test_changes_while_stopped_are_reported_by_start_rescan(
    ws: Path, make_watcher: WatcherFactory
) -> None:
    first, got = make_watcher(ws)
    (ws / "src" / "app.py").write_text("v2")
    got.wait_change("src/app.py", "modified")
    first.stop()
    known = first.known()

    (ws / "src" / "app.py").write_text("v3")  # modified while down
    (ws / "README.md").unlink()  # deleted while down
    (ws / "src" / "later.py").write_text("new")  # created while down
    (ws / "notes.txt").write_text("not watched")

    second, got2 = make_watcher(ws, known=known)
    assert [b.source for b in got2.batches] == ["rescan"]
    assert sorted((c.path, c.kind, c.sha256) for c in got2.changes()) == [
        ("README.md", "deleted", None),
        ("src/app.py", "modified", sha("v3")),
        ("src/later.py", "created", sha("new")),
    ]
    assert second.known() == {"src/app.py": sha("v3"), "src/later.py": sha("new")}


def test_start_without_known_state_is_a_silent_baseline(
    ws: Path, make_watcher: WatcherFactory
) -> None:
    watcher, got = make_watcher(ws)
    got.settle(0.2)
    assert got.batches == []
    assert watcher.known() == {"src/app.py": sha("print('hi')\n"), "README.md": sha("# hi\n")}
    assert watcher.rescan(10)
    assert got.batches == []


def test_expectations_attribute_the_source(ws: Path, make_watcher: WatcherFactory) -> None:
    watcher, got = make_watcher(ws)
    watcher.expect({"src/app.py": sha("patched"), "README.md": None}, "patch:p1")
    watcher.expect({"src/other.py": sha("something else")}, "patch:p2")
    (ws / "src" / "app.py").write_text("patched")
    (ws / "README.md").unlink()
    (ws / "src" / "other.py").write_text("a user's write")  # path expected, content not
    got.wait_change("src/other.py", "created")
    got.wait_change("README.md", "deleted")
    got.wait_change("src/app.py", "modified")
    by_source = {(c.path, b.source) for b in got.batches for c in b.changes}
    assert by_source == {
        ("src/app.py", "patch:p1"),
        ("README.md", "patch:p1"),
        ("src/other.py", "external"),
    }
    # An expectation is used once: the same content written again later is somebody else's.
    (ws / "src" / "app.py").write_text("user")
    got.wait_for(lambda: len(got.changes()) == 4)
    (ws / "src" / "app.py").write_text("patched")
    got.wait_for(lambda: len(got.changes()) == 5)
    assert [b.source for b in got.batches[-2:]] == ["external", "external"]


def test_on_batch_errors_do_not_stop_the_watcher(ws: Path) -> None:
    calls = threading.Semaphore(0)

    def on_batch(batch: ChangeBatch) -> None:
        calls.release()
        raise RuntimeError("consumer bug")

    watcher = Watcher(ws, DEFAULT_INCLUDE, DEFAULT_EXCLUDE, on_batch, debounce_s=0.05)
    watcher.start()
    assert watcher.wait_ready(10)
    try:
        (ws / "a.py").write_text("1")
        assert calls.acquire(timeout=10)
        (ws / "b.py").write_text("2")
        assert calls.acquire(timeout=10)
    finally:
        watcher.stop()


def test_start_stop_lifecycle(ws: Path) -> None:
    watcher = Watcher(ws, DEFAULT_INCLUDE, DEFAULT_EXCLUDE, lambda b: None)
    watcher.stop()  # before start: nothing to do
    watcher.stop()
    with pytest.raises(RuntimeError):
        watcher.start()

    watcher = Watcher(ws, DEFAULT_INCLUDE, DEFAULT_EXCLUDE, lambda b: None)
    watcher.start()
    with pytest.raises(RuntimeError):
        watcher.start()
    started = time.monotonic()
    watcher.stop()
    watcher.stop()
    assert time.monotonic() - started < 3
    with pytest.raises(RuntimeError):
        watcher.rescan()


def test_pending_changes_are_flushed_on_stop(ws: Path) -> None:
    got: list[ChangeBatch] = []
    watcher = Watcher(ws, DEFAULT_INCLUDE, DEFAULT_EXCLUDE, got.append, debounce_s=30)
    watcher.start()
    assert watcher.wait_ready(10)
    (ws / "late.py").write_text("x")
    deadline = time.monotonic() + 10
    while watcher.stats().pending == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    watcher.stop()
    assert [c.path for b in got for c in b.changes] == ["late.py"]


def test_deleting_the_root_is_a_warning(tmp_path: Path, make_watcher: WatcherFactory) -> None:
    root = tmp_path / "gone"
    root.mkdir()
    (root / "a.py").write_text("a")
    _, got = make_watcher(root)
    (root / "a.py").unlink()
    root.rmdir()
    got.wait_for(lambda: any("root was deleted" in w for w in got.warnings))
