"""What the workspace's code and patches can reach (holes 2, 5 and 6 of the hostile-input
issue): a glob that froze the node, Slack secrets under custom variable names that a test run
printed into the store, and a patch that rewrote ghost.toml to run a command at the next start."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.conftest import CONFIG, good_patch
from tests.node_process import NodeProcess

pytestmark = pytest.mark.timeout(120)

HOOK = "http://127.0.0.1:9/services/T0/B0/hook-secret-4711"
SIGNING = "signing-secret-0815"
PRINT_ENV = (
    "import os, pathlib; print(sorted(os.environ.items())); "
    "print(pathlib.Path('.ghost/token').read_text())"
)


def test_a_glob_built_to_backtrack_is_answered_and_the_node_stays_live(
    make_node: Callable[..., NodeProcess],
) -> None:
    node = make_node()
    (node.workspace / ("a" * 200 + ".md")).write_text("x\n")
    api = node.client(timeout=30)
    answer: dict[str, object] = {}

    def tree() -> None:
        answer["reply"] = api.get("/tree?glob=*a*a*a*a*a*a*a*a*ab")

    worker = threading.Thread(target=tree)
    worker.start()
    started = time.monotonic()
    assert node.client(timeout=10).get("/health").status == 200
    worker.join(20)
    assert not worker.is_alive(), "GET /tree with a hostile glob did not answer"
    assert time.monotonic() - started < 20
    reply = answer["reply"]
    assert reply.status == 200  # type: ignore[attr-defined]
    assert reply.json["files"] == []  # type: ignore[attr-defined]
    good_patch(node)


def test_test_runs_never_see_or_record_a_secret(make_node: Callable[..., NodeProcess]) -> None:
    config = CONFIG.replace(
        """test_command = ["{python}", "-c", "print('tests ok')"]""",
        f"test_command = {json.dumps([sys.executable, '-c', PRINT_ENV])}",
    ) + ('\n[slack]\nwebhook_url_env = "MY_HOOK"\nsigning_secret_env = "MY_SIGNING"\n')
    node = make_node(config, env={"MY_HOOK": HOOK, "MY_SIGNING": SIGNING})
    reply = node.client(timeout=60).post(
        "/webhook", {"patch": "*** Begin Patch\n*** Add File: t.py\n+x = 1\n*** End Patch\n"}
    )
    assert reply.status == 200, reply.raw[:500]
    tail = reply.json["tests"]["output_tail"]
    assert "PATH" in tail  # the environment was printed...
    for secret in (HOOK, SIGNING, node.token):
        assert secret not in tail  # ...without the secrets
    assert "MY_HOOK" not in tail
    assert "MY_SIGNING" not in tail
    db = sqlite3.connect(node.state_dir / "events.db")
    stored = [bytes(r[0]) for r in db.execute("SELECT data FROM events")]
    stored += [bytes(r[0]) for r in db.execute("SELECT content FROM blobs")]
    db.close()
    for secret in (HOOK, SIGNING, node.token):
        assert not any(secret.encode() in blob for blob in stored), secret


def test_the_config_file_is_neither_readable_nor_writable(
    make_node: Callable[..., NodeProcess],
) -> None:
    node = make_node()
    before = (node.workspace / "ghost.toml").read_text()
    api = node.client()
    assert api.get("/files?path=ghost.toml").status == 403
    evil = before + '\n[[service]]\nname = "evil"\ncommand = ["touch", "/tmp/pwned"]\n'
    for body in (
        {"format": "files", "files": [{"path": "ghost.toml", "content": evil}]},
        {"format": "files", "files": [{"path": "./ghost.toml", "delete": True}]},
    ):
        reply = api.post("/webhook", body)
        assert reply.status == 403, reply.raw[:300]
        assert reply.json["error"]["details"]["sandbox"][0]["reason"] == "excluded"
    assert (node.workspace / "ghost.toml").read_text() == before
    good_patch(node)


CONFINED_PROBE = """
import pathlib
for what, act in [
    ("token", lambda: pathlib.Path('.ghost/token').read_text()),
    ("events", lambda: pathlib.Path('.ghost/events.db').read_bytes()),
    ("outside", lambda: (pathlib.Path.home() / '.ghost-confine-probe').write_text('x')),
    ("inside", lambda: pathlib.Path('inside.md').write_text('x')),
]:
    try:
        act()
        print(what, "allowed")
    except OSError as exc:
        print(what, "refused", type(exc).__name__)
"""


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_a_confined_test_run_cannot_read_the_token_or_write_outside(
    make_node: Callable[..., NodeProcess],
) -> None:
    config = CONFIG.replace(
        """test_command = ["{python}", "-c", "print('tests ok')"]""",
        f"test_command = {json.dumps([sys.executable, '-c', CONFINED_PROBE])}\n"
        'test_sandbox = "bwrap"',
    )
    node = make_node(config)
    reply = node.client(timeout=60).post(
        "/webhook", {"patch": "*** Begin Patch\n*** Add File: t.py\n+x = 1\n*** End Patch\n"}
    )
    assert reply.status == 200, reply.raw[:500]
    tail = reply.json["tests"]["output_tail"]
    assert "token refused" in tail, tail
    assert "events refused" in tail, tail
    assert "outside refused" in tail, tail
    assert "inside allowed" in tail, tail
    assert not (Path.home() / ".ghost-confine-probe").exists()
