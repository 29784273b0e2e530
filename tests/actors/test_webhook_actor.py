"""WebhookActor under a real ghost-node: restarted by its supervisor, it binds again on the
same port (SPEC §4; issue 5.1), and the node keeps serving. The restart is asked the way an
operator does it, `/ghost restart webhook` from Slack, signed with the signing secret."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import SQLiteEventStore
from tests.adapters.slack.fake_slack import FakeSlack
from tests.adapters.slack.test_commands import form, signed
from tests.adapters.web.support import NODE, write_workspace
from tests.node_process import NodeProcess

SECRET = "webhook-actor-test-signing-secret"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    write_workspace(tmp_path / "ws", {"a.txt": "a\n"})
    (tmp_path / "ghost.toml").write_text(
        '[[workspace]]\nname = "main"\npath = "ws"\n\n'
        '[slack]\nwebhook_url_env = "SLACK_WEBHOOK_URL"\n'
        'signing_secret_env = "SLACK_SIGNING_SECRET"\n'
    )
    slack = FakeSlack().start()
    running = NodeProcess(
        tmp_path,
        "--config",
        str(tmp_path / "ghost.toml"),
        env={"SLACK_SIGNING_SECRET": SECRET, "SLACK_WEBHOOK_URL": slack.webhook_url},
    )
    try:
        yield running
        assert running.stop() == 0
    finally:
        running.kill()
        slack.stop()


def _webhook_starts(node: NodeProcess) -> int:
    with SQLiteEventStore(node.state_dir / "events.db", readonly=True) as store:
        return len(store.read_all(types=["ActorStarted"], streams=["actor-webhook"]))


def test_restarted_webhook_actor_binds_the_same_port_again(node: NodeProcess) -> None:
    api = node.client()
    port = node.port
    assert api.get("/health").status == 200
    assert _webhook_starts(node) == 1

    body = form("restart webhook")
    reply = api.post(
        "/slack/commands",
        body,
        headers={
            **signed(body, int(time.time()), SECRET),
            "Content-Type": "application/x-www-form-urlencoded",
        },
        auth=False,
    )
    assert reply.status == 200, reply.raw

    deadline = time.monotonic() + 15
    while _webhook_starts(node) < 2:
        assert time.monotonic() < deadline, "the webhook actor was not restarted"
        time.sleep(0.1)
    # The new incarnation serves on the very port clients and node.json know.
    deadline = time.monotonic() + 10
    while True:
        try:
            health = api.get("/health")
        except OSError:
            health = None
        if health is not None and health.status == 200:
            break
        assert time.monotonic() < deadline, "the node did not serve again after the restart"
        time.sleep(0.1)
    assert health.json["actors"]["webhook"]["state"] == "running"
    assert json.loads((node.state_dir / "node.json").read_text())["port"] == port
    assert api.post("/webhook", {"format": "files", "files": []}).status < 500


def test_a_port_already_taken_at_start_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    """No restart can free a port another process holds: the node says so and exits 2 (SPEC
    §3), instead of its supervisors restarting the web actor until they give up."""
    write_workspace(tmp_path / "ws", {"a.txt": "a\n"})
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(NODE), "--port", str(port), "--workspace", str(tmp_path / "ws")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2, done.stderr[-2000:]
    assert time.monotonic() - started < 15
    assert f"127.0.0.1:{port}" in done.stderr
    assert "another ghost-node" in done.stderr
    # Found before anything is created (issue 20): no state directory, no traceback.
    assert not (tmp_path / ".ghost").exists()
    assert "Traceback" not in done.stderr
