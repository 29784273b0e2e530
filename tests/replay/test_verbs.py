"""The operator's verbs beyond the SPEC's first list: `ghost patches`, `ghost audit` by kind
with reasons, `ghost logs`, `ghost token [--rotate]`, local times, "did you mean"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.ledger.records import command_from_body
from tests.adapters.web.support import write_workspace
from tests.node_process import NodeProcess
from tests.replay.support import ghost, recorded_workspace, v4a


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two applied patches, a dry run and a rejected one."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "a.py").write_text("a = 0\n")
    with recorded_workspace(root) as flow:
        for body in (
            {"patch": v4a("a.py", "a = 0", "a = 1"), "description": "one"},
            {"patch": v4a("a.py", "a = 1", "a = 2"), "description": "two"},
            {"patch": v4a("a.py", "a = 2", "a = 3"), "dry_run": True},
            {"patch": v4a("a.py", "nope", "x")},
        ):
            flow.submit(command_from_body(body, "main"))
    (root / ".ghost" / "token").write_text("the-token\n")
    return root


def test_a_mistyped_command_gets_a_suggestion(project: Path) -> None:
    done = ghost(project, "staus")
    assert done.returncode == 2
    assert "did you mean 'status'?" in done.stderr
    choice = ghost(project, "patches", "--status", "aplied")
    assert choice.returncode == 2
    assert "did you mean 'applied'?" in choice.stderr


def test_patches_newest_first_filtered_and_limited(project: Path) -> None:
    listed = json.loads(ghost(project, "patches", "--json").stdout)["patches"]
    assert [p["status"] for p in listed] == ["rejected", "dry_run", "applied", "applied"]
    applied = json.loads(ghost(project, "patches", "--status", "applied", "--json").stdout)
    assert [p["description"] for p in applied["patches"]] == ["two", "one"]
    newest = json.loads(ghost(project, "patches", "--limit", "1", "--json").stdout)
    assert [p["status"] for p in newest["patches"]] == ["rejected"]
    assert "does not apply" in newest["patches"][0]["reason"]
    table = ghost(project, "patches")
    assert table.returncode == 0
    assert "rejected" in table.stdout


def test_audit_separates_changes_dry_runs_and_rejections(project: Path) -> None:
    done = ghost(project, "audit")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.index("changes (2)") < out.index("dry runs (1)") < out.index("rejected (1)")
    assert "does not apply" in out  # the rejection's reason
    limited = ghost(project, "audit", "--status", "rejected", "--json")
    assert [json.loads(line)["status"] for line in limited.stdout.splitlines()] == ["rejected"]


def test_times_without_a_timezone_are_local(project: Path) -> None:
    future = ghost(project, "replay", "--until", "2099-01-01T00:00:00", "--json")
    assert future.returncode == 0, future.stderr
    assert json.loads(future.stdout)["state"]["position"] > 0
    past = ghost(project, "audit", "--since", "2099-01-01", "--json")
    assert past.returncode == 0, past.stderr
    assert past.stdout == ""
    shown = ghost(
        project,
        "show",
        json.loads(ghost(project, "patches", "--json").stdout)["patches"][-1]["patch_id"],
    )
    assert " received 2" in shown.stdout  # a local timestamp, not a repr


def test_token_is_printed_and_rotated_offline(project: Path) -> None:
    assert ghost(project, "token").stdout == "the-token\n"
    rotated = ghost(project, "token", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "when it starts" in rotated.stdout
    new = (project / ".ghost" / "token").read_text().strip()
    assert new != "the-token"
    assert len(new) >= 32
    assert ghost(project, "token").stdout.strip() == new


def test_a_running_node_takes_a_rotated_token_at_once(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws", {"a.py": "a = 1\n"})
    node = NodeProcess(root, env={"GHOST_HTTP_RATE": "0"})
    try:
        old = node.client()
        assert old.get("/patches").status == 200
        done = ghost(root, "token", "--rotate")
        assert done.returncode == 0, done.stderr
        assert "refuses the old token now" in done.stdout
        assert old.get("/patches").status == 401
        new = (node.state_dir / "token").read_text().strip()
        assert node.client(token=new).get("/patches").status == 200
        assert ghost(root, "status").returncode == 0  # the CLI reads the new one
        logs = ghost(root, "logs", "-n", "200")
        assert logs.returncode == 0, logs.stderr
        assert "node token rotated" in logs.stdout
        assert new not in logs.stdout
    finally:
        node.stop()


def test_init_writes_relative_paths_and_templates_to_uncomment(tmp_path: Path) -> None:
    from adapters.config import load_config

    (tmp_path / "sub").mkdir()
    done = ghost(tmp_path, "init", "--path", "sub/ghost.toml")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "sub" / "ghost.toml").read_text()
    assert 'path = ".."' in text
    assert str(tmp_path) not in text
    config = load_config(tmp_path / "sub" / "ghost.toml")
    assert config.workspaces[0].path == tmp_path.resolve()
    assert config.node.state_dir == tmp_path.resolve() / ".ghost"
    assert not config.tunnels
    # the commented tunnel and Slack, uncommented, are a valid config as they are
    lines = [
        line[2:]
        if line.startswith(("# [", "# name", "# command", "# url_", "# webhook_", "# sig"))
        else line
        for line in text.splitlines()
    ]
    (tmp_path / "sub" / "ghost.toml").write_text("\n".join(lines) + "\n")
    full = load_config(tmp_path / "sub" / "ghost.toml")
    assert full.tunnels[0].name == "cloudflare"
    assert full.slack.webhook_url_env == "SLACK_WEBHOOK_URL"
    assert ghost(tmp_path, "init", "--path", "sub/ghost.toml").returncode == 2  # never overwrites


def test_a_node_on_another_directory_keeps_its_state_there(tmp_path: Path) -> None:
    project = write_workspace(tmp_path / "project", {"a.py": "a = 1\n"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    node = NodeProcess(elsewhere, "--workspace", str(project), state_dir=project / ".ghost", env={})
    try:
        assert (project / ".ghost" / "events.db").exists()
        assert not (elsewhere / ".ghost").exists()
        assert ghost(project, "status").returncode == 0
    finally:
        node.stop()
