"""The life of a patch in one workspace, as a synchronous sequence (SPEC §5, §6).

PatchActor runs one PatchFlow per workspace in its own thread, so patches of a workspace go one
at a time in order while workspaces run in parallel. Everything here is plain calls: the flow is
tested without actors.

    submit:  PatchReceived -> [paused: PatchQueued]
             -> parse + plan (every hunk, sandbox, base hashes)
             -> PatchRejected | PatchDryRun | PatchPendingApproval
             -> PatchApplying -> atomic transaction, whose commit is PatchApplied
             -> TestsStarted -> TestsFinished -> [failed + rollback_on_failure: PatchRolledBack]

Durability, and what it costs (an fsync each). An apply makes exactly one SQLite commit
durable, PatchApplying, plus the files' own fsyncs, as the benchmark's floor does:
- PatchReceived is appended together with the patch's next event (PatchApplying,
  PatchRejected, ...), in the same commit: one of them is always recorded before anyone is
  answered, and a bug that escapes before any still leaves the receipt.
- PatchApplying is the transaction's journal: it names every file's before and after sha256
  and is committed with both contents as blobs, so no journal file is needed. The new
  contents are written to unnamed temps and fsynced while it commits (FileTransactions'
  `record`): the two fsyncs overlap, and a crash before it leaves nothing behind.
- The commit point is the last rename (and its directory fsync), not PatchApplied: recovery
  rolls an apply forward when every file holds its after side, back otherwise. So
  PatchApplied need not be forced to disk either; if a power loss takes it, the next start
  records the same fact as PatchRecovered (applied), and the answer already given stays true.

A crash anywhere is resolved at the next start by `load()` (PatchRecovered): an apply with
PatchApplying but no PatchApplied is completed or put back as above; a rollback is resolved
from its journal file; a patch whose tests failed (or were cut short) is rolled back if its
automatic rollback was due and had not happened.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from actors.patch_records import (
    ErrorCode,
    FileOutcome,
    PatchCommand,
    PatchError,
    PatchOutcome,
    Status,
    TestsOutcome,
)
from adapters.config import WorkspaceConfig
from adapters.patching import (
    PatchParseError,
    PatchRejected,
    Plan,
    PlannedFile,
    Sandbox,
    SandboxView,
    SandboxViolation,
    parse_body,
    plan,
)
from adapters.patching.diffing import FileDiff, diff_file, file_diff
from adapters.processes import TestRun, clean_env, run_tests
from adapters.processes.confine import bubblewrap
from adapters.processes.group import Command
from adapters.workspace.dirfd import UnsafePathError
from adapters.workspace.transaction import (
    FileChange,
    FileChangedError,
    FileTransactions,
    sha256_or_none,
)
from eventstore.catalogue import EventType, patch_stream, tests_stream
from eventstore.events import NewEvent, RecordedEvent
from eventstore.protocol import EventStore
from replay.patches import PATCH_EVENT_TYPES, PatchView, fold, tests_of

log = logging.getLogger(__name__)

TestRunner = Callable[[WorkspaceConfig], TestRun]
# Writes that fail for want of room (a full disk, a quota, a file size limit): retryable.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# Where a patch can be left by a crash outside any transaction (see load()).
_INTERRUPTED_STATES = frozenset({"received", "approved"})
# Patch views kept in memory (most recently used); the rest are read again from the store.
VIEW_CACHE_SIZE = 256
# Told before our own writes, so the watcher reports them as `patch:<id>`, not `external`.
ExpectWrites = Callable[[Mapping[str, str | None], str], None]


class FlowError(Exception):
    """A decision that cannot be taken (unknown patch, wrong state, files changed since)."""

    def __init__(self, code: ErrorCode, message: str, details: Mapping[str, Any] | None = None):
        self.error = PatchError(code, message, details or {})
        super().__init__(message)


def default_test_runner(
    workspace: WorkspaceConfig,
    *,
    env: Mapping[str, str] | None = None,
    scrub: Callable[[str], str] | None = None,
    hidden: Sequence[Path] = (),
) -> TestRun:
    """The workspace's test command with `env` (default: ours minus GHOST_* and SLACK_*; the
    node passes every configured secret variable's name too) and its output scrubbed of the
    node's secret values; with `test_sandbox = "bwrap"` confined, `hidden` (the state
    directory) out of its sight."""
    assert workspace.test_command is not None
    command: Command = workspace.test_command.popen_args()
    if workspace.test_sandbox == "bwrap":
        command = bubblewrap(command, workspace.path, hidden)
    run = run_tests(
        command,
        cwd=workspace.path,
        timeout_s=workspace.test_timeout_s,
        env=clean_env() if env is None else env,  # no ghost secrets in the tests' environment
    )
    return run if scrub is None else run.scrubbed(scrub)


class _Store(Protocol):
    """The store operations the flow needs (an EventStore provides them)."""

    def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: Any = ...,
        blobs: Sequence[bytes] = (),
        durable: bool = True,
    ) -> list[int]: ...


@dataclass(slots=True)
class _Deferred:
    """Events of one patch waiting to be appended with its next one (one commit)."""

    events: list[NewEvent] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)


class PatchFlow:
    def __init__(
        self,
        workspace: WorkspaceConfig,
        store: EventStore,
        journal_dir: Path,
        test_runner: TestRunner = default_test_runner,
        expect_writes: ExpectWrites | None = None,
        reap_later: bool = False,
    ) -> None:
        """`reap_later`: the old files a transaction replaced are unlinked by `tidy()`, which
        the caller runs once it has answered (PatchActor does), not before each call returns."""
        self.workspace = workspace
        self.reap_later = reap_later
        self.store = store
        self.sandbox = Sandbox(
            workspace.path, workspace.exclude, workspace.max_file_bytes, workspace.include
        )
        self.transactions = FileTransactions(workspace.path, journal_dir, store)
        self.test_runner = test_runner
        self.expect_writes = expect_writes
        # The views of recent patches, bounded (O3: one per patch for the life of the process
        # grew the node by ~3.5 KB a patch); any other is folded again from its own stream.
        self.patches: OrderedDict[str, PatchView] = OrderedDict()
        self.by_client_id: dict[str, str] = {}  # every client id: idempotency needs them all
        self.paused = False
        self.queue: list[str] = []  # patch ids waiting for resume, in order
        self._loading = False
        self._deferred: dict[str, _Deferred] = {}

    def close(self) -> None:
        """Release what the flow holds (its transactions' leftovers and fsync threads)."""
        self.transactions.close()

    def tidy(self) -> None:
        """Unlink the old files the last transaction replaced: called once its caller has
        been answered, so that freeing their blocks is no part of the answer's latency."""
        self.transactions.reap()

    # --- start -------------------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild this workspace's patches from the store, then resolve crashed transactions
        and re-queue patches that were waiting for a resume."""
        views: dict[str, PatchView] = {}
        for event in self.store.read_all(types=sorted(PATCH_EVENT_TYPES)):
            pid = event.stream.removeprefix("patch-")
            view = views.get(pid)
            if view is None and event.data.get("workspace") != self.workspace.name:
                continue
            views[pid] = view = fold(view, event)
            if view.client_id is not None:
                self.by_client_id[view.client_id] = pid
        # Every view while settling what a crash left; the cache is trimmed at the end.
        latest = max(views.values(), key=lambda v: v.last_position, default=None)
        self.patches = OrderedDict(views)
        del views
        self._loading = True
        paused = self.store.read_all(types=[EventType.NODE_PAUSED, EventType.NODE_RESUMED])
        self.paused = bool(paused) and paused[-1].type == EventType.NODE_PAUSED
        for recovery in self.transactions.recover(self._committed):
            self._recovered(recovery.txn_id, recovery.outcome, recovery.kept)
        for pid, view in list(self.patches.items()):
            if view.status == "applying":
                self._recover_apply(pid)
        # A patch the node (or this actor) died with between two of its steps, outside any
        # transaction -- received or approved -- had nothing written. Say so, rather than
        # leave it in a state nobody can act on.
        for pid, view in list(self.patches.items()):
            if view.status in _INTERRUPTED_STATES:
                self._recovered(pid, "not_started", was=view.status)
        for pid, view in list(self.patches.items()):
            if view.status in ("applied", "failed_tests") and not view.rolled_back:
                self._finish_tests(pid)
        self.queue = [pid for pid, v in self.patches.items() if v.status == "queued"]
        self.tidy()  # what the recoveries above replaced
        if latest is not None and latest.changes:
            # Old files are reaped once a message is answered, before the next one: only the
            # transactions of the patch in flight at the crash (the latest) can have left any.
            paths = [c["path"] for c in latest.changes]
            self.transactions.discard_leftovers(latest.patch_id, paths)
        self._loading = False
        self._trim()

    def _recover_apply(self, pid: str) -> None:
        """A crash between PatchApplying and PatchApplied (or a power loss that took an
        unforced PatchApplied): if every rename happened, the patch is complete (applied);
        otherwise every file goes back to its before content. PatchApplying is the journal,
        its blobs the backups; files edited since are kept as they are."""
        applying = [
            e
            for e in self.store.read_stream(patch_stream(pid))
            if e.type == EventType.PATCH_APPLYING
        ]
        journal = applying[-1].data if applying else {}
        recorded = journal.get("changes")
        if recorded is None:
            # Recorded by an older version, which journaled in a file: recover() has resolved
            # any file there was, so this one died before writing its journal (or anything).
            self._recovered(pid, "not_started", was="applying")
            return
        changes = [
            FileChange(
                c["path"],
                self._blob_or_none(c["before_sha256"]),
                self._blob_or_none(c["after_sha256"]),
            )
            for c in recorded
        ]
        forward = self.transactions.holds_after(changes)
        recovery = self.transactions.resolve(pid, changes, forward=forward)
        self._recovered(pid, recovery.outcome, recovery.kept, applying=journal)

    def _finish_tests(self, pid: str) -> None:
        """What a crash cut short after PatchApplied: tests that were running are recorded as
        cut short (they cannot be trusted), and a failed patch whose automatic rollback was
        due is rolled back now -- unless its files were changed since, as for any rollback."""
        view = self._view(pid)
        if view.tests is not None and view.tests.get("status") == "running":
            self._record(
                pid,
                EventType.TESTS_FINISHED,
                {
                    "patch_id": pid,
                    "status": "error",
                    "exit_code": None,
                    "duration_s": 0.0,
                    "output_tail": "",
                    "output_blob": None,
                    "message": "the node stopped while the tests ran; they did not finish",
                },
            )
            view = self._view(pid)
        if view.status != "failed_tests" or not self._rolls_back(self._command_of(view)):
            return
        changes, drift = self._rollback_changes(view)
        if drift:
            log.warning(
                "patch %s: automatic rollback still refused: %d file(s) changed since",
                pid,
                len(drift),
            )
            return
        self._roll_back(pid, changes, reason="tests_failed", by="ghost-node", forced=False)
        log.warning("patch %s: its automatic rollback, cut short by a crash, is done", pid)

    def _blob_or_none(self, sha256: str | None) -> bytes | None:
        return None if sha256 is None else self.store.get_blob(sha256)

    def _committed(self, txn_id: str) -> bool:
        pid, kind = _split_txn(txn_id)
        wanted = EventType.PATCH_APPLIED if kind == "apply" else EventType.PATCH_ROLLED_BACK
        return any(
            e.type == wanted and e.data.get("txn_id") == txn_id
            for e in self.store.read_stream(patch_stream(pid))
        )

    def _recovered(
        self,
        txn_id: str,
        outcome: str,
        kept: tuple[str, ...] = (),
        was: str | None = None,
        applying: Mapping[str, Any] | None = None,
    ) -> None:
        """`applying`: the PatchApplying data of an apply resolved from it, whose changes and
        diff a completed recovery carries (no PatchApplied ever named them)."""
        pid, kind = _split_txn(txn_id)
        if outcome == "applied":
            message = "the node stopped during this change; it was completed"
        elif outcome == "not_started":
            message = (
                f"the node stopped while this patch was {was}, before any file was written; "
                "nothing changed: send it again (with a new id)"
            )
        else:
            message = (
                "the node stopped during this change; every file was restored, nothing changed"
            )
        view = self._lookup(pid)
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
        self._record(pid, EventType.PATCH_RECOVERED, data)
        log.warning("patch %s: %s (%s)", pid, message, kind)

    # --- commands ----------------------------------------------------------------------------
    def submit(
        self,
        command: PatchCommand,
        meta: Mapping[str, Any] | None = None,
        patch_id: str | None = None,
    ) -> PatchOutcome:
        """`patch_id` is given by callers that must answer with it before the patch is
        processed (the HTTP layer's 202 `queued`); otherwise one is made here."""
        if command.client_id is not None and command.client_id in self.by_client_id:
            pid = self.by_client_id[command.client_id]
            view = self._view(pid)
            if view.body_sha256 != command.body_sha256:
                raise FlowError(
                    "conflict",
                    f"id {command.client_id!r} was already used for another patch body",
                    {"patch_id": pid},
                )
            return self.outcome(pid)  # an idempotent retry: the same answer, no second apply
        pid = patch_id or new_patch_id()
        body = json.dumps(command.raw, sort_keys=True, default=str).encode()
        self._record(
            pid,
            EventType.PATCH_RECEIVED,
            {
                "patch_id": pid,
                "workspace": self.workspace.name,
                "client_id": command.client_id,
                "format": command.format,
                "body_sha256": command.body_sha256,
                "body_blob": _sha256(body),
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
            self.by_client_id[command.client_id] = pid
        try:
            if self.paused and not command.dry_run:
                self._record(pid, EventType.PATCH_QUEUED, {"patch_id": pid, "reason": "paused"})
                self.queue.append(pid)
                return self.outcome(pid)
            return self._process(pid, command, approved=False)
        finally:
            self._flush_deferred(pid)  # a bug escaped before any event: keep the receipt

    def approve(self, pid: str, by: str) -> PatchOutcome:
        view = self._view(pid)
        if view.status != "pending_approval":
            raise FlowError("conflict", f"patch {pid} is {view.public_status}, not pending")
        self._record(pid, EventType.PATCH_APPROVED, {"patch_id": pid, "by": by})
        return self._process(pid, self._command_of(view), approved=True)

    def reject(self, pid: str, by: str, reason: str = "") -> PatchOutcome:
        view = self._view(pid)
        if view.status not in ("pending_approval", "queued"):
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
            done.append(self._process(pid, self._command_of(self._view(pid)), approved=False))
        return done

    def rollback(
        self, pid: str, by: str, force: bool = False, dry_run: bool = False
    ) -> PatchOutcome:
        view = self._view(pid)
        if view.rolled_back or view.status not in ("applied", "failed_tests"):
            raise FlowError(
                "conflict", f"patch {pid} is {view.public_status}: nothing to roll back"
            )
        changes, drift = self._rollback_changes(view)
        if drift and not force:
            raise FlowError(
                "conflict",
                f"{len(drift)} file(s) changed since patch {pid}; rollback refused "
                "(force to override)",
                {"changed": drift},
            )
        # The answer's diff is the rollback's own effect (current -> before), as a dry run shows.
        diff = _diff_of(changes)
        if dry_run:
            return PatchOutcome(pid, _status(view), diff=diff)
        self._roll_back(pid, changes, reason="manual", by=by, forced=force and bool(drift))
        return self.outcome(pid, diff)

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
        except PatchRejected as exc:
            code: ErrorCode = (
                "conflict"
                if exc.is_conflict
                else ("sandbox" if exc.violations and not exc.failures else "does_not_apply")
            )
            return self._reject(pid, code, _rejection_message(exc), exc.as_json())
        diffs = [diff_file(f) for f in planned.files]
        diff = "".join(d.text for d in diffs)
        files = _files_json(planned, diffs)
        # Blobs go into the store with the event that names them: one commit, not one each.
        diff_bytes = diff.encode()
        diff_blob = _sha256(diff_bytes)
        if command.dry_run:
            self._record(
                pid,
                EventType.PATCH_DRY_RUN,
                {"patch_id": pid, "files": files, "diff_blob": diff_blob},
                blobs=[diff_bytes],
            )
            return self.outcome(pid, diff)
        if self.workspace.approval == "manual" and not approved:
            self._record(
                pid,
                EventType.PATCH_PENDING_APPROVAL,
                {"patch_id": pid, "files": files, "diff_blob": diff_blob},
                blobs=[diff_bytes],
            )
            return self.outcome(pid, diff)
        changes = [FileChange(path, before, after) for path, before, after in planned.changes()]
        changes_json = [
            {
                "path": c.path,
                "before_sha256": sha256_or_none(c.before),
                "after_sha256": sha256_or_none(c.after),
            }
            for c in changes
        ]
        journal = {
            "patch_id": pid,
            "txn_id": pid,
            "files": files,
            "changes": changes_json,
            "diff_blob": diff_blob,
        }
        journal_blobs = [
            diff_bytes,
            *(b for c in changes for b in (c.before, c.after) if b is not None),
        ]
        if self.expect_writes is not None:
            self.expect_writes({c.path: sha256_or_none(c.after) for c in changes}, f"patch:{pid}")
        applied = {
            "patch_id": pid,
            "txn_id": pid,
            "files": files,
            "changes": changes_json,
            "diff_blob": diff_blob,
        }
        skipped = self._tests_skipped(command)
        if skipped is not None:
            applied["tests_skipped"] = skipped
        try:
            self.transactions.apply(
                pid,
                changes,
                # Not forced to disk: the renames were the commit point (module doc).
                lambda: self._record(pid, EventType.PATCH_APPLIED, applied, durable=False),
                journal=False,
                reap_later=self.reap_later,
                # The transaction's journal: its changes, and as blobs the contents of both
                # sides, durable before any file is renamed (see _recover_apply); the new
                # contents are written and fsynced meanwhile.
                record=lambda: self._record(
                    pid, EventType.PATCH_APPLYING, journal, blobs=journal_blobs
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

    def _tests_skipped(self, command: PatchCommand) -> str | None:
        """Why an applied patch's tests will not run (None: they will)."""
        if self.workspace.test_command is None:
            return self.workspace.tests_absent_reason
        if not command.run_tests:
            return "not requested (run_tests: false)"
        return None

    def run_tests_now(self, by: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The webhook's `run_tests`: the workspace's tests as they are, between patches (the
        actor's queue orders it), recorded in `tests-<workspace>`. Changes nothing."""
        test_command = self.workspace.test_command
        if test_command is None:
            raise FlowError(
                "invalid",
                f"workspace {self.workspace.name} has no test command "
                f"({self.workspace.tests_absent_reason}; set test_command in ghost.toml)",
            )
        run_id = new_patch_id()
        stream = tests_stream(self.workspace.name)
        started = {"run_id": run_id, "command": str(test_command.args), "by": by}
        self.store.append(stream, [NewEvent(EventType.TESTS_STARTED, started, meta or {})])
        run = self.test_runner(self.workspace)
        tests = {
            "status": run.status,
            "exit_code": run.exit_code,
            "duration_s": round(run.duration_s, 3),
            "output_tail": run.output_tail,
            "message": run.message,
        }
        finished = {"run_id": run_id, **tests, "output_blob": _sha256(run.output)}
        [position] = self.store.append(
            stream, [NewEvent(EventType.TESTS_FINISHED, finished, meta or {})], blobs=[run.output]
        )
        return {"run_id": run_id, "status": run.status, "tests": tests, "position": position}

    def _run_tests(self, pid: str, command: PatchCommand, changes: list[FileChange]) -> None:
        test_command = self.workspace.test_command
        assert test_command is not None
        self._record(
            pid, EventType.TESTS_STARTED, {"patch_id": pid, "command": str(test_command.args)}
        )
        run = self.test_runner(self.workspace)
        self._record(
            pid,
            EventType.TESTS_FINISHED,
            {
                "patch_id": pid,
                "status": run.status,
                "exit_code": run.exit_code,
                "duration_s": round(run.duration_s, 3),
                "output_tail": run.output_tail,
                "output_blob": _sha256(run.output),
                "message": run.message,
            },
            blobs=[run.output],
        )
        if run.status != "passed" and self._rolls_back(command):
            reverse = [FileChange(c.path, c.after, c.before) for c in changes]
            try:
                self._roll_back(pid, reverse, reason="tests_failed", by="ghost-node", forced=False)
            except FileChangedError as exc:
                log.error("patch %s: automatic rollback refused: %s", pid, exc)

    def _rolls_back(self, command: PatchCommand) -> bool:
        """Whether failed tests roll this patch back (its own choice, else the workspace's)."""
        if command.rollback_on_failure is None:
            return self.workspace.rollback_on_test_failure
        return bool(command.rollback_on_failure)

    def _rollback_changes(self, view: PatchView) -> tuple[list[FileChange], list[dict[str, Any]]]:
        changes, drift = [], []
        for change in view.changes:
            path = change["path"]
            want_now, restore = change["after_sha256"], change["before_sha256"]
            current = SandboxView(self.sandbox).read(path)
            before = None if restore is None else self.store.get_blob(restore)
            if sha256_or_none(current) != want_now:
                drift.append(
                    {
                        "path": path,
                        "expected_sha256": want_now,
                        "actual_sha256": sha256_or_none(current),
                    }
                )
            changes.append(FileChange(path, current, before))
        return changes, drift

    def _roll_back(
        self, pid: str, changes: list[FileChange], reason: str, by: str, forced: bool
    ) -> None:
        view = self._view(pid)
        txn_id = f"{pid}-rb{sum(1 for d in view.decisions if d['decision'] == 'rolled_back') + 1}"
        data = {
            "patch_id": pid,
            "txn_id": txn_id,
            "reason": reason,
            "by": by,
            "forced": forced,
            "changes": [
                {
                    "path": c.path,
                    "before_sha256": sha256_or_none(c.before),
                    "after_sha256": sha256_or_none(c.after),
                }
                for c in changes
            ],
        }
        if self.expect_writes is not None:
            self.expect_writes({c.path: sha256_or_none(c.after) for c in changes}, f"patch:{pid}")
        self.transactions.apply(
            txn_id,
            changes,
            lambda: self._record(pid, EventType.PATCH_ROLLED_BACK, data),
            reap_later=self.reap_later,
        )

    # --- answers and bookkeeping ---------------------------------------------------------------
    def outcome(self, pid: str, diff: str | None = None) -> PatchOutcome:
        view = self._view(pid)
        if diff is None and view.diff_blob is not None:
            diff = self.store.get_blob(view.diff_blob).decode("utf-8", "replace")
        error = None
        if view.error is not None:
            error = PatchError(
                view.error["code"], view.error["message"] or "", view.error.get("details") or {}
            )
        run = tests_of(view)
        tests = TestsOutcome(
            run["status"],
            run.get("exit_code"),
            float(run.get("duration_s") or 0.0),
            run.get("output_tail") or "",
            run.get("reason") or "",
        )
        files = tuple(
            FileOutcome(
                f["path"],
                f["action"],
                f.get("before_sha256"),
                f.get("after_sha256"),
                f.get("move_from"),
            )
            for f in view.files
        )
        return PatchOutcome(pid, _status(view), files, diff or "", tests, view.last_position, error)

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
        message = _without_host_paths(message, str(self.workspace.path))
        data = {"patch_id": pid, "code": code, "message": message, "details": dict(details)}
        if by is not None:
            data["by"] = by
        self._record(pid, EventType.PATCH_REJECTED, data)
        return self.outcome(pid)

    def _record(
        self,
        pid: str,
        kind: EventType,
        data: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
        blobs: Sequence[bytes] = (),
        durable: bool = True,
        defer: bool = False,
    ) -> None:
        """Append one event of the patch (with what was deferred before it, in the same
        commit) and fold it into the live view. `defer`: hold it for the next one."""
        event = NewEvent(kind, data, meta or {})
        pending = self._deferred.setdefault(pid, _Deferred())
        pending.events.append(event)
        pending.blobs.extend(blobs)
        if not defer:
            self._append(pid, durable)

    def _flush_deferred(self, pid: str) -> None:
        if pid in self._deferred:
            self._append(pid, durable=True)

    def _append(self, pid: str, durable: bool) -> None:
        pending = self._deferred.pop(pid)
        # The view before these events, read before the append (a view loaded after it would
        # already hold them). A new patch has none.
        new = pending.events[0].type == EventType.PATCH_RECEIVED
        view = None if new else self._lookup(pid)
        stream = patch_stream(pid)
        positions = self.store.append(stream, pending.events, blobs=pending.blobs, durable=durable)
        for position, event in zip(positions, pending.events, strict=True):
            # Keep the live view exactly what a replay would fold.
            recorded = RecordedEvent(
                position,
                event.event_id,
                stream,
                0,
                str(event.type),
                _now(),
                event.data,
                event.meta,
                "",
            )
            view = fold(view, recorded)
        assert view is not None
        self._remember(pid, view)
        if view.client_id is not None:
            self.by_client_id[view.client_id] = pid

    def _lookup(self, pid: str) -> PatchView | None:
        """This workspace's patch: from the cache, else folded from its own stream."""
        view = self.patches.get(pid)
        if view is not None:
            self.patches.move_to_end(pid)
            return view
        for event in self.store.read_stream(patch_stream(pid)):
            view = fold(view, event)
        if view is None or view.workspace != self.workspace.name:
            return None
        self._remember(pid, view)
        return view

    def _remember(self, pid: str, view: PatchView) -> None:
        self.patches[pid] = view
        self.patches.move_to_end(pid)
        self._trim()

    def _trim(self) -> None:
        while len(self.patches) > VIEW_CACHE_SIZE and not self._loading:
            self.patches.popitem(last=False)

    def _view(self, pid: str) -> PatchView:
        view = self._lookup(pid)
        if view is None:
            raise FlowError("not_found", f"no patch {pid} in workspace {self.workspace.name}")
        return view

    def _command_of(self, view: PatchView) -> PatchCommand:
        """The command again, from its stored body (approval and resume can be much later)."""
        assert view.body_blob is not None
        raw = json.loads(self.store.get_blob(view.body_blob))
        return command_from_body(raw, self.workspace.name)


def new_patch_id() -> str:
    return uuid.uuid4().hex[:16]


def command_from_body(raw: Mapping[str, Any], workspace: str) -> PatchCommand:
    """A PatchCommand from a JSON body whose types the HTTP layer already checked."""
    return PatchCommand(
        raw=raw,
        workspace=workspace,
        format=raw.get("format"),
        client_id=raw.get("id"),
        dry_run=bool(raw.get("dry_run", False)),
        run_tests=bool(raw.get("run_tests", True)),
        rollback_on_failure=raw.get("rollback_on_failure"),
        description=str(raw.get("description", "")),
        author=str(raw.get("author", "")),
    )


def _status(view: PatchView) -> Status:
    return cast(Status, view.public_status)


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _split_txn(txn_id: str) -> tuple[str, str]:
    pid, sep, _ = txn_id.partition("-rb")
    return pid, "rollback" if sep else "apply"


def _files_json(planned: Plan, diffs: Sequence[FileDiff]) -> list[dict[str, Any]]:
    out = []
    for f, d in zip(planned.files, diffs, strict=True):
        item = FileOutcome(
            f.path, f.action, sha256_or_none(f.before), sha256_or_none(f.after), f.move_from
        ).as_json()
        item.update({"added": d.added, "removed": d.removed})
        out.append(item)
    return out


def _diff_of(changes: list[FileChange]) -> str:
    """The diff a rollback would make, in the same format as every other diff we show."""
    return "".join(
        file_diff(
            PlannedFile(
                c.path,
                "add" if c.before is None else "delete" if c.after is None else "update",
                c.before,
                c.after,
            )
        )
        for c in changes
    )


def _without_host_paths(message: str, root: str) -> str:
    root = root.rstrip("/")
    return message.replace(root + "/", "").replace(root, ".") if root else message


def _rejection_message(exc: PatchRejected) -> str:
    n = len(exc.failures) + len(exc.violations)
    return f"the patch does not apply: {n} problem(s): {exc}"


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
