"""A generated store for replay tests: every event type the projections know, events they do
not, odd streams, old schemas (upcast), several runs of the node; and the live, event-by-event
fold to compare a rebuild with."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eventstore import NewEvent, RecordedEvent, SQLiteEventStore
from eventstore.upcasting import Upcasters
from replay.state import NodeProjection

SEED = 7
PATCHES = 120


def lifting_upcasters() -> Upcasters:
    """TestsFinished schema 1 said "result" where schema 2 says "status"."""
    upcasters = Upcasters()
    # Schema 1 of TestsFinished said "result" where schema 2 says "status".
    upcasters.register(
        "TestsFinished",
        1,
        lambda d: {("status" if k == "result" else k): v for k, v in d.items()},
    )
    return upcasters


def _changes(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        path = f"src/f{rng.randrange(12)}.py"
        after = None if rng.random() < 0.1 else f"{rng.getrandbits(64):016x}"
        out.append(
            {"path": path, "before_sha256": f"{rng.getrandbits(64):016x}", "after_sha256": after}
        )
    return out


def _patch_events(rng: random.Random, pid: str) -> Iterator[tuple[str, NewEvent]]:
    stream = f"patch-{pid}"
    ws = rng.choice(["main", "other"])
    received: dict[str, Any] = {
        "patch_id": pid,
        "workspace": ws,
        "client_id": rng.choice([None, f"c-{pid}"]),
        "format": rng.choice(["v4a", "unified", "files"]),
        "body_sha256": pid * 4,
        "body_blob": pid * 4,
        "description": f"patch {pid}",
        "author": rng.choice(["gpt", "op", ""]),
        "dry_run": False,
    }
    if rng.random() < 0.1:
        del received["author"]  # an old writer: defaults must apply alike
    yield stream, NewEvent("PatchReceived", received)
    files = [
        {"path": c["path"], "action": "update", "added": 1, "removed": 2} for c in _changes(rng, 2)
    ]
    roll = rng.random()
    if roll < 0.1:
        yield stream, NewEvent("PatchQueued", {"patch_id": pid})
    if roll < 0.2:
        by = rng.choice([None, "op"])
        yield (
            stream,
            NewEvent(
                "PatchRejected",
                {
                    "patch_id": pid,
                    "code": "no_match",
                    "message": "nope",
                    "details": {"n": 1},
                    "by": by,
                },
            ),
        )
        return
    if roll < 0.3:
        yield (
            stream,
            NewEvent("PatchDryRun", {"patch_id": pid, "files": files, "diff_blob": "d" * 8}),
        )
        return
    if roll < 0.45:
        yield (
            stream,
            NewEvent(
                "PatchPendingApproval", {"patch_id": pid, "files": files, "diff_blob": "p" * 8}
            ),
        )
        if rng.random() < 0.3:
            yield stream, NewEvent("PatchRejected", {"patch_id": pid, "message": "no", "by": "op"})
            return
        yield stream, NewEvent("PatchApproved", {"patch_id": pid, "by": "op"})
    applying = {"patch_id": pid, "txn_id": pid}
    if rng.random() < 0.8:
        applying["files"] = files
    yield stream, NewEvent("PatchApplying", applying)
    changes = _changes(rng, rng.randrange(1, 4))
    if rng.random() < 0.1:  # interrupted: recovered at the next start
        outcome = rng.choice(["applied", "rolled_back"])
        yield (
            stream,
            NewEvent(
                "PatchRecovered",
                {"patch_id": pid, "kind": "apply", "outcome": outcome, "changes": changes},
            ),
        )
        return
    applied: dict[str, Any] = {"patch_id": pid, "changes": changes}
    if rng.random() < 0.7:
        applied["files"] = files
    if rng.random() < 0.7:
        applied["diff_blob"] = "a" * 8
    yield stream, NewEvent("PatchApplied", applied)
    yield stream, NewEvent("TestsStarted", {"patch_id": pid, "command": "pytest"})
    passed = rng.random() < 0.7
    finished = {"exit_code": 0 if passed else 1, "duration_s": 0.5, "output_tail": "..."}
    if rng.random() < 0.3:  # schema 1: "result", lifted to "status" by the upcaster
        yield (
            stream,
            NewEvent(
                "TestsFinished", {**finished, "result": "passed" if passed else "failed"}, schema=1
            ),
        )
    else:
        finished["status"] = "passed" if passed else "failed"
        yield stream, NewEvent("TestsFinished", {**finished, "output_blob": "o" * 8}, schema=2)
    if not passed or rng.random() < 0.15:
        back = [{**c, "after_sha256": c["before_sha256"]} for c in changes]
        if rng.random() < 0.2:
            yield (
                stream,
                NewEvent(
                    "PatchRecovered",
                    {"patch_id": pid, "kind": "rollback", "outcome": "applied", "changes": back},
                ),
            )
        else:
            yield (
                stream,
                NewEvent(
                    "PatchRolledBack",
                    {
                        "patch_id": pid,
                        "by": "auto",
                        "reason": "tests",
                        "forced": False,
                        "changes": back,
                    },
                ),
            )


def _noise(rng: random.Random, step: int) -> Iterator[tuple[str, NewEvent]]:
    roll = rng.random()
    if roll < 0.25:
        paths = [
            {"path": f"src/f{rng.randrange(12)}.py", "kind": "modified", "sha256": f"{step:016x}"},
            {"path": f"notes/n{rng.randrange(3)}.md", "kind": rng.choice(["deleted", "created"])},
        ]
        if paths[1]["kind"] == "created":
            paths[1]["sha256"] = f"{step + 1:016x}"
        yield (
            f"workspace-{rng.choice(['main', 'other'])}",
            NewEvent(
                "FilesChanged", {"paths": paths, "source": rng.choice(["external", "rescan"])}
            ),
        )
    elif roll < 0.45:
        name = rng.choice(["watcher.main", "patch.main", "web"])
        kind = rng.choice(
            [
                "ActorStarting",
                "ActorStarted",
                "ActorFailed",
                "ActorRestarting",
                "ActorStopped",
                "ActorFatal",
                "ActorSomethingNew",
            ]
        )
        data: dict[str, Any] = {"error_type": "ValueError", "message": "boom"}
        if rng.random() < 0.5:
            data["actor"] = name
        yield f"actor-{name}", NewEvent(kind, data)
    elif roll < 0.5:
        # An Actor* type outside an actor- stream, and patch types outside patch- streams:
        # the projections ignore both.
        yield "supervisor-root", NewEvent("ActorStarted", {"actor": "nobody"})
        yield "node", NewEvent("PatchApplied", {"patch_id": "x", "changes": []})
    elif roll < 0.6:
        kind = rng.choice(["TunnelUp", "TunnelDown"])
        yield "tunnel-t1", NewEvent(kind, {"url": "https://t.example", "reason": "gone"})
    elif roll < 0.7:
        kind = rng.choice(["ServiceStarted", "ServiceExited"])
        data = {"name": "svc"} if rng.random() < 0.5 else {"exit_code": 3}
        yield "service-svc", NewEvent(kind, data)
    elif roll < 0.75:
        yield "node", NewEvent(rng.choice(["NotificationSent", "NotificationFailed"]), {})
    elif roll < 0.8:
        yield "node", NewEvent(rng.choice(["NodePaused", "NodeResumed"]), {})
    elif roll < 0.9:
        yield "actor-health", NewEvent("HealthChanged", {"from": "ok", "to": "degraded"})
    else:
        yield "node", NewEvent("SomethingElse", {"n": step})


def build_store(path: Path, seed: int = SEED, patches: int = PATCHES) -> None:
    rng = random.Random(seed)
    with SQLiteEventStore(path) as store:
        pid_n = 0
        for run in range(3):
            store.append("node", [NewEvent("NodeStarted", {"pid": 100 + run, "workspaces": []})])
            live: list[Iterator[tuple[str, NewEvent]]] = []
            for step in range(patches // 3 * 4):
                if pid_n < patches * (run + 1) // 3 and rng.random() < 0.6:
                    live.append(_patch_events(rng, f"{pid_n:04d}{rng.getrandbits(32):08x}"))
                    pid_n += 1
                # Interleave the patches' events with each other and with the rest.
                if live:
                    gen = rng.choice(live)
                    item = next(gen, None)
                    if item is None:
                        live.remove(gen)
                    else:
                        store.append(*_one(item))
                for item in _noise(rng, step):
                    store.append(*_one(item))
            for gen in live:
                for item in gen:
                    store.append(*_one(item))
            clean = run != 1  # the second run ended in a crash
            stop = {"pid": 100 + run, "clean": clean} if clean else {"pid": 999, "clean": False}
            store.append("node", [NewEvent("NodeStopped", stop)])


def _one(item: tuple[str, NewEvent]) -> tuple[str, list[NewEvent]]:
    return item[0], [item[1]]


def one_by_one(events: list[RecordedEvent]) -> NodeProjection:
    """The live way: one `apply` per event, as the node's subscription feeds it."""
    projection = NodeProjection()
    for event in events:
        projection.apply(event)
    return projection


def assert_same(fast: NodeProjection, slow: NodeProjection) -> None:
    assert fast.position == slow.position
    assert fast.patches == slow.patches
    assert list(fast.patches) == list(slow.patches)  # same order too
    assert fast.files == slow.files
    assert fast.actors == slow.actors
    assert fast.tunnels == slow.tunnels
    assert fast.services == slow.services
    assert fast.notifications == slow.notifications
    assert fast.runs == slow.runs
    assert fast.paused == slow.paused
    assert fast.summary() == slow.summary()
    assert fast == slow
