"""Text from the network shown to an operator (hole 8 of the hostile-input issue): a
description or author carrying ESC, CR, BEL or bidi overrides must not drive the operator's
terminal from `ghost show` / `ghost audit`; --json keeps the exact text."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.adapters.web.support import GHOST, NODE
from tests.node_process import NodeProcess

pytestmark = pytest.mark.timeout(120)

HOSTILE = "\x1b]0;owned\x07\x1b[2J\rfake\u202etxt.exe\x9b"
RAW = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


def ghost(node: NodeProcess, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(GHOST), "--state-dir", str(node.state_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_control_characters_are_escaped_for_people_and_kept_for_scripts(
    make_node: Callable[..., NodeProcess],
) -> None:
    node = make_node()
    body = {
        "patch": "*** Begin Patch\n*** Add File: c.py\n+x = '\x1b[31m'\n*** End Patch\n",
        "description": HOSTILE,
        "author": f"gpt{HOSTILE}",
    }
    reply = node.client().post("/webhook", body)
    assert reply.status == 200, reply.raw[:300]
    pid = reply.json["patch_id"]
    for args in (("show", pid), ("audit",), ("events",)):
        out = ghost(node, *args)
        for raw in RAW:
            assert raw not in out, (args, out)
    shown = ghost(node, "show", pid)
    assert "\\x1b]0;owned\\x07" in shown
    assert "\\u202e" in shown
    assert "+x = '\\x1b[31m'" in shown  # a diff's controls too, its lines kept
    (row,) = [json.loads(line) for line in ghost(node, "audit", "--json").splitlines()]
    assert row["description"] == HOSTILE
    assert row["author"] == f"gpt{HOSTILE}"


def _banner(root: Path, tty: bool) -> str:
    """The lines ghost-node prints until it serves (stdout a pty when `tty`), then stopped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GHOST_", "NOTIFY_"))}
    master, slave = pty.openpty() if tty else os.pipe()
    proc = subprocess.Popen(
        [sys.executable, str(NODE), "--port", "0"],
        cwd=root,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=slave,
        stderr=subprocess.DEVNULL,
    )
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 30
        while b"dashboard:" not in out or not out.endswith(b"\n"):
            assert time.monotonic() < deadline, out
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:  # the pty closed: the node exited
                    break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        os.close(master)
    return out.decode(errors="replace")


def test_the_token_is_printed_once_on_a_terminal_and_never_elsewhere(tmp_path: Path) -> None:
    root = tmp_path / "tty"
    root.mkdir()
    first = _banner(root, tty=True)
    token = (root / ".ghost" / "token").read_text().strip()
    assert f"dashboard?token={token}" in first
    assert token not in _banner(root, tty=True)  # the next start: the URL only
    piped = tmp_path / "piped"
    piped.mkdir()
    out = _banner(piped, tty=False)  # a first run whose stdout is journald, say
    assert "dashboard: http://" in out
    assert (piped / ".ghost" / "token").read_text().strip() not in out
    for log in (root / ".ghost" / "logs").glob("*"):
        assert token not in log.read_text(errors="replace")
