"""Replacing a file whole: a reader or a crash sees the old file or the new one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.durable import AtomicFile, atomic_write


def test_replaces_with_the_mode_asked_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write(target, b"one")
    assert os.stat(target).st_mode & 0o777 == 0o600
    atomic_write(target, b"two", mode=0o644)
    assert target.read_bytes() == b"two"
    assert os.stat(target).st_mode & 0o777 == 0o644
    atomic_write(target, b"cache", durable=False)
    assert target.read_bytes() == b"cache"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    replacement = AtomicFile(target)
    replacement.file.write(b"half")
    replacement.discard()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_a_kill_in_the_middle_leaves_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old" * 1000)
    script = (
        "import os, sys\nfrom pathlib import Path\nfrom adapters.durable import AtomicFile\n"
        "r = AtomicFile(Path(sys.argv[1]))\nr.file.write(b'new' * 1000)\nr.sync()\nos._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(target)], cwd=Path.cwd())
    assert done.returncode == 9
    assert target.read_bytes() == b"old" * 1000
