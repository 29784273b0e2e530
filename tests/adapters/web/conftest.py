"""One node for most API tests (module-independent, started once per session): three
workspaces -- `main` (auto), `manual` (approval manual), `slow` (a test command that sleeps,
to see 202 queued) -- and HMAC enabled, so both auth schemes are exercised on one node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adapters.web.support import HMAC_SECRET, Client, write_workspace
from tests.node_process import NodeProcess

CONFIG = """
[[workspace]]
name = "main"
path = "main"

[[workspace]]
name = "manual"
path = "manual"
approval = "manual"

[[workspace]]
name = "slow"
path = "slow"
test_command = ["sleep", "2"]
"""

FILES = {
    "app.py": 'def greet(name):\n    return "Hello " + name\n',
    "util.py": "def add(a, b):\n    return a + b\n",
    "src/deep/mod.py": "X = 1\n",
    "README.md": "# demo\n",
    "notes.log": "excluded\n",
}


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    root = tmp_path_factory.mktemp("webnode")
    for name in ("main", "manual", "slow"):
        write_workspace(root / name, FILES)
    (root / "ghost.toml").write_text(CONFIG)
    running = NodeProcess(
        root,
        "--config",
        str(root / "ghost.toml"),
        "--state-dir",
        str(root / ".ghost"),
        env={"GHOST_HMAC_SECRET": HMAC_SECRET, "GHOST_HTTP_RATE": "0"},
    )
    yield running
    assert running.stop() == 0


@pytest.fixture
def api(node: NodeProcess) -> Client:
    return node.client()
