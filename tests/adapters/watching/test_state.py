"""Reading files for the watcher: sha256 without following symlinks or leaving the root."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from adapters.watching import PathFilter
from adapters.watching.known import KnownState
from adapters.watching.state import read, read_in_dir, walk_files


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_read_files_links_and_non_files(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "d").mkdir(parents=True)
    (root / "d" / "a.py").write_bytes(b"abc")
    os.symlink("/etc/passwd", root / "link.py")
    os.mkfifo(root / "pipe.py")
    assert read(root, "d/a.py")[0] == sha(b"abc")
    assert read(root, "link.py")[0] == sha(b"/etc/passwd")  # the link text, never the target
    assert read(root, "pipe.py") == (None, None)  # a fifo is not a file (and must not block)
    assert read(root, "d") == (None, None)
    assert read(root, "missing.py") == (None, None)


def test_a_directory_swapped_for_a_symlink_reads_as_absent(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.py").write_bytes(b"secret")
    root = tmp_path / "ws"
    root.mkdir()
    os.symlink(outside, root / "d")
    assert read(root, "d/a.py") == (None, None)


def test_walk_prunes_and_never_follows_links(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    for rel in ("a.py", "src/b.ts", "node_modules/x/c.js", "src/notes.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    os.symlink(tmp_path, root / "src" / "up")  # a loop out of the root
    os.symlink("nowhere", root / "dangling.py")
    found = sorted(rel for _, _, rel in walk_files(root, PathFilter()))
    assert found == ["a.py", "dangling.py", "src/b.ts"]
    assert sorted(rel for _, _, rel in walk_files(root, PathFilter(), "src")) == ["src/b.ts"]
    assert list(walk_files(root, PathFilter(), "missing")) == []


def test_known_state_net_changes() -> None:
    known = KnownState({"a.py": "1", "d/b.py": "2", "d/e/c.py": "3"})
    assert known.record("a.py", "1", None) is None
    change = known.record("a.py", "9", None)
    assert change is not None
    assert change.kind == "modified"
    change = known.record("new.py", "5", None)
    assert change is not None
    assert change.kind == "created"
    change = known.record("a.py", None, None)
    assert change is not None
    assert change.kind == "deleted"
    assert change.sha256 is None
    assert known.record("never.py", None, None) is None
    assert sorted(known.paths_under(["d"])) == ["d/b.py", "d/e/c.py"]
    assert known.missing_from({"new.py"}) == ["d/b.py", "d/e/c.py"]


def test_read_in_dir_opens_the_directory_once_for_many_files(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "d" / "e").mkdir(parents=True)
    big = os.urandom(3 * 256 * 1024 + 17)  # several read chunks
    (root / "d" / "e" / "big.py").write_bytes(big)
    (root / "d" / "e" / "empty.py").write_bytes(b"")
    os.symlink("../x", root / "d" / "e" / "link.py")
    got = dict(read_in_dir(root, "d/e", ["big.py", "empty.py", "link.py", "gone.py", ".."]))
    assert got["big.py"][0] == sha(big)
    assert got["empty.py"][0] == sha(b"")
    assert got["link.py"][0] == sha(b"../x")
    assert got["gone.py"] == got[".."] == (None, None)
    assert dict(read_in_dir(root, "", ["d"])) == {"d": (None, None)}  # a directory is no file


def test_read_in_dir_never_walks_through_a_symlinked_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "a.py").write_bytes(b"secret")
    root = tmp_path / "ws"
    root.mkdir()
    os.symlink(outside, root / "d")  # the last component
    os.symlink(outside / "sub", root / "s")
    (root / "f").write_bytes(b"a file, not a directory")
    assert dict(read_in_dir(root, "d/sub", ["a.py"])) == {"a.py": (None, None)}
    assert dict(read_in_dir(root, "s", ["a.py"])) == {"a.py": (None, None)}
    assert dict(read_in_dir(root, "f", ["a.py"])) == {"a.py": (None, None)}
    assert dict(read_in_dir(root, "missing/deeper", ["a.py"])) == {"a.py": (None, None)}


def test_a_file_growing_while_read_is_read_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    path = root / "a.py"
    path.write_bytes(b"x" * 10)
    real_fstat = os.fstat

    def fstat_then_grow(fd: int) -> os.stat_result:  # the size seen, then more is written
        st = real_fstat(fd)
        with path.open("ab") as f:
            f.write(b"y" * 5000)
        return st

    monkeypatch.setattr(os, "fstat", fstat_then_grow)
    got = read(root, "a.py")[0]
    monkeypatch.undo()
    assert got == sha(b"x" * 10 + b"y" * 5000)
