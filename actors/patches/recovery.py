"""What a crash left in a workspace, settled when its PatchFlow loads (PatchRecovered):

- an apply with PatchApplying but no PatchApplied is completed when every file holds its after
  side, put back otherwise (PatchApplying is the journal, its blobs the backups; files edited
  since are kept as they are);
- a rollback is resolved from its journal file (FileTransactions.recover);
- a patch left between two steps outside any transaction (received, approved) had nothing
  written, and is settled as not started;
- tests that were running are recorded as cut short, and a failed patch whose automatic
  rollback was due is rolled back now, unless its files were changed since."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from actors.patches.parts import FlowParts
from actors.patches.testing import CUT_SHORT, rolls_back
from adapters.ledger.status import ON_DISK, PatchStatus
from adapters.workspace.changes import FileChange
from eventstore.catalogue import EventType, patch_stream

log = logging.getLogger(__name__)

# Where a patch can be left by a crash outside any transaction.
_INTERRUPTED = frozenset({PatchStatus.RECEIVED, PatchStatus.APPROVED})


def settle(flow: FlowParts) -> None:
    """Resolve every crashed transaction and interrupted patch of the flow's workspace (its
    ledger loaded, every view pinned)."""
    ledger = flow.ledger
    for recovery in flow.transactions.recover(lambda txn_id: _committed(flow, txn_id)):
        _recovered(flow, recovery.txn_id, recovery.outcome, recovery.kept)
    for pid, view in list(ledger.patches.items()):
        if view.status == PatchStatus.APPLYING:
            _recover_apply(flow, pid)
    for pid, view in list(ledger.patches.items()):
        if view.status in _INTERRUPTED:
            _recovered(flow, pid, "not_started", was=view.status)
    for pid, view in list(ledger.patches.items()):
        if view.status in ON_DISK and not view.rolled_back:
            _finish_tests(flow, pid)


def split_txn(txn_id: str) -> tuple[str, str]:
    """A transaction id is the patch id (an apply) or `<patch id>-rb<n>` (its n-th rollback)."""
    pid, sep, _ = txn_id.partition("-rb")
    return pid, "rollback" if sep else "apply"


def _committed(flow: FlowParts, txn_id: str) -> bool:
    pid, kind = split_txn(txn_id)
    wanted = EventType.PATCH_APPLIED if kind == "apply" else EventType.PATCH_ROLLED_BACK
    return any(
        e.type == wanted and e.data.get("txn_id") == txn_id
        for e in flow.store.read_stream(patch_stream(pid))
    )


def _recover_apply(flow: FlowParts, pid: str) -> None:
    """A crash between PatchApplying and PatchApplied (or a power loss that took an unforced
    PatchApplied): if every rename happened, the patch is complete; else every file goes back."""
    applying = [
        e for e in flow.store.read_stream(patch_stream(pid)) if e.type == EventType.PATCH_APPLYING
    ]
    journal = applying[-1].data if applying else {}
    recorded = journal.get("changes")
    if recorded is None:
        # A PatchApplying without changes names a transaction journaled in a file (stores
        # written before the journal was the event): recover() has resolved any such file, so
        # this one died before writing its journal (or anything).
        _recovered(flow, pid, "not_started", was="applying")
        return
    blob = flow.ledger.blob_or_none
    changes = [
        FileChange(c["path"], blob(c["before_sha256"]), blob(c["after_sha256"])) for c in recorded
    ]
    forward = flow.transactions.holds_after(changes)
    recovery = flow.transactions.resolve(pid, changes, forward=forward)
    _recovered(flow, pid, recovery.outcome, recovery.kept, applying=journal)


def _finish_tests(flow: FlowParts, pid: str) -> None:
    view = flow.ledger.view(pid)
    if view.tests is not None and view.tests.get("status") == "running":
        flow.record(pid, EventType.TESTS_FINISHED, {"patch_id": pid, **CUT_SHORT})
        view = flow.ledger.view(pid)
    if view.status != PatchStatus.FAILED_TESTS:
        return
    if not rolls_back(flow.workspace, flow.ledger.command_of(view)):
        return
    changes, drift = flow.rollback_changes(view)
    if drift:
        log.warning(
            "patch %s: automatic rollback still refused: %d file(s) changed since", pid, len(drift)
        )
        return
    flow.roll_back(pid, changes, reason="tests_failed", by="ghost-node")
    log.warning("patch %s: its automatic rollback, cut short by a crash, is done", pid)


def _recovered(
    flow: FlowParts,
    txn_id: str,
    outcome: str,
    kept: tuple[str, ...] = (),
    was: str | None = None,
    applying: Mapping[str, Any] | None = None,
) -> None:
    """`applying`: the PatchApplying data of an apply resolved from it, whose changes and diff
    a completed recovery carries (no PatchApplied ever named them)."""
    pid, kind = split_txn(txn_id)
    if outcome == "applied":
        message = "the node stopped during this change; it was completed"
    elif outcome == "not_started":
        message = (
            f"the node stopped while this patch was {was}, before any file was written; "
            "nothing changed: send it again (with a new id)"
        )
    else:
        message = "the node stopped during this change; every file was restored, nothing changed"
    view = flow.ledger.lookup(pid)
    data: dict[str, Any] = {
        "patch_id": pid,
        "txn_id": txn_id,
        "kind": kind,
        "outcome": outcome,
        "message": message,
        "changes": list(view.changes) if view else [],
        "kept_edited": list(kept),
    }
    if applying is not None:
        data["changes"] = list(applying.get("changes") or [])
        if applying.get("diff_blob"):
            data["diff_blob"] = applying["diff_blob"]
    flow.record(pid, EventType.PATCH_RECOVERED, data)
    log.warning("patch %s: %s (%s)", pid, message, kind)
