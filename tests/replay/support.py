"""What the `ghost` CLI suites share: running bin/ghost, a v4a patch, and a workspace whose
store a node could have left (NodeStarted recorded, patches applied through a PatchFlow)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from actors.patches.flow import PatchFlow
from adapters.config import WorkspaceConfig
from eventstore import NewEvent, SQLiteEventStore
from tests.node_process import GHOST


def ghost(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GHOST), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def v4a(path: str, old: str, new: str) -> str:
    return f"*** Begin Patch\n*** Update File: {path}\n@@\n-{old}\n+{new}\n*** End Patch\n"


@contextmanager
def recorded_workspace(root: Path) -> Iterator[PatchFlow]:
    """`root/.ghost/` with a store that records NodeStarted for workspace `main` at `root`, and
    a loaded PatchFlow on it (its store: `flow.store`); both closed on the way out."""
    state = root / ".ghost"
    state.mkdir()
    store = SQLiteEventStore(state / "events.db")
    started = {"pid": 1, "workspaces": [{"name": "main", "path": str(root)}]}
    store.append("node", [NewEvent("NodeStarted", started)])
    ws = WorkspaceConfig(name="main", path=root, include=("*",), exclude=("/.ghost/",))
    flow = PatchFlow(ws, store, state / "journal" / "main")
    flow.load()
    try:
        yield flow
    finally:
        flow.close()
        store.close()
