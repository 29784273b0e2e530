"""PatchActor under a real Supervisor, driven through PatchService: queues per workspace,
workspaces in parallel, restarts that lose nothing."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.patch_actor import PatchActor, PatchService
from actors.spec import ChildSpec
from actors.supervisor import Supervisor
from adapters.config import CommandLine, WorkspaceConfig
from adapters.ledger.records import Decision, FlowError, command_from_body
from adapters.processes import TestRun
from eventstore import SQLiteEventStore
from tests.actors.support import FAST, NO_PING


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    (tmp_path / "state").mkdir()
    with SQLiteEventStore(tmp_path / "state" / "events.db") as s:
        yield s


def workspace(tmp_path: Path, name: str, **kw: Any) -> WorkspaceConfig:
    root = tmp_path / name
    root.mkdir()
    (root / "counter.md").write_text("0\n")
    return WorkspaceConfig(name=name, path=root, **kw)


def bump(n: int) -> dict[str, Any]:
    patch = f"*** Begin Patch\n*** Update File: counter.md\n@@\n-{n}\n+{n + 1}\n*** End Patch\n"
    return {"patch": patch, "description": f"bump {n}"}


class Tree:
    def __init__(
        self,
        store: SQLiteEventStore,
        tmp_path: Path,
        workspaces: list[WorkspaceConfig],
        **actor_kw: Any,
    ) -> None:
        specs = [
            ChildSpec(
                f"patch.{w.name}",
                partial(PatchActor, w, store, tmp_path / "j" / w.name, **actor_kw),
            )
            for w in workspaces
        ]
        self.supervisor = Supervisor("core", specs, backoff=FAST, liveness=NO_PING)
        self.ref = self.supervisor.launch()
        self.service = PatchService(
            {w.name: s.handle for w, s in zip(workspaces, specs, strict=True)}, store, workspaces
        )

    def stop(self) -> None:
        self.ref.stop(timeout=10)
        pykka.ActorRegistry.stop_all(timeout=10)


def submit(service: PatchService, ws: str, body: dict[str, Any]) -> Any:
    return service.submit(command_from_body(body, ws))


def test_fifty_patches_queued_on_one_workspace_apply_in_order(
    store: SQLiteEventStore, tmp_path: Path
) -> None:
    ws = workspace(tmp_path, "main")
    tree = Tree(store, tmp_path, [ws])
    try:
        futures = [submit(tree.service, "main", bump(n))[1] for n in range(50)]
        outcomes = [f.result(timeout=60) for f in futures]
        assert [o.status for o in outcomes] == ["applied"] * 50
        assert (ws.path / "counter.md").read_text() == "50\n"
        applied = [e for e in store.read_all(types=["PatchApplied"])]
        assert [e.stream.removeprefix("patch-") for e in applied] == [o.patch_id for o in outcomes]
    finally:
        tree.stop()


def test_the_old_files_are_reaped_once_answered(store: SQLiteEventStore, tmp_path: Path) -> None:
    """The actor's flow keeps a replaced file's old inode under a second name through the
    answer (freeing it is slow on some file systems) and unlinks it right after."""
    ws = workspace(tmp_path, "main")
    tree = Tree(store, tmp_path, [ws])
    try:
        for n in range(3):
            assert submit(tree.service, "main", bump(n))[1].result(timeout=30).status == "applied"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(list(ws.path.iterdir())) > 1:
            time.sleep(0.01)
        assert sorted(p.name for p in ws.path.iterdir()) == ["counter.md"]
    finally:
        tree.stop()


def slow_runner(delay: float, log: list[tuple[str, float, float]], ws: WorkspaceConfig) -> TestRun:
    start = time.monotonic()
    time.sleep(delay)
    log.append((ws.name, start, time.monotonic()))
    return TestRun(status="passed", exit_code=0, duration_s=delay, output_tail="", output=b"")


def test_workspaces_run_in_parallel(store: SQLiteEventStore, tmp_path: Path) -> None:
    echo = CommandLine((sys.executable, "-c", "pass"))
    a = workspace(tmp_path, "a", test_command=echo)
    b = workspace(tmp_path, "b", test_command=echo)
    runs: list[tuple[str, float, float]] = []
    tree = Tree(store, tmp_path, [a, b], test_runner=partial(slow_runner, 0.5, runs))
    try:
        start = time.monotonic()
        fa = submit(tree.service, "a", bump(0))[1]
        fb = submit(tree.service, "b", bump(0))[1]
        assert fa.result(timeout=20).status == "applied"
        assert fb.result(timeout=20).status == "applied"
        assert time.monotonic() - start < 0.95  # two 0.5 s test runs overlapped
        (_, a0, a1), (_, b0, b1) = sorted(runs)
        assert a0 < b1
        assert b0 < a1
    finally:
        tree.stop()


def test_unknown_workspace_and_patch(store: SQLiteEventStore, tmp_path: Path) -> None:
    tree = Tree(store, tmp_path, [workspace(tmp_path, "main")])
    try:
        with pytest.raises(FlowError):
            tree.service.workspace_name("nope")
        with pytest.raises(FlowError) as info:
            tree.service.decide(Decision.APPROVE, "0" * 16, "dev").result(timeout=5)
        assert info.value.error.code == "not_found"
    finally:
        tree.stop()


def test_pause_is_recorded_and_survives_a_restart(store: SQLiteEventStore, tmp_path: Path) -> None:
    ws = workspace(tmp_path, "main")
    tree = Tree(store, tmp_path, [ws])
    try:
        tree.service.set_paused(True, by="op").result(timeout=10)
        pid, future = submit(tree.service, "main", bump(0))
        assert future.result(timeout=10).status == "queued"
    finally:
        tree.stop()
    tree = Tree(store, tmp_path, [ws])  # a new node: paused state and queue come from events
    try:
        assert tree.service.view(pid).status == "queued"  # type: ignore[union-attr]
        resumed = tree.service.set_paused(False, by="op").result(timeout=20)
        assert [o.patch_id for o in resumed] == [pid]
        assert (ws.path / "counter.md").read_text() == "1\n"
    finally:
        tree.stop()


def test_a_crash_in_the_flow_restarts_the_actor_and_loses_nothing(
    store: SQLiteEventStore, tmp_path: Path
) -> None:
    ws = workspace(tmp_path, "main", test_command=CommandLine((sys.executable, "-c", "pass")))
    calls = threading.Semaphore(0)

    def exploding_runner(w: WorkspaceConfig) -> TestRun:
        calls.release()
        raise RuntimeError("test runner exploded")

    tree = Tree(store, tmp_path, [ws], test_runner=exploding_runner)
    try:
        first_pid, first = submit(tree.service, "main", bump(0))
        with pytest.raises(FlowError, match="internal error"):
            first.result(timeout=20)
        # The actor was restarted and rebuilt from events (its on_start runs before the next
        # message). The first patch's tests never finished, so they count as failed and its
        # automatic rollback is done on restart; the next patch goes through.
        _, second = submit(tree.service, "main", {**bump(0), "run_tests": False})
        assert second.result(timeout=20).status == "applied"
        first_view = tree.service.view(first_pid)
        assert first_view is not None
        assert first_view.status == "rolled_back"
        assert first_view.tests is not None
        assert first_view.tests["status"] == "error"
        assert (ws.path / "counter.md").read_text() == "1\n"
        status = tree.ref.proxy().children_status().get(timeout=5)
        assert status["patch.main"]["restarts"] == 1
    finally:
        tree.stop()
