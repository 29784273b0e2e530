"""The `ghost` commands that talk to a running node (SPEC §7), as an operator runs them: a real
`bin/ghost` process against a real ghost-node on a loopback port."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.web.support import GHOST, Client, write_workspace
from tests.node_process import NodeProcess

CONFIG = """
[[workspace]]
name = "main"
path = "main"

[[workspace]]
name = "manual"
path = "manual"
approval = "manual"
"""


def ghost(
    state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # GHOST_TOKEN from the outer environment would override the state directory's token.
    base = {k: v for k, v in os.environ.items() if k != "GHOST_TOKEN"}
    return subprocess.run(
        [sys.executable, str(GHOST), "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )


def add_file(path: str, text: str) -> str:
    return f"*** Begin Patch\n*** Add File: {path}\n+{text}\n*** End Patch\n"


def start(root: Path) -> NodeProcess:
    for name in ("main", "manual"):
        write_workspace(root / name, {"app.py": "x = 1\n"})
    (root / "ghost.toml").write_text(CONFIG)
    return NodeProcess(
        root,
        "--config",
        str(root / "ghost.toml"),
        "--state-dir",
        str(root / ".ghost"),
        env={"GHOST_HTTP_RATE": "0"},
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    running = start(tmp_path_factory.mktemp("clinode"))
    yield running
    assert running.stop() == 0


@pytest.fixture
def api(node: NodeProcess) -> Client:
    return node.client()


def submit(api: Client, workspace: str, text: str) -> tuple[str, str]:
    """A new file in `workspace`: (patch id, path)."""
    path = f"gen_{uuid.uuid4().hex[:8]}.py"
    reply = api.post("/webhook", {"workspace": workspace, "patch": add_file(path, text)})
    assert reply.status in (200, 202), reply.raw
    return reply.json["patch_id"], path


def test_approve_pending_patch_changes_the_file(node: NodeProcess, api: Client) -> None:
    pid, path = submit(api, "manual", "m = 1")
    assert api.get(f"/patches/{pid}").json["status"] == "pending_approval"
    assert not (node.workspace / "manual" / path).exists()
    done = ghost(node.state_dir, "approve", pid)
    assert done.returncode == 0, done.stderr
    assert f"patch {pid}: applied" in done.stdout
    assert (node.workspace / "manual" / path).read_text() == "m = 1\n"
    again = ghost(node.state_dir, "approve", pid)  # not pending any more: the node's 409
    assert again.returncode == 1
    assert "ghost:" in again.stderr
    assert "Traceback" not in again.stderr
    missing = ghost(node.state_dir, "approve", "no-such-patch")
    assert missing.returncode == 1
    assert "no-such-patch" in missing.stderr


def test_reject_with_a_reason(node: NodeProcess, api: Client) -> None:
    pid, path = submit(api, "manual", "r = 1")
    done = ghost(node.state_dir, "reject", pid, "--reason", "not today", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "rejected"
    assert not (node.workspace / "manual" / path).exists()
    view = api.get(f"/patches/{pid}").json
    assert view["status"] == "rejected"
    assert view["error"]["message"] == "not today"  # the reason is the rejection's message
    assert view["decisions"][-1]["decision"] == "rejected"


def test_pause_queues_then_resume_applies(node: NodeProcess, api: Client) -> None:
    paused = ghost(node.state_dir, "pause", "--json")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout) == {"paused": True}
    try:
        pid, path = submit(api, "main", "q = 1")
        assert api.get(f"/patches/{pid}").json["status"] == "queued"
        assert not (node.workspace / "main" / path).exists()
    finally:
        resumed = ghost(node.state_dir, "resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {"paused": False, "applied": 1}
    assert (node.workspace / "main" / path).read_text() == "q = 1\n"
    assert api.get(f"/patches/{pid}").json["status"] == "applied"


def test_pause_route_refuses_fields_and_wrong_auth(api: Client) -> None:
    bad = api.post("/pause", {"reason": "x"})
    assert bad.status == 400
    assert bad.error["details"]["field"] == "reason"
    assert api.post("/resume", auth=False).status == 401


def test_online_rollback_refused_when_changed_then_forced(node: NodeProcess, api: Client) -> None:
    pid, path = submit(api, "main", "b = 1")
    target = node.workspace / "main" / path
    dry = ghost(node.state_dir, "rollback", pid, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert target.exists()
    target.write_text("b = 2\n")  # an edit by hand since the patch
    refused = ghost(node.state_dir, "rollback", pid)
    assert refused.returncode == 1
    assert f"changed since: {path}" in refused.stderr
    assert target.read_text() == "b = 2\n"
    forced = ghost(node.state_dir, "rollback", pid, "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["status"] == "rolled_back"
    assert not target.exists()  # the patch added it: rolling back removes it


def test_status_online(node: NodeProcess) -> None:
    result = ghost(node.state_dir, "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    assert status["running"] is True
    assert status["status"] == "ok"
    assert status["pid"] == node.proc.pid
    assert status["url"].endswith(f":{node.port}")
    for key in ("uptime_s", "version", "position", "actors", "tunnels", "services"):
        assert key in status, key
    assert all({"state", "restarts"} <= set(a) for a in status["actors"].values())
    shown = ghost(node.state_dir, "status")
    assert shown.returncode == 0
    assert "ghost-node ok" in shown.stdout
    assert "actors" in shown.stdout


def test_doctor_on_a_healthy_node(node: NodeProcess) -> None:
    result = ghost(node.state_dir, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines
    assert all(line.startswith("ok ") for line in lines), result.stdout
    names = "\n".join(lines)
    for check in (
        "node:",
        "GET /health:",
        "GET /patches:",
        "GET /events?limit=1:",
        "GET /tree?workspace=main:",
        "GET /metrics:",
        "GET /openapi.json:",
        "GET /watch:",
        "GET /dashboard:",
        "store: hash chain ok",
        "workspace main:",
        "workspace manual:",
    ):
        assert check in names, check
    # the probe file is gone again
    assert not list((node.workspace / "main").glob(".ghost-doctor-*"))


def test_wrong_token_is_a_usage_error(node: NodeProcess) -> None:
    result = ghost(node.state_dir, "pause", env={"GHOST_TOKEN": "wrong"})
    assert result.returncode == 2
    assert "the token in GHOST_TOKEN was refused" in result.stderr
    # the node was not paused
    assert ghost(node.state_dir, "status", "--json").returncode == 0


def test_doctor_failures_then_offline(tmp_path: Path) -> None:
    """A node of its own: this test breaks it. Tests run as root, for whom chmod 0o500 does
    not stop writes, so the workspace is removed instead (an unmounted disk, a deleted
    checkout: a real failure nobody can write through), and the hash chain is tampered with
    the way test_cli.py does it (an event's type changed behind the store's back)."""
    node = start(tmp_path / "broken")
    try:
        shutil.rmtree(node.workspace / "manual")
        conn = sqlite3.connect(node.state_dir / "events.db", timeout=10)
        # Position 2, not 1: the first event is NodeStarted, which names the workspaces.
        conn.execute("UPDATE events SET type = 'Tampered' WHERE position = 2")
        conn.commit()
        conn.close()
        result = ghost(node.state_dir, "doctor")
        assert result.returncode == 1, result.stdout
        lines = result.stdout.splitlines()
        assert any(line.startswith("FAIL  workspace manual:") for line in lines), lines
        assert any(
            line.startswith("FAIL  store: hash chain broken at position 2") for line in lines
        )
        assert any(line.startswith("ok    workspace main:") for line in lines), lines
        assert any(line.startswith("ok    GET /patches:") for line in lines), lines
    finally:
        node.stop()
    # The node is gone: status replays the events, says so, exits 1; online commands exit 2.
    offline = ghost(node.state_dir, "status")
    assert offline.returncode == 1
    assert "not running" in offline.stdout
    as_json = ghost(node.state_dir, "status", "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["running"] is False
    approve = ghost(node.state_dir, "approve", "whatever")
    assert approve.returncode == 2
    assert f"no ghost-node is running on {node.state_dir}" in approve.stderr
    doctor = ghost(node.state_dir, "doctor")
    assert doctor.returncode == 1
    assert doctor.stdout.startswith("FAIL  node:")
