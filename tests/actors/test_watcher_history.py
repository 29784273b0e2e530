"""`[[workspace]] history = "all"`: the watcher keeps the contents of changed text files, so an
editor's save can be read back (`ghost cat --until`); credential and binary files never go in."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.adapters.web.support import write_workspace
from tests.node_process import GHOST, NodeProcess, until

CONFIG = """
[[workspace]]
name = "main"
path = "."
include = ["*"]
history = "{history}"
"""


def ghost(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(GHOST), *args], cwd=cwd, capture_output=True, timeout=60
    )


def _saved_and_seen(node: NodeProcess, root: Path) -> None:
    node.wait_watchers_ready()
    (root / "notes.md").write_text("first draft\n")
    (root / ".env").write_text("SECRET=1\n")
    (root / "blob.bin").write_bytes(b"\x00\x01\x02" * 10)

    def seen() -> bool:
        recorded = {
            p["path"]
            for e in node.events()
            if e.type == "FilesChanged" and not e.data.get("initial")
            for p in e.data.get("paths", ())
        }
        return "notes.md" in recorded

    until(seen, "the watcher's FilesChanged for notes.md", 20)
    time.sleep(0.1)


def test_history_all_keeps_an_editors_saves(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws", {"a.md": "a\n"})
    (root / "ghost.toml").write_text(CONFIG.format(history="all"))
    node = NodeProcess(root, "--config", "ghost.toml", env={"GHOST_HTTP_RATE": "0"})
    try:
        _saved_and_seen(node, root)
        kept = ghost(root, "cat", "notes.md")
        assert kept.returncode == 0, kept.stderr
        assert kept.stdout == b"first draft\n"
        for never in (".env", "blob.bin"):
            shown = ghost(root, "cat", never)
            assert shown.returncode == 1, (never, shown.stdout)
            assert b"SECRET" not in shown.stdout
    finally:
        node.stop()


def test_by_default_only_patches_contents_are_kept(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws", {"a.md": "a\n"})
    (root / "ghost.toml").write_text(CONFIG.format(history="patches"))
    node = NodeProcess(root, "--config", "ghost.toml", env={"GHOST_HTTP_RATE": "0"})
    try:
        _saved_and_seen(node, root)
        missing = ghost(root, "cat", "notes.md")
        assert missing.returncode == 1
        assert b"outside any patch" in missing.stderr
    finally:
        node.stop()
