"""Replay, audit and rollback over a real scripted session (PatchFlow writing real files and
events), through the real `ghost` CLI process where it matters."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.patches.flow import PatchFlow
from adapters.config import WorkspaceConfig
from adapters.ledger.records import command_from_body
from adapters.statedir import StateDir
from eventstore import NewEvent, SQLiteEventStore
from replay.reading import replay
from replay.state import NodeProjection
from tests.replay.support import ghost, v4a


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A workspace, its state dir and a session of mixed commands."""
    tmp = tmp_path_factory.mktemp("session")
    root = tmp / "ws"
    root.mkdir()
    for name in ("a.py", "b.py", "c.py"):
        (root / name).write_text(f"{name[0]} = 0\n")
    state = root / ".ghost"
    state.mkdir()
    ws = WorkspaceConfig(name="main", path=root, include=("*",), exclude=("/.ghost/",))
    store = SQLiteEventStore(state / "events.db")
    store.append(
        "node",
        [NewEvent("NodeStarted", {"pid": 1, "workspaces": [{"name": "main", "path": str(root)}]})],
    )
    flow = PatchFlow(ws, store, state / "journal" / "main")
    flow.load()
    live = NodeProjection()
    subscription = store.subscribe()
    ids: dict[str, str] = {}
    counters = {"a.py": 0, "b.py": 0, "c.py": 0}
    for i in range(30):
        name = ("a.py", "b.py", "c.py")[i % 3]
        old, new = counters[name], counters[name] + 1
        out = flow.submit(
            command_from_body(
                {
                    "patch": v4a(name, f"{name[0]} = {old}", f"{name[0]} = {new}"),
                    "description": f"step {i}",
                    "author": "gpt",
                },
                "main",
            )
        )
        assert out.status == "applied", out.error
        counters[name] = new
        ids[f"step{i}"] = out.patch_id
    bad = flow.submit(command_from_body({"patch": v4a("a.py", "nope", "x")}, "main"))
    ids["rejected"] = bad.patch_id
    dry = flow.submit(
        command_from_body({"patch": v4a("b.py", "b = 10", "b = 99"), "dry_run": True}, "main")
    )
    ids["dry"] = dry.patch_id
    # roll back the last patch of c.py (step 29), long after the first ones
    assert flow.rollback(ids["step29"], by="op").status == "rolled_back"
    for event in subscription.poll(timeout=5, max_count=100_000):
        live.apply(event)
    subscription.close()
    store.close()
    return {"root": root, "state": state, "ids": ids, "live": live, "ws": ws}


def test_live_projection_equals_replay_from_scratch(session: dict[str, object]) -> None:
    state = session["state"]
    assert isinstance(state, Path)
    with SQLiteEventStore(state / "events.db", readonly=True) as store:
        rebuilt = replay(store)
    live = session["live"]
    assert isinstance(live, NodeProjection)
    assert rebuilt.patches == live.patches
    assert rebuilt.files == live.files
    assert rebuilt.summary() == live.summary()


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_incremental_folds_from_any_split_point_agree(
    session: dict[str, object], data: st.DataObject
) -> None:
    state = session["state"]
    assert isinstance(state, Path)
    with SQLiteEventStore(state / "events.db", readonly=True) as store:
        events = store.read_all()
    cut = data.draw(st.integers(0, len(events)))
    overlap = data.draw(st.integers(0, 5))
    first = NodeProjection().apply_all(events[:cut])
    first.apply_all(events[max(0, cut - overlap) :])  # re-delivered events are ignored
    whole = NodeProjection().apply_all(events)
    assert first.summary() == whole.summary()
    assert first.patches == whole.patches
    assert first.files == whole.files


def test_time_travel(session: dict[str, object]) -> None:
    root = session["root"]
    assert isinstance(root, Path)
    ids = session["ids"]
    assert isinstance(ids, dict)
    full = json.loads(ghost(root, "replay", "--json").stdout)["state"]
    assert full["patches"] == {"applied": 29, "rolled_back": 1, "rejected": 1, "dry_run": 1}
    show = json.loads(ghost(root, "show", ids["step10"], "--json").stdout)
    at = show["events"][-1]["position"]
    then = json.loads(ghost(root, "replay", "--until", str(at), "--json").stdout)["state"]
    assert then["patches"] == {"applied": 11}
    assert then["position"] == at
    early = json.loads(ghost(root, "replay", "--until", "1", "--json").stdout)["state"]
    assert early["patches"] == {}
    assert early["runs"] == 1
    iso = show["events"][-1]["recorded_at"]
    by_time = json.loads(ghost(root, "replay", "--until", iso, "--json").stdout)["state"]
    assert by_time["patches"]["applied"] >= 11
    assert ghost(root, "replay", "--until", "yesterday").returncode == 2


def test_audit_and_show(session: dict[str, object]) -> None:
    root, ids = session["root"], session["ids"]
    assert isinstance(root, Path)
    assert isinstance(ids, dict)
    rows = [json.loads(line) for line in ghost(root, "audit", "--json").stdout.splitlines()]
    assert len(rows) == 32
    assert rows[0]["description"] == "step 0"
    assert rows[0]["author"] == "gpt"
    assert rows[0]["files"] == ["a.py"]
    one = [
        json.loads(line)
        for line in ghost(root, "audit", "--patch", ids["rejected"], "--json").stdout.splitlines()
    ]
    assert one[0]["status"] == "rejected"
    assert one[0]["error"]
    show = ghost(root, "show", ids["step5"])
    assert "-c = 1" in show.stdout
    assert "+c = 2" in show.stdout
    assert ghost(root, "show", "0" * 16).returncode == 1
    table = ghost(root, "audit")
    assert table.returncode == 0
    assert "rolled_back" in table.stdout
    since = ghost(root, "audit", "--since", "2000-01-01T00:00:00+00:00", "--json")
    assert len(since.stdout.splitlines()) == 32


def test_verify_clean_then_drift_then_tamper(session: dict[str, object], tmp_path: Path) -> None:
    root = session["root"]
    assert isinstance(root, Path)
    ok = ghost(root, "replay", "--verify", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["verify"]["ok"] is True
    original = (root / "b.py").read_bytes()
    (root / "b.py").write_text("b = 'edited outside'\n")
    try:
        drifted = ghost(root, "replay", "--verify", "--json")
        assert drifted.returncode == 1
        [drift] = json.loads(drifted.stdout)["verify"]["drift"]
        assert drift["path"] == "b.py"
        assert drift["last_position"] > 0
        assert "drift: main:b.py" in ghost(root, "replay", "--verify").stdout
    finally:
        (root / "b.py").write_bytes(original)
    # tamper with a copy of the store
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "events.db").write_bytes((root / ".ghost" / "events.db").read_bytes())
    conn = sqlite3.connect(copy / "events.db")
    conn.execute("UPDATE events SET data = data || x'00' WHERE position = 7")
    conn.commit()
    conn.close()
    bad = ghost(root, "--state-dir", str(copy), "replay", "--verify", "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["verify"]["chain"]["first_bad_position"] == 7


def test_offline_rollback_long_after_and_the_lock(session: dict[str, object]) -> None:
    root, ids = session["root"], session["ids"]
    assert isinstance(root, Path)
    assert isinstance(ids, dict)
    # step 0 set a = 1, later steps moved a.py on: the rollback must refuse with a diff...
    refused = ghost(root, "rollback", ids["step0"], "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["details"]["changed"][0]["path"] == "a.py"
    # ...while a running node holds the lock, offline rollback is refused outright
    node = StateDir(root / ".ghost")
    node.open()
    try:
        locked = ghost(root, "rollback", ids["step28"])
        assert locked.returncode == 2
        assert "lock" in locked.stderr.lower() or "running" in locked.stderr.lower()
    finally:
        node.close()
    # step 28 is the last patch of b.py: nothing touched it since, so it rolls back exactly
    before = (root / "b.py").read_text()
    dry = ghost(root, "rollback", ids["step28"], "--dry-run")
    assert dry.returncode == 0
    assert (root / "b.py").read_text() == before
    done = ghost(root, "rollback", ids["step28"], "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "rolled_back"
    assert (root / "b.py").read_text() == "b = 9\n"
    assert ghost(root, "replay", "--verify").returncode == 0
