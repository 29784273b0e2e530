"""The hostile-input suite: attacks against a real ghost-node process over loopback, one
module per class of input (bodies and strings, globs and sizes, secrets, signatures,
connections, output). Every test reproduces an attack that once held the node or leaked from
it, then checks that the node still serves a good request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.adapters.web.support import write_workspace
from tests.node_process import NodeProcess

FILES = {
    "app.py": "def main():\n    return 1\n",
    "test_app.py": "from app import main\n\n\ndef test_main():\n    assert main() == 1\n",
}


def start_node(root: Path, config: str, env: dict[str, str] | None = None) -> NodeProcess:
    write_workspace(root, FILES)
    (root / "ghost.toml").write_text(config)
    return NodeProcess(
        root,
        "--config",
        str(root / "ghost.toml"),
        env={"GHOST_HTTP_RATE": "0", **(env or {})},
    )


CONFIG = """
[[workspace]]
name = "main"
path = "."
test_command = ["{python}", "-c", "print('tests ok')"]
"""


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def make(config: str = CONFIG, env: dict[str, str] | None = None) -> NodeProcess:
        import sys

        node = start_node(
            tmp_path / f"ws{len(started)}", config.replace("{python}", sys.executable), env
        )
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


def good_patch(node: NodeProcess, name: str = "ok.py") -> None:
    """The node still applies an ordinary patch (its patch actor is alive and well)."""
    reply = node.client().post(
        "/webhook",
        {"patch": f"*** Begin Patch\n*** Add File: {name}\n+x = 1\n*** End Patch\n"},
    )
    assert reply.status == 200, reply.raw[:500]
    assert reply.json["status"] == "applied", reply.json
