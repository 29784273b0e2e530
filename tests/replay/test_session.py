"""A scripted session of 200 mixed commands against a real ghost-node (issue 7.6): patches in
every format, dry runs, rejections, manual approvals and rejections, rollbacks (some refused
because a file changed since), editor changes seen by the watcher, and actor restarts (a chaos
actor crashing all along). Then:

- what the node served live (GET /patches/{id}) equals a replay of the store from scratch;
- folds from any split point agree with the one-pass replay (hypothesis);
- the projected files equal the workspaces on disk (`ghost replay --verify` exits 0);
- the actors' restarts in the projection are the ActorRestarting events, and there were some.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore import RecordedEvent, SQLiteEventStore
from replay.state import NodeProjection
from tests.adapters.web.support import GHOST, Client, write_workspace
from tests.node_process import NodeProcess

COMMANDS = 200
SEED = 20261201
FILES = [f"src/m{i}.py" for i in range(6)]
CONFIG = """
[supervisor]
min_backoff_s = 0.01
max_backoff_s = 0.05
max_restarts = 100000
period_s = 1

[[workspace]]
name = "auto"
path = "auto"

[[workspace]]
name = "manual"
path = "manual"
approval = "manual"
"""


def _content(i: int) -> str:
    return "".join(f"v{i}_{k} = 0\n" for k in range(8))


@dataclass
class Session:
    root: Path
    node: NodeProcess
    live: dict[str, str] = field(default_factory=dict)  # patch id -> status the node answered
    counts: dict[str, int] = field(default_factory=dict)  # what the script did, by kind
    events: list[RecordedEvent] = field(default_factory=list)

    def count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


def _edit(api: Client, ws: str, path: str, rng: random.Random) -> tuple[str, str, int] | None:
    """A line of `path` as the node serves it now, and a new value for it (what GPT does:
    read, then patch)."""
    reply = api.get(f"/files?workspace={ws}&path={path}")
    if reply.status != 200:
        return None
    lines = reply.json["content"].splitlines()
    if not lines:
        return None
    n = rng.randrange(len(lines))
    name = lines[n].split(" = ")[0]
    return lines[n], f"{name} = {rng.randrange(10**6)}", n + 1


def _body(kind: str, ws: str, path: str, old: str, new: str, line: int) -> dict[str, Any]:
    if kind == "v4a":
        text = f"*** Begin Patch\n*** Update File: {path}\n@@\n-{old}\n+{new}\n*** End Patch\n"
        return {"workspace": ws, "patch": text}
    if kind == "unified":
        text = f"--- a/{path}\n+++ b/{path}\n@@ -{line},1 +{line},1 @@\n-{old}\n+{new}\n"
        return {"workspace": ws, "format": "unified", "patch": text}
    if kind == "search_replace":
        text = f"{path}\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"
        return {"workspace": ws, "format": "search_replace", "patch": text}
    if kind == "hybrid":
        return {
            "workspace": ws,
            "role": "assistant",
            "description": "legacy hybrid block",
            "target_file": path,
            "patch": {"pattern": old, "replacement": new},
        }
    raise AssertionError(kind)


def _run_script(session: Session) -> None:
    rng = random.Random(SEED)
    api = session.node.client()
    applied: list[str] = []
    pending: list[str] = []
    for step in range(COMMANDS):
        roll = rng.random()
        ws = "manual" if roll < 0.15 else "auto"
        path = rng.choice(FILES)
        if roll < 0.15:  # manual: submit, later approve or reject
            edit = _edit(api, ws, path, rng)
            assert edit is not None
            reply = api.post("/webhook", _body("v4a", ws, path, *edit))
            assert reply.status == 200, reply.raw
            assert reply.json["status"] == "pending_approval"
            pending.append(reply.json["patch_id"])
            session.count("pending")
        elif roll < 0.25 and pending:  # a human decision
            pid = pending.pop(rng.randrange(len(pending)))
            action = rng.choice(["approve", "reject"])
            reply = api.post(f"/patches/{pid}/{action}", {})
            assert reply.status in (200, 409, 422), reply.raw
            session.count(action)
        elif roll < 0.32 and applied:  # rollback of an earlier patch, maybe long after
            pid = rng.choice(applied)
            reply = api.post(f"/patches/{pid}/rollback", {})
            assert reply.status in (200, 409), reply.raw
            if reply.status == 200:
                applied.remove(pid)
            session.count(f"rollback_{reply.status}")
        elif roll < 0.40:  # an editor change (the watcher reports it as `external`)
            note = session.root / "auto" / "notes" / f"n{rng.randrange(5)}.md"
            note.parent.mkdir(exist_ok=True)
            note.write_text(f"note {step}\n")
            session.count("external_edit")
        elif roll < 0.45:  # a patch that does not apply
            body = _body("v4a", ws, path, "no such line", "x = 1", 1)
            assert api.post("/webhook", body).status == 422
            session.count("rejected")
        elif roll < 0.50:  # whole files, sometimes a dry run
            dry = rng.random() < 0.5
            body = {
                "workspace": ws,
                "format": "files",
                "files": [{"path": f"gen/g{rng.randrange(8)}.md", "content": f"{step}\n"}],
                "dry_run": dry,
            }
            reply = api.post("/webhook", body)
            assert reply.status == 200, reply.raw
            session.count("files_dry" if dry else "files")
            if not dry:
                applied.append(reply.json["patch_id"])
        else:  # an update in one of the text formats
            kind = rng.choice(["v4a", "unified", "search_replace", "hybrid"])
            edit = _edit(api, ws, path, rng)
            assert edit is not None
            reply = api.post("/webhook", _body(kind, ws, path, *edit))
            assert reply.status == 200, (kind, reply.raw)
            assert reply.json["status"] == "applied", reply.json
            applied.append(reply.json["patch_id"])
            session.count(kind)
    # What the node serves live about every patch, before it stops.
    listed = api.get("/patches?limit=500")
    assert listed.status == 200
    for summary in listed.json["patches"]:
        session.live[summary["patch_id"]] = summary["status"]


def _wait_for_external(session: Session) -> None:
    """Until the watcher has recorded the editor changes (debounce is 200 ms)."""
    notes = sorted((session.root / "auto" / "notes").glob("*.md"))
    want = {f"notes/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in notes}
    deadline = time.monotonic() + 10
    while True:
        with SQLiteEventStore(session.node.state_dir / "events.db", readonly=True) as store:
            files = NodeProjection().apply_all(store.read_all()).files.get("auto", {})
        if all(path in files and files[path].sha256 == sha for path, sha in want.items()):
            return
        assert time.monotonic() < deadline, "the watcher did not report the editor changes"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    root = tmp_path_factory.mktemp("session200")
    for ws in ("auto", "manual"):
        write_workspace(root / ws, {path: _content(i) for i, path in enumerate(FILES)})
    (root / "ghost.toml").write_text(CONFIG)
    node = NodeProcess(
        root,
        "--config",
        str(root / "ghost.toml"),
        "--chaos",
        "crash:0.3",
        env={"GHOST_HTTP_RATE": "0"},
    )
    session = Session(root, node)
    try:
        _run_script(session)
        _wait_for_external(session)
    finally:
        assert node.stop() == 0
    with SQLiteEventStore(node.state_dir / "events.db", readonly=True) as store:
        session.events = store.read_all()
    return session


def test_the_script_covered_every_kind_of_command(session: Session) -> None:
    for kind in ("v4a", "unified", "search_replace", "hybrid", "files", "files_dry"):
        assert session.counts.get(kind, 0) > 0, (kind, session.counts)
    for kind in ("pending", "approve", "reject", "rollback_200", "rejected", "external_edit"):
        assert session.counts.get(kind, 0) > 0, (kind, session.counts)
    assert sum(session.counts.values()) == COMMANDS


def test_live_answers_equal_a_replay_from_scratch(session: Session) -> None:
    replayed = NodeProjection().apply_all(session.events)
    assert session.live
    assert set(session.live) <= set(replayed.patches)
    for pid, status in session.live.items():
        assert replayed.patches[pid].public_status == status, pid


def test_actor_restarts_are_in_the_projection(session: Session) -> None:
    replayed = NodeProjection().apply_all(session.events)
    restarting = [e for e in session.events if e.type == "ActorRestarting"]
    assert restarting, "the chaos actor was never restarted"
    by_actor: dict[str, int] = {}
    for event in restarting:
        name = event.stream.removeprefix("actor-")
        by_actor[name] = by_actor.get(name, 0) + 1
    for name, count in by_actor.items():
        assert replayed.actors[name].restarts == count


@settings(max_examples=25, deadline=None)
@given(split=st.floats(min_value=0.0, max_value=1.0))
def test_folds_from_any_split_point_agree(session: Session, split: float) -> None:
    events = session.events
    k = int(split * len(events))
    whole = NodeProjection().apply_all(events).summary()
    first = NodeProjection().apply_all(events[:k])
    # A consumer that resumes re-reads a few events it had already folded: they are ignored.
    resumed = first.apply_all(events[max(0, k - 3) :]).summary()
    assert resumed == whole


def test_replay_verify_is_clean(session: Session) -> None:
    state = str(session.node.state_dir)
    done = subprocess.run(
        [sys.executable, str(GHOST), "--state-dir", state, "replay", "--verify", "--json"],
        cwd=session.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)["verify"]
    assert report["ok"] is True
    assert report["drift"] == []
