"""PatchFlow: the life of patches in one workspace, with real files, a real event store and
real test subprocesses (no actors: the flow is plain calls)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from actors.patches import ledger as patch_ledger
from actors.patches.flow import PatchFlow
from adapters.config import CommandLine, WorkspaceConfig
from adapters.ledger.records import FlowError, command_from_body
from eventstore import NewEvent, SQLiteEventStore

PASS = CommandLine((sys.executable, "-c", "import sys; sys.exit(0)"))
# Fails when app.py contains BROKEN: the tests of a patch that breaks the app.
CHECK = CommandLine(
    (sys.executable, "-c", "import sys; sys.exit('BROKEN' in open('app.py').read())")
)


def v4a(path: str, old: str, new: str) -> str:
    return f"*** Begin Patch\n*** Update File: {path}\n@@\n-{old}\n+{new}\n*** End Patch\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    (tmp_path / "state").mkdir()
    with SQLiteEventStore(tmp_path / "state" / "events.db") as s:
        yield s


@pytest.fixture
def ws(tmp_path: Path) -> WorkspaceConfig:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text("x = 1\ny = 2\n")
    (root / "lib.py").write_text("def f():\n    return 1\n")
    return WorkspaceConfig(name="main", path=root, test_command=CHECK)


def make_flow(ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path) -> PatchFlow:
    flow = PatchFlow(ws, store, tmp_path / "state" / "journal")
    flow.load()
    return flow


def submit(flow: PatchFlow, **body: object) -> object:
    return flow.submit(command_from_body(body, flow.workspace.name))


def types(store: SQLiteEventStore, pid: str) -> list[str]:
    return [e.type for e in store.read_stream(f"patch-{pid}")]


def test_apply_then_tests_pass(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = make_flow(ws, store, tmp_path)
    out = flow.submit(command_from_body({"patch": v4a("app.py", "x = 1", "x = 10")}, "main"))
    assert out.status == "applied"
    assert (ws.path / "app.py").read_text() == "x = 10\ny = 2\n"
    assert out.tests is not None
    assert out.tests.status == "passed"
    assert "-x = 1" in out.diff
    assert "+x = 10" in out.diff
    assert [f.path for f in out.files] == ["app.py"]
    assert types(store, out.patch_id) == [
        "PatchReceived",
        "PatchApplying",
        "PatchApplied",
        "TestsStarted",
        "TestsFinished",
    ]
    assert out.position == store.last_position()


def test_failing_tests_roll_back_automatically(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = make_flow(ws, store, tmp_path)
    out = flow.submit(command_from_body({"patch": v4a("app.py", "y = 2", "y = 'BROKEN'")}, "main"))
    assert out.status == "rolled_back"
    assert out.tests is not None
    assert out.tests.status == "failed"
    assert (ws.path / "app.py").read_text() == "x = 1\ny = 2\n"
    assert types(store, out.patch_id)[-1] == "PatchRolledBack"
    rolled = store.read_stream(f"patch-{out.patch_id}")[-1]
    assert rolled.data["reason"] == "tests_failed"


def test_failing_tests_without_rollback_leave_it_failed(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = make_flow(ws, store, tmp_path)
    body = {"patch": v4a("app.py", "y = 2", "y = 'BROKEN'"), "rollback_on_failure": False}
    out = flow.submit(command_from_body(body, "main"))
    assert out.status == "failed"
    assert "BROKEN" in (ws.path / "app.py").read_text()


def test_dry_run_writes_nothing(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = make_flow(ws, store, tmp_path)
    out = flow.submit(
        command_from_body({"patch": v4a("app.py", "x = 1", "x = 3"), "dry_run": True}, "main")
    )
    assert out.status == "dry_run"
    assert "+x = 3" in out.diff
    assert (ws.path / "app.py").read_text() == "x = 1\ny = 2\n"


def test_rejections_explain_every_failing_hunk(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = make_flow(ws, store, tmp_path)
    patch = (
        "*** Begin Patch\n*** Update File: app.py\n@@\n-x = 7\n+x = 8\n"
        "*** Update File: lib.py\n@@\n-    return 9\n+    return 10\n*** End Patch\n"
    )
    out = flow.submit(command_from_body({"patch": patch}, "main"))
    assert out.status == "rejected"
    assert out.error is not None
    assert out.error.code == "does_not_apply"
    failures = out.error.details["failures"]
    assert {f["path"] for f in failures} == {"app.py", "lib.py"}
    assert all(f["closest"] for f in failures)
    assert (ws.path / "app.py").read_text() == "x = 1\ny = 2\n"


def test_stale_base_is_a_conflict(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = make_flow(ws, store, tmp_path)
    body = {"patch": v4a("app.py", "x = 1", "x = 5"), "base": {"app.py": "0" * 64}}
    out = flow.submit(command_from_body(body, "main"))
    assert out.error is not None
    assert out.error.code == "conflict"
    good = hashlib.sha256((ws.path / "app.py").read_bytes()).hexdigest()
    body["base"] = {"app.py": good}
    assert flow.submit(command_from_body(body, "main")).status == "applied"


@pytest.mark.parametrize("path", ["../escape.py", "/etc/passwd", ".git/config", ".ghost/token"])
def test_sandbox_rejects(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path, path: str
) -> None:
    flow = make_flow(ws, store, tmp_path)
    body = {"format": "files", "files": [{"path": path, "content": "pwned\n"}]}
    out = flow.submit(command_from_body(body, "main"))
    assert out.status == "rejected"
    assert out.error is not None
    assert out.error.code in ("sandbox", "invalid")
    assert not (tmp_path / "escape.py").exists()


def test_idempotent_by_client_id(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = make_flow(ws, store, tmp_path)
    body = {"id": "req-1", "patch": v4a("app.py", "x = 1", "x = 2")}
    first = flow.submit(command_from_body(body, "main"))
    again = flow.submit(command_from_body(dict(body), "main"))
    assert again == first
    assert len(store.read_all(types=["PatchReceived"])) == 1
    with pytest.raises(FlowError) as info:
        flow.submit(command_from_body({**body, "description": "other"}, "main"))
    assert info.value.error.code == "conflict"
    # and across a restart of the flow (rebuilt from events)
    again_later = make_flow(ws, store, tmp_path).submit(command_from_body(dict(body), "main"))
    assert again_later.patch_id == first.patch_id
    assert again_later.status == first.status


def test_manual_approval(ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path) -> None:
    flow = make_flow(replace(ws, approval="manual"), store, tmp_path)
    out = flow.submit(command_from_body({"patch": v4a("app.py", "x = 1", "x = 4")}, "main"))
    assert out.status == "pending_approval"
    assert (ws.path / "app.py").read_text() == "x = 1\ny = 2\n"
    other = flow.submit(
        command_from_body({"patch": v4a("lib.py", "    return 1", "    return 2")}, "main")
    )
    approved = flow.approve(out.patch_id, by="dev")
    assert approved.status == "applied"
    assert (ws.path / "app.py").read_text() == "x = 4\ny = 2\n"
    rejected = flow.reject(other.patch_id, by="dev")
    assert rejected.status == "rejected"
    assert (ws.path / "lib.py").read_text() == "def f():\n    return 1\n"
    with pytest.raises(FlowError):
        flow.approve(other.patch_id, by="dev")


def test_pause_queues_and_resume_applies_in_order(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = make_flow(replace(ws, test_command=None), store, tmp_path)
    flow.pause()
    first = flow.submit(command_from_body({"patch": v4a("app.py", "x = 1", "x = 2")}, "main"))
    second = flow.submit(command_from_body({"patch": v4a("app.py", "x = 2", "x = 3")}, "main"))
    assert (first.status, second.status) == ("queued", "queued")
    assert (ws.path / "app.py").read_text() == "x = 1\ny = 2\n"
    done = flow.resume()
    assert [o.status for o in done] == ["applied", "applied"]
    assert (ws.path / "app.py").read_text() == "x = 3\ny = 2\n"


def test_rollback_long_after(ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path) -> None:
    flow = make_flow(replace(ws, test_command=None), store, tmp_path)
    target = flow.submit(
        command_from_body({"patch": v4a("lib.py", "    return 1", "    return 2")}, "main")
    )
    for i in range(5):  # later patches on another file
        flow.submit(
            command_from_body(
                {"patch": v4a("app.py", f"x = {i + 1}" if i else "x = 1", f"x = {i + 2}")}, "main"
            )
        )
    dry = flow.rollback(target.patch_id, by="op", dry_run=True)
    assert "-    return 2" in dry.diff
    out = flow.rollback(target.patch_id, by="op")
    assert out.status == "rolled_back"
    assert out.diff == dry.diff  # the answer shows what the rollback did, not the patch
    assert (ws.path / "lib.py").read_text() == "def f():\n    return 1\n"
    assert "x = 6" in (ws.path / "app.py").read_text()
    with pytest.raises(FlowError):
        flow.rollback(target.patch_id, by="op")


def test_rollback_refuses_when_the_file_changed_unless_forced(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = make_flow(replace(ws, test_command=None), store, tmp_path)
    out = flow.submit(command_from_body({"patch": v4a("app.py", "x = 1", "x = 2")}, "main"))
    (ws.path / "app.py").write_text("x = 2\ny = 2\nz = 'edited by hand'\n")
    with pytest.raises(FlowError) as info:
        flow.rollback(out.patch_id, by="op")
    assert info.value.error.code == "conflict"
    assert info.value.error.details["changed"][0]["path"] == "app.py"
    forced = flow.rollback(out.patch_id, by="op", force=True)
    assert forced.status == "rolled_back"
    assert (ws.path / "app.py").read_text() == "x = 1\ny = 2\n"


def test_every_format_applies(ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path) -> None:
    flow = make_flow(replace(ws, test_command=None), store, tmp_path)
    unified = "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n-x = 1\n+x = 11\n y = 2\n"
    sr = "lib.py\n<<<<<<< SEARCH\n    return 1\n=======\n    return 12\n>>>>>>> REPLACE\n"
    outs = [
        flow.submit(command_from_body({"format": "unified", "patch": unified}, "main")),
        flow.submit(command_from_body({"patch": sr}, "main")),
        flow.submit(
            command_from_body({"files": [{"path": "new/n.py", "content": "n = 1\n"}]}, "main")
        ),
        flow.submit(
            command_from_body(
                {"target_file": "app.py", "patch": {"pattern": "y = 2", "replacement": "y = 22"}},
                "main",
            )
        ),
    ]
    assert [o.status for o in outs] == ["applied"] * 4, [o.error for o in outs]
    assert (ws.path / "app.py").read_text() == "x = 11\ny = 22\n"
    assert (ws.path / "lib.py").read_text() == "def f():\n    return 12\n"
    assert (ws.path / "new" / "n.py").read_text() == "n = 1\n"


class _Killed(BaseException):
    """Stands for SIGKILL right after an event was committed."""


def test_a_patch_interrupted_outside_any_transaction_is_failed_on_load(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    """Killed between PatchReceived and its next step: after a restart the patch is `failed`
    (interrupted, nothing written) instead of `received` for ever, and a retry with the same
    id gets that answer."""
    flow = make_flow(replace(ws, test_command=None), store, tmp_path)
    before = (ws.path / "lib.py").read_text()

    def killed(*args: object, **kwargs: object) -> None:
        raise _Killed

    flow._process = killed  # type: ignore[method-assign]
    body = {"id": "c1", "patch": v4a("lib.py", "    return 1", "    return 2")}
    with pytest.raises(_Killed):
        flow.submit(command_from_body(body, "main"))
    again = make_flow(replace(ws, test_command=None), store, tmp_path)
    [view] = again.patches.values()
    assert view.status == "failed"
    assert view.error is not None
    assert view.error["code"] == "interrupted"
    assert "before any file was written" in view.error["message"]
    assert (ws.path / "lib.py").read_text() == before
    retry = again.submit(command_from_body(body, "main"))
    assert retry.status == "failed"
    # Loading once more records nothing new: the patch is settled.
    count = len(store.read_all())
    make_flow(replace(ws, test_command=None), store, tmp_path)
    assert len(store.read_all()) == count


_DIE_DURING_APPLY = """
import os, sys
from pathlib import Path
from actors.patches.flow import PatchFlow
from adapters.ledger.records import command_from_body
from adapters.config import WorkspaceConfig
from eventstore import SQLiteEventStore
from eventstore.catalogue import EventType

root, state, where, patch = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
store = SQLiteEventStore(state / "events.db")
flow = PatchFlow(WorkspaceConfig(name="main", path=root), store, state / "journal")
flow.load()
if where == "before_applied":  # every file renamed and fsynced, PatchApplied not recorded
    record = flow.record
    def dying(pid, kind, *args, **kwargs):
        if kind == EventType.PATCH_APPLIED:
            os._exit(9)
        return record(pid, kind, *args, **kwargs)
    flow.record = dying
else:  # "mid_rename": the first file renamed over, the second not
    real_replace = os.replace
    def dying_replace(*args, **kwargs):
        real_replace(*args, **kwargs)
        os._exit(9)
    os.replace = dying_replace
flow.submit(command_from_body({"patch": patch, "run_tests": False}, "main"))
"""


@pytest.mark.parametrize("where", ["before_applied", "mid_rename"])
def test_a_process_dying_inside_the_transaction_is_resolved_on_load(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path, where: str
) -> None:
    """PatchApplying is the journal and the last rename the commit point: a process that dies
    with every file renamed but PatchApplied missing is completed on the next load; one that
    dies between two renames is put back to every before content. PatchRecovered either way,
    and no temp file behind."""
    before = {name: (ws.path / name).read_bytes() for name in ("app.py", "lib.py")}
    after = {"app.py": b"x = 10\ny = 2\n", "lib.py": b"def f():\n    return 10\n"}
    patch = (
        "*** Begin Patch\n*** Update File: app.py\n@@\n-x = 1\n+x = 10\n"
        "*** Update File: lib.py\n@@\n-    return 1\n+    return 10\n*** End Patch\n"
    )
    died = subprocess.run(
        [
            sys.executable,
            "-c",
            _DIE_DURING_APPLY,
            str(ws.path),
            str(tmp_path / "state"),
            where,
            patch,
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert died.returncode == 9, died.stderr
    flow = make_flow(ws, store, tmp_path)
    [view] = flow.patches.values()
    assert types(store, view.patch_id)[-2:] == ["PatchApplying", "PatchRecovered"]
    if where == "before_applied":
        assert view.status == "applied"
        assert {c["path"] for c in view.changes} == set(after)
        assert "+x = 10" in flow.outcome(view.patch_id).diff  # the diff PatchApplying named
        assert {name: (ws.path / name).read_bytes() for name in after} == after
        flow.rollback(view.patch_id, by="op")  # a completed recovery is a patch like any
        assert {name: (ws.path / name).read_bytes() for name in before} == before
    else:
        assert view.status == "failed"
        assert view.error is not None
        assert view.error["code"] == "interrupted"
        assert {name: (ws.path / name).read_bytes() for name in before} == before
    assert not [p.name for p in ws.path.iterdir() if p.name.startswith(".")]
    count = len(store.read_all())
    make_flow(ws, store, tmp_path)  # settled: loading again records nothing
    assert len(store.read_all()) == count


def test_load_discards_the_old_files_a_dead_process_did_not_reap(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = PatchFlow(ws, store, tmp_path / "state" / "journal", reap_later=True)
    flow.load()
    reply = submit(flow, patch="*** Begin Patch\n*** Delete File: lib.py\n*** End Patch\n")
    assert reply.status == "applied"  # type: ignore[attr-defined]
    assert [p.name for p in ws.path.iterdir() if p.name.startswith(".")]  # not tidied: "died"
    make_flow(ws, store, tmp_path)
    assert not [p.name for p in ws.path.iterdir() if p.name.startswith(".")]


def test_failed_tests_whose_rollback_a_crash_cut_short_roll_back_on_load(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = make_flow(ws, store, tmp_path)

    def killed(*args: object, **kwargs: object) -> None:
        raise _Killed

    flow.roll_back = killed  # type: ignore[method-assign]
    with pytest.raises(_Killed):
        submit(flow, patch=v4a("app.py", "x = 1", "x = 'BROKEN'"))
    assert "BROKEN" in (ws.path / "app.py").read_text()
    again = make_flow(ws, store, tmp_path)
    [view] = again.patches.values()
    assert view.status == "rolled_back"
    assert view.decisions[-1]["reason"] == "tests_failed"
    assert (ws.path / "app.py").read_text() == "x = 1\ny = 2\n"


def test_tests_a_crash_cut_short_count_as_failed_on_load(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    flow = PatchFlow(ws, store, tmp_path / "state" / "journal", test_runner=_die)
    flow.load()
    with pytest.raises(_Killed):
        submit(flow, patch=v4a("app.py", "x = 1", "x = 3"))
    again = make_flow(ws, store, tmp_path)
    [view] = again.patches.values()
    assert view.tests is not None
    assert view.tests["status"] == "error"
    assert view.status == "rolled_back"
    assert (ws.path / "app.py").read_text() == "x = 1\ny = 2\n"
    # Without rollback on failure, it stays applied and failed.
    no_rollback = replace(ws, rollback_on_test_failure=False)
    flow = PatchFlow(no_rollback, store, tmp_path / "state" / "journal", test_runner=_die)
    flow.load()
    with pytest.raises(_Killed):
        submit(flow, patch=v4a("lib.py", "    return 1", "    return 5"))
    again = make_flow(no_rollback, store, tmp_path)
    kept = [v for v in again.patches.values() if v.status != "rolled_back"]
    assert [v.public_status for v in kept] == ["failed"]
    assert "return 5" in (ws.path / "lib.py").read_text()


def _die(workspace: WorkspaceConfig) -> Any:
    raise _Killed


def test_views_are_a_bounded_cache_and_evicted_patches_still_answer(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O3: the flow keeps a few views, not one per patch for ever; a patch it no longer
    holds is folded again from its stream: an idempotent retry, a rollback long after."""
    monkeypatch.setattr(patch_ledger, "VIEW_CACHE_SIZE", 3)
    flow = make_flow(replace(ws, test_command=None), store, tmp_path)
    first = flow.submit(
        command_from_body(
            {"id": "c0", "patch": v4a("lib.py", "    return 1", "    return 2")}, "main"
        )
    )
    for n in range(2, 8):
        submit(flow, patch=v4a("app.py", f"x = {n - 1}" if n > 2 else "x = 1", f"x = {n}"))
    assert len(flow.patches) == 3
    assert first.patch_id not in flow.patches
    retry = flow.submit(
        command_from_body(
            {"id": "c0", "patch": v4a("lib.py", "    return 1", "    return 2")}, "main"
        )
    )
    assert retry.patch_id == first.patch_id
    assert retry.status == "applied"
    with pytest.raises(FlowError) as conflict:
        flow.submit(command_from_body({"id": "c0", "patch": "other"}, "main"))
    assert conflict.value.error.code == "conflict"
    flow.rollback(first.patch_id, by="op")
    assert (ws.path / "lib.py").read_text() == "def f():\n    return 1\n"
    assert len(flow.patches) == 3
    again = make_flow(replace(ws, test_command=None), store, tmp_path)
    assert len(again.patches) == 3
    assert again.outcome(first.patch_id).status == "rolled_back"


def test_an_older_versions_applying_without_its_journal_is_settled_on_load(
    ws: WorkspaceConfig, store: SQLiteEventStore, tmp_path: Path
) -> None:
    """A store written by the version that journaled in a file: a PatchApplying without
    `changes` and no journal file left means it died before writing anything."""
    pid = "0123456789abcdef"
    store.append(
        f"patch-{pid}",
        [
            NewEvent("PatchReceived", {"patch_id": pid, "workspace": "main", "body_sha256": "x"}),
            NewEvent("PatchApplying", {"patch_id": pid, "txn_id": pid, "files": []}),
        ],
    )
    flow = make_flow(ws, store, tmp_path)
    view = flow.patches[pid]
    assert view.status == "failed"
    assert view.error is not None
    assert view.error["code"] == "interrupted"
