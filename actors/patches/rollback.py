"""Rolling a patch back: the changes that restore its files (and the drift since), and the
rollback transaction itself. PatchFlow.rollback (an owner's decision), the automatic rollback
after failed tests and crash recovery all go through here."""

from __future__ import annotations

from typing import Any

from actors.patches.changes import changes_json, diff_of, expected_writes
from actors.patches.parts import FlowParts
from adapters.ledger.projection import PatchView
from adapters.patching import SandboxView
from adapters.workspace.changes import FileChange, sha256_or_none
from eventstore.catalogue import EventType


def changes_back(flow: FlowParts, view: PatchView) -> tuple[list[FileChange], list[dict[str, Any]]]:
    """The changes that put the patch's files back, and every file changed since it (the
    drift a rollback refuses unless forced)."""
    changes, drift = [], []
    for change in view.changes:
        path = change["path"]
        want_now, restore = change["after_sha256"], change["before_sha256"]
        current = SandboxView(flow.sandbox).read(path)
        before = None if restore is None else flow.store.get_blob(restore)
        if sha256_or_none(current) != want_now:
            wrote = None if want_now is None else flow.store.get_blob(want_now)
            drift.append(
                {
                    "path": path,
                    "expected_sha256": want_now,
                    "actual_sha256": sha256_or_none(current),
                    # what changed since: from what the patch wrote to what is there now
                    "diff": diff_of([FileChange(path, wrote, current)]),
                }
            )
        changes.append(FileChange(path, current, before))
    return changes, drift


def roll_back(
    flow: FlowParts,
    pid: str,
    changes: list[FileChange],
    reason: str,
    by: str,
    overwritten: list[dict[str, Any]] | None = None,
) -> None:
    """Apply `changes` as the patch's next rollback transaction (`<pid>-rb<n>`, journaled in a
    file), whose commit is PatchRolledBack. `overwritten`: the files changed since the patch
    that a forced rollback overwrites; their contents are kept as blobs (the transaction
    stores both sides of every change) and named in the event."""
    view = flow.ledger.view(pid)
    txn_id = f"{pid}-rb{sum(1 for d in view.decisions if d['decision'] == 'rolled_back') + 1}"
    data = {
        "patch_id": pid,
        "txn_id": txn_id,
        "reason": reason,
        "by": by,
        "forced": bool(overwritten),
        "changes": changes_json(changes),
    }
    if overwritten:
        data["overwritten"] = [
            {"path": d["path"], "sha256": d["actual_sha256"]} for d in overwritten
        ]
    if flow.expect_writes is not None:
        flow.expect_writes(expected_writes(changes), f"patch:{pid}")
    flow.transactions.apply(
        txn_id, changes, lambda: flow.record(pid, EventType.PATCH_ROLLED_BACK, data)
    )
