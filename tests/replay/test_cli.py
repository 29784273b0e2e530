"""The `ghost` CLI as an operator runs it: a real process, exit codes, --json."""

from __future__ import annotations

import json
import plistlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import NewEvent, SQLiteEventStore

GHOST = Path(__file__).resolve().parents[2] / "bin" / "ghost"


def ghost(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GHOST), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / ".ghost").mkdir(parents=True)
    with SQLiteEventStore(root / ".ghost" / "events.db") as store:
        store.append("node", [NewEvent("NodeStarted", {"pid": 1})])
        store.append("patch-a", [NewEvent("PatchReceived", {"patch_id": "a"})])
        store.append("patch-a", [NewEvent("PatchApplied", {"patch_id": "a"})])
    return root


def test_events_json_and_filters(ws: Path) -> None:
    result = ghost(ws, "events", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["type"] for r in rows] == ["NodeStarted", "PatchReceived", "PatchApplied"]
    assert rows[1]["data"] == {"patch_id": "a"}
    only = ghost(ws, "events", "--json", "--stream", "patch-a", "--after", "2")
    assert [json.loads(line)["position"] for line in only.stdout.splitlines()] == [3]
    table = ghost(ws, "events")
    assert "PatchApplied" in table.stdout


def test_verify_ok_then_tampered(ws: Path) -> None:
    ok = ghost(ws, "verify", "--json")
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["ok"] is True
    conn = sqlite3.connect(ws / ".ghost" / "events.db")
    conn.execute("UPDATE events SET type = 'PatchRejected' WHERE position = 3")
    conn.commit()
    conn.close()
    bad = ghost(ws, "verify", "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["first_bad_position"] == 3
    assert "position 3" in ghost(ws, "verify").stdout


def test_missing_store_and_bad_usage_exit_2(tmp_path: Path) -> None:
    missing = ghost(tmp_path, "events")
    assert missing.returncode == 2
    assert "no event store" in missing.stderr
    assert ghost(tmp_path, "frobnicate").returncode == 2
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[node]\nport = 'x'\n")
    result = ghost(tmp_path, "--config", str(bad_config), "events")
    assert result.returncode == 2
    assert "node.port" in result.stderr


def test_service_install_systemd_unit_verifies(ws: Path, tmp_path: Path) -> None:
    dest = tmp_path / "units" / "ghost-node.service"
    result = ghost(ws, "service", "install", "--systemd", "--dest", str(dest))
    assert result.returncode == 0, result.stderr
    unit = dest.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        f"ReadWritePaths={ws / '.ghost'}",
        "NoNewPrivileges=yes",
    ):
        assert line in unit
    assert "ghost-node" in unit
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package `systemd`)")
    check = subprocess.run([analyze, "verify", str(dest)], capture_output=True, text=True)
    problems = [line for line in check.stderr.splitlines() if dest.name in line]
    assert not problems, check.stderr


def test_service_install_launchd_plist(ws: Path, tmp_path: Path) -> None:
    dest = tmp_path / "ghost.plist"
    result = ghost(ws, "service", "install", "--launchd", "--user", "--dest", str(dest))
    assert result.returncode == 0, result.stderr
    plist = plistlib.loads(dest.read_bytes())
    assert plist["KeepAlive"]
    assert plist["ProgramArguments"][0].endswith("bin/ghost-node")
