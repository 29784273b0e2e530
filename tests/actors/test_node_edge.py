"""The edge of a real ghost-node: a watcher, a tunnel, a service and the Slack notifier all run
supervised under one node process (SPEC §3 [[tunnel]], [[service]], [slack]; issue 6).

One node for the module: a workspace, a fake tunnel (a real subprocess forwarding to the node),
a fake dev server on its own port, and an incoming webhook pointing at a loopback fake Slack.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventstore import RecordedEvent, SQLiteEventStore, StoreError
from tests.adapters.slack.fake_slack import FakeSlack
from tests.adapters.web.support import Client, write_workspace
from tests.node_process import NodeProcess

TESTS = Path(__file__).resolve().parents[1]
FAKE_TUNNEL = TESTS / "adapters" / "processes" / "fake_tunnel.py"
FAKE_SERVICE = TESTS / "adapters" / "processes" / "fake_service.py"
LOOPBACK = r"(?<=url=)http://127\\.0\\.0\\.1:\\d+"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class EdgeNode:
    def __init__(self, root: Path, node: NodeProcess, slack: FakeSlack, service_port: int) -> None:
        self.root = root
        self.node = node
        self.slack = slack
        self.service_port = service_port
        self.api: Client = node.client()

    def events(self, type_: str | None = None) -> list[RecordedEvent]:
        try:
            with SQLiteEventStore(self.node.state_dir / "events.db", readonly=True) as store:
                return store.read_all(types=[type_] if type_ else None)
        except StoreError:
            return []

    def health(self) -> dict[str, Any]:
        reply = self.api.get("/health")
        assert reply.status == 200, reply.raw
        body: dict[str, Any] = reply.json
        return body


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeNode]:
    root = tmp_path_factory.mktemp("edge")
    write_workspace(root / "ws", {"app.py": "X = 1\n", "README.md": "# demo\n"})
    port, service_port = _free_port(), _free_port()
    tunnel = [sys.executable, str(FAKE_TUNNEL), str(port)]
    service = [sys.executable, str(FAKE_SERVICE), "serve", "--port", str(service_port)]
    (root / "ghost.toml").write_text(
        f"[node]\nport = {port}\n\n"
        '[[workspace]]\nname = "main"\npath = "ws"\n\n'
        '[slack]\nwebhook_url_env = "SLACK_WEBHOOK_URL"\n\n'
        f'[[tunnel]]\nname = "fake"\ncommand = {json.dumps(tunnel)}\n'
        f'url_pattern = "{LOOPBACK}"\ncheck_interval_s = 1\n\n'
        f'[[service]]\nname = "web"\ncommand = {json.dumps(service)}\nport = {service_port}\n'
        f'health_url = "http://127.0.0.1:{service_port}/"\n'
    )
    slack = FakeSlack().start()
    # NodeProcess() adds its own --port 0; the config's fixed port must win, so pass it again.
    node = NodeProcess(
        root,
        "--config",
        str(root / "ghost.toml"),
        "--port",
        str(port),
        env={"SLACK_WEBHOOK_URL": slack.webhook_url},
    )
    try:
        yield EdgeNode(root, node, slack, service_port)
    finally:
        node.stop()
        slack.stop()


def test_every_edge_actor_runs_supervised(edge: EdgeNode) -> None:
    wanted = {"watcher.main", "patch.main", "webhook", "notifier", "tunnel.fake", "service.web"}

    def all_running() -> bool:
        actors = edge.health()["actors"]
        return all(actors.get(name, {}).get("state") == "running" for name in wanted)

    _until(all_running, f"{sorted(wanted)} running")
    started = {e.stream.removeprefix("actor-") for e in edge.events("ActorStarted")}
    assert wanted <= started


def test_health_reports_the_tunnel_and_the_service(edge: EdgeNode) -> None:
    def tunnel_up() -> dict[str, Any] | None:
        tunnel: dict[str, Any] = edge.health()["tunnels"].get("fake", {})
        return tunnel if tunnel.get("state") == "up" else None

    tunnel = _until(tunnel_up, "the tunnel up in /health")
    assert tunnel["url"].startswith("http://127.0.0.1:")
    # The tunnel really forwards to this node: its public URL serves our /health.
    assert Client(int(tunnel["url"].rsplit(":", 1)[1])).get("/health").status == 200
    service = _until(
        lambda: (s := edge.health()["services"]["web"])["state"] == "running" and s,
        "the service running in /health",
    )
    assert service["port"] == edge.service_port
    assert edge.events("TunnelUp")
    assert edge.events("ServiceStarted")


def test_watcher_tells_editor_changes_from_patch_writes(edge: EdgeNode) -> None:
    ws = edge.root / "ws"
    (ws / "notes.md").write_text("edited by hand\n")

    def seen(path: str, source_prefix: str) -> Callable[[], bool]:
        def check() -> bool:
            return any(
                p["path"] == path and e.data["source"].startswith(source_prefix)
                for e in edge.events("FilesChanged")
                for p in e.data["paths"]
            )

        return check

    _until(seen("notes.md", "external"), "FilesChanged for an editor change")
    reply = edge.api.post(
        "/webhook",
        {"format": "files", "files": [{"path": "app.py", "content": "X = 2\n"}]},
    )
    assert reply.status == 200, reply.raw
    patch_id = reply.json["patch_id"]
    _until(seen("app.py", f"patch:{patch_id}"), "FilesChanged attributed to the patch")
    watch = edge.api.get("/watch")
    assert watch.status == 200
    (info,) = watch.json["watchers"]
    assert info["workspace"] == "main"
    assert info["observer"]
    assert any(c["path"] == "notes.md" for c in info["last_changes"])


def test_slack_is_told_about_an_applied_patch(edge: EdgeNode) -> None:
    reply = edge.api.post(
        "/webhook",
        {"format": "files", "files": [{"path": "slack.md", "content": "hi\n"}]},
    )
    assert reply.status == 200, reply.raw
    patch_id = reply.json["patch_id"]
    _until(
        lambda: any(patch_id in json.dumps(r.payload) for r in edge.slack.accepted()),
        "a Slack message naming the patch",
    )
    sent = _until(lambda: edge.events("NotificationSent"), "NotificationSent")
    assert edge.slack.webhook_url not in json.dumps([e.data for e in sent])  # a secret


def test_stop_ends_the_service_and_tunnel_processes(edge: EdgeNode) -> None:
    pids = [e.data["pid"] for e in edge.events("ServiceStarted") if e.data.get("pid") is not None]
    assert pids
    pids.append(edge.health()["tunnels"]["fake"]["pid"])
    assert edge.node.stop() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with socket.socket() as s:  # the service's port is free again (past TIME_WAIT, as servers)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", edge.service_port))
    stopped = edge.events("NodeStopped")
    assert stopped[-1].data["clean"] is True
