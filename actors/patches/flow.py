"""PatchFlow: the life of a patch in one workspace, as a synchronous sequence (SPEC §5, §6).

    submit:  PatchReceived -> [paused: PatchQueued]
             -> parse + plan (every hunk, sandbox, base hashes)
             -> PatchRejected | PatchDryRun | PatchPendingApproval
             -> PatchApplying -> atomic transaction, whose commit is PatchApplied
             -> TestsStarted -> TestsFinished -> [failed + rollback_on_failure: PatchRolledBack]

Durability, and what it costs (an fsync each). An apply makes exactly one SQLite commit
durable, PatchApplying, plus the files' own fsyncs, as the benchmark's floor does:
- PatchReceived is held (ledger.py) and appended with the patch's next event in the same
  commit: one of them is always recorded before anyone is answered, and a bug that escapes
  before any still leaves the receipt.
- PatchApplying is the transaction's journal (a CallerJournal): it names every file's before
  and after sha256 and is committed with both contents as blobs, so no journal file is needed.
  The new contents are written to unnamed temps and fsynced while it commits: the two fsyncs
  overlap, and a crash before it leaves nothing behind.
- The commit point is the last rename (and its directory fsync), not PatchApplied: recovery
  rolls an apply forward when every file holds its after side, back otherwise. So
  PatchApplied need not be forced to disk either; if a power loss takes it, the next start
  records the same fact as PatchRecovered (applied), and the answer already given stays true.

A crash anywhere is resolved at the next start by `load()` (recovery.py)."""

from __future__ import annotations

import errno
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from actors.patches import recovery, rollback
from actors.patches.changes import (
    changes_json,
    diff_of,
    expected_writes,
    files_json,
    rejection_message,
    sha256,
    without_host_paths,
)
from actors.patches.ledger import PatchLedger
from actors.patches.parts import AnnounceWrites
from actors.patches.testing import (
    TestRunner,
    default_test_runner,
    finished_data,
    rolls_back,
    run_between_patches,
    skipped_because,
)
from adapters.config import WorkspaceConfig
from adapters.ledger.projection import PatchView
from adapters.ledger.records import ErrorCode, FlowError, PatchCommand, PatchOutcome
from adapters.ledger.status import ON_DISK, PatchStatus
from adapters.patching import (
    PatchDoesNotApply,
    PatchParseError,
    Sandbox,
    SandboxView,
    SandboxViolation,
    parse_body,
    plan,
)
from adapters.patching.diffing import diff_file
from adapters.workspace.changes import CallerJournal, FileChange, FileChangedError
from adapters.workspace.dirfd import UnsafePathError
from adapters.workspace.transaction import FileTransactions
from eventstore.catalogue import EventType
from eventstore.protocol import EventStore

log = logging.getLogger(__name__)

# Writes that fail for want of room (a full disk, a quota, a file size limit): retryable.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def new_patch_id() -> str:
    return uuid.uuid4().hex[:16]


class PatchFlow:
    def __init__(
        self,
        workspace: WorkspaceConfig,
        store: EventStore,
        journal_dir: Path,
        test_runner: TestRunner = default_test_runner,
        expect_writes: AnnounceWrites | None = None,
        reap_later: bool = False,
    ) -> None:
        """`reap_later`: the old files a transaction replaced are unlinked by `tidy()`, which
        the caller runs once it has answered (PatchActor does), not before each call returns."""
        self.workspace = workspace
        self.store = store
        self.sandbox = Sandbox(
            workspace.path, workspace.exclude, workspace.max_file_bytes, workspace.include
        )
        self.transactions = FileTransactions(
            workspace.path, journal_dir, store, reap_later=reap_later
        )
        self.ledger = PatchLedger(store, workspace.name)
        self.test_runner = test_runner
        self.expect_writes = expect_writes
        self.paused = False
        self.queue: list[str] = []  # patch ids waiting for resume, in order

    @property
    def patches(self) -> OrderedDict[str, PatchView]:
        """The views the ledger keeps (recent patches)."""
        return self.ledger.patches

    def close(self) -> None:
        """Release what the flow holds (its transactions' leftovers and fsync threads)."""
        self.transactions.close()

    def tidy(self) -> None:
        """Unlink the old files the last transaction replaced: called once its caller has
        been answered, so that freeing their blocks is no part of the answer's latency."""
        self.transactions.reap()

    # --- start -------------------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild this workspace's patches from the store, then resolve what a crash left and
        re-queue patches that were waiting for a resume."""
        latest = self.ledger.load()
        paused = self.store.read_all(types=[EventType.NODE_PAUSED, EventType.NODE_RESUMED])
        self.paused = bool(paused) and paused[-1].type == EventType.NODE_PAUSED
        try:
            recovery.settle(self)
            self.queue = [
                pid for pid, v in self.ledger.patches.items() if v.status == PatchStatus.QUEUED
            ]
            self.tidy()  # what the recoveries replaced
            if latest is not None and latest.changes:
                # Old files are reaped once a message is answered, before the next one: only
                # the transactions of the patch in flight at the crash (the latest) can have
                # left any.
                paths = [c["path"] for c in latest.changes]
                self.transactions.discard_leftovers(latest.patch_id, paths)
        finally:
            self.ledger.unpin()

    # --- commands ----------------------------------------------------------------------------
    def submit(
        self,
        command: PatchCommand,
        meta: Mapping[str, Any] | None = None,
        patch_id: str | None = None,
    ) -> PatchOutcome:
        """`patch_id` is given by callers that must answer with it before the patch is
        processed (the HTTP layer's 202 `queued`); otherwise one is made here."""
        known = self.ledger.by_client_id.get(command.client_id or "")
        if command.client_id is not None and known is not None:
            view = self.ledger.view(known)
            if view.body_sha256 != command.body_sha256:
                raise FlowError(
                    "conflict",
                    f"id {command.client_id!r} was already used for another patch body",
                    {"patch_id": known},
                )
            return self.outcome(known)  # an idempotent retry: the same answer, no second apply
        pid = patch_id or new_patch_id()
        body = json.dumps(command.raw, sort_keys=True, default=str).encode()
        self.record(
            pid,
            EventType.PATCH_RECEIVED,
            {
                "patch_id": pid,
                "workspace": self.workspace.name,
                "client_id": command.client_id,
                "format": command.format,
                "body_sha256": command.body_sha256,
                "body_blob": sha256(body),
                "description": command.description,
                "author": command.author,
                "dry_run": command.dry_run,
                "run_tests": command.run_tests,
                "rollback_on_failure": command.rollback_on_failure,
            },
            meta,
            blobs=[body],
            # Appended with this patch's next event, in one commit: every path from here
            # records one before anyone is answered (and `finally` below if none does).
            defer=True,
        )
        if command.client_id is not None:
            self.ledger.by_client_id[command.client_id] = pid
        try:
            if self.paused and not command.dry_run:
                self.record(pid, EventType.PATCH_QUEUED, {"patch_id": pid, "reason": "paused"})
                self.queue.append(pid)
                return self.outcome(pid)
            return self._process(pid, command, approved=False)
        finally:
            self.ledger.flush(pid)  # a bug escaped before any event: keep the receipt

    def approve(self, pid: str, by: str) -> PatchOutcome:
        view = self.ledger.view(pid)
        if view.status != PatchStatus.PENDING_APPROVAL:
            raise FlowError("conflict", f"patch {pid} is {view.public_status}, not pending")
        self.record(pid, EventType.PATCH_APPROVED, {"patch_id": pid, "by": by})
        return self._process(pid, self.ledger.command_of(view), approved=True)

    def reject(self, pid: str, by: str, reason: str = "") -> PatchOutcome:
        view = self.ledger.view(pid)
        if view.status not in (PatchStatus.PENDING_APPROVAL, PatchStatus.QUEUED):
            raise FlowError("conflict", f"patch {pid} is {view.public_status}: cannot reject")
        if pid in self.queue:
            self.queue.remove(pid)
        self._reject(pid, "invalid", reason or f"rejected by {by}", {}, by=by)
        return self.outcome(pid)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> list[PatchOutcome]:
        """Apply what was queued while paused, in order."""
        self.paused = False
        done = []
        while self.queue and not self.paused:
            pid = self.queue.pop(0)
            command = self.ledger.command_of(self.ledger.view(pid))
            done.append(self._process(pid, command, approved=False))
        return done

    def rollback(
        self, pid: str, by: str, force: bool = False, dry_run: bool = False
    ) -> PatchOutcome:
        view = self.ledger.view(pid)
        if view.rolled_back or view.status not in ON_DISK:
            raise FlowError(
                "conflict", f"patch {pid} is {view.public_status}: nothing to roll back"
            )
        changes, drift = self.rollback_changes(view)
        if drift and not force:
            raise FlowError(
                "conflict",
                f"{len(drift)} file(s) changed since patch {pid}; rollback refused: force it "
                "(force: true, `ghost rollback --force`) to overwrite them, their contents "
                "kept as blobs",
                {"changed": drift},
            )
        # The answer's diff is the rollback's own effect (current -> before), as a dry run shows.
        diff = diff_of(changes)
        if dry_run:
            return PatchOutcome(pid, view.public_status, diff=diff)
        overwritten = drift if force else []
        self.roll_back(pid, changes, reason="manual", by=by, overwritten=overwritten)
        kept = tuple({"path": d["path"], "sha256": d["actual_sha256"]} for d in overwritten)
        return replace(self.outcome(pid, diff), kept=kept)

    def run_tests_now(self, by: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The webhook's `run_tests`, between patches (the actor's queue orders it)."""
        return run_between_patches(
            self.workspace, self.store, self.test_runner, new_patch_id(), by, meta
        )

    def outcome(self, pid: str, diff: str | None = None) -> PatchOutcome:
        return self.ledger.outcome(pid, diff)

    # --- the pipeline --------------------------------------------------------------------------
    def _process(self, pid: str, command: PatchCommand, approved: bool) -> PatchOutcome:
        try:
            parsed = parse_body(command.raw)
            planned = plan(parsed, SandboxView(self.sandbox))
        except PatchParseError as exc:
            return self._reject(pid, "invalid", str(exc), {"parse": exc.as_json()})
        except SandboxViolation as exc:
            return self._reject(pid, "sandbox", str(exc), {"sandbox": [exc.as_json()]})
        except OSError as exc:
            # The workspace changed under the planner (a directory swapped mid-check): this
            # patch is refused, the actor goes on.
            message = f"the workspace changed while the patch was checked: {exc.strerror}"
            return self._reject(pid, "sandbox", message, {})
        except PatchDoesNotApply as exc:
            code: ErrorCode = (
                "conflict"
                if exc.is_conflict
                else ("sandbox" if exc.violations and not exc.failures else "does_not_apply")
            )
            return self._reject(pid, code, rejection_message(exc), exc.as_json())
        diffs = [diff_file(f) for f in planned.files]
        diff = "".join(d.text for d in diffs)
        files = files_json(planned, diffs)
        # Blobs go into the store with the event that names them: one commit, not one each.
        diff_bytes = diff.encode()
        shown = {"patch_id": pid, "files": files, "diff_blob": sha256(diff_bytes)}
        if command.dry_run:
            self.record(pid, EventType.PATCH_DRY_RUN, shown, blobs=[diff_bytes])
            return self.outcome(pid, diff)
        if self.workspace.approval == "manual" and not approved:
            self.record(pid, EventType.PATCH_PENDING_APPROVAL, shown, blobs=[diff_bytes])
            return self.outcome(pid, diff)
        changes = [FileChange(path, before, after) for path, before, after in planned.changes()]
        applied: dict[str, Any] = {**shown, "txn_id": pid, "changes": changes_json(changes)}
        journal_blobs = [
            diff_bytes,
            *(b for c in changes for b in (c.before, c.after) if b is not None),
        ]
        if self.expect_writes is not None:
            self.expect_writes(expected_writes(changes), f"patch:{pid}")
        skipped = skipped_because(self.workspace, command)
        journal = {k: applied[k] for k in ("patch_id", "txn_id", "files", "changes", "diff_blob")}
        if skipped is not None:
            applied["tests_skipped"] = skipped
        try:
            self.transactions.apply(
                pid,
                changes,
                # Not forced to disk: the renames were the commit point (module doc).
                lambda: self.record(pid, EventType.PATCH_APPLIED, applied, durable=False),
                # The transaction's journal: its changes, and as blobs the contents of both
                # sides, durable before any file is renamed (see recovery.py); the new
                # contents are written and fsynced meanwhile.
                CallerJournal(
                    lambda: self.record(pid, EventType.PATCH_APPLYING, journal, blobs=journal_blobs)
                ),
            )
        except FileChangedError as exc:
            return self._reject(pid, "conflict", str(exc), {"path": exc.path})
        except OSError as exc:
            if isinstance(exc, UnsafePathError) or exc.errno not in _NO_SPACE:
                return self._reject(pid, "sandbox", f"could not write the files: {exc}", {})
            # A full disk is no sandbox violation: the same patch applies once there is room.
            return self._reject(
                pid,
                "busy",
                f"no space to write the files ({exc.strerror}); nothing was written, "
                "free some space and send the patch again",
                {"errno": errno.errorcode.get(exc.errno or 0, "")},
            )
        if skipped is None:
            self._run_tests(pid, command, changes)
        return self.outcome(pid, diff)

    def _run_tests(self, pid: str, command: PatchCommand, changes: list[FileChange]) -> None:
        test_command = self.workspace.test_command
        assert test_command is not None
        self.record(
            pid, EventType.TESTS_STARTED, {"patch_id": pid, "command": str(test_command.args)}
        )
        run = self.test_runner(self.workspace)
        finished = {"patch_id": pid, **finished_data(run)}
        self.record(pid, EventType.TESTS_FINISHED, finished, blobs=[run.output])
        if run.status != "passed" and rolls_back(self.workspace, command):
            reverse = [FileChange(c.path, c.after, c.before) for c in changes]
            try:
                self.roll_back(pid, reverse, reason="tests_failed", by="ghost-node")
            except FileChangedError as exc:
                log.error("patch %s: automatic rollback refused: %s", pid, exc)

    def rollback_changes(self, view: PatchView) -> tuple[list[FileChange], list[dict[str, Any]]]:
        """The changes that put the patch's files back, and every file changed since it."""
        return rollback.changes_back(self, view)

    def roll_back(
        self,
        pid: str,
        changes: list[FileChange],
        reason: str,
        by: str,
        overwritten: list[dict[str, Any]] | None = None,
    ) -> None:
        rollback.roll_back(self, pid, changes, reason, by, overwritten)

    # --- events --------------------------------------------------------------------------------
    def _reject(
        self,
        pid: str,
        code: ErrorCode,
        message: str,
        details: Mapping[str, Any],
        by: str | None = None,
    ) -> PatchOutcome:
        # Answers leave the machine: an OS error's text names absolute paths, which the
        # caller has no business knowing (and cannot use: every path it sends is relative).
        message = without_host_paths(message, str(self.workspace.path))
        data = {"patch_id": pid, "code": code, "message": message, "details": dict(details)}
        if by is not None:
            data["by"] = by
        self.record(pid, EventType.PATCH_REJECTED, data)
        return self.outcome(pid)

    def record(
        self,
        pid: str,
        kind: EventType,
        data: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
        blobs: Sequence[bytes] = (),
        durable: bool = True,
        defer: bool = False,
    ) -> None:
        """Every event of the flow goes through here to `PatchLedger.record`: one seam where a
        test kills the flow at a given event."""
        self.ledger.record(pid, kind, data, meta, blobs, durable, defer)
