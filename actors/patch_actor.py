"""PatchActor: one per workspace, so a workspace's patches go one at a time, in order, while
workspaces run in parallel (SPEC §5). It owns a PatchFlow and only sequences it.

PatchService is the thread-safe face the HTTP layer, Slack commands and the CLI use: it names
the patch before queueing it (so a caller can answer `queued` with an id at once), routes each
command to its workspace's actor through the actor's ChildHandle (messages sent while the actor
restarts wait in the handle's buffer), and answers with concurrent Futures, which a Twisted
caller turns into Deferreds with add_done_callback + callFromThread, parking no thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.base import GhostActor
from actors.errors import ChildUnavailableError
from actors.handle import ChildHandle
from actors.patches.flow import PatchFlow, new_patch_id
from actors.patches.parts import AnnounceWrites
from actors.patches.testing import TestRunner, default_test_runner
from adapters.config import WorkspaceConfig
from adapters.ledger.projection import PatchView, fold
from adapters.ledger.records import Decision, FlowError, PatchCommand, PatchOutcome
from adapters.ledger.status import PatchStatus
from eventstore.catalogue import NODE_STREAM, EventType, patch_stream
from eventstore.errors import StoreError
from eventstore.events import NewEvent
from eventstore.protocol import EventStore

log = logging.getLogger(__name__)


# --- messages ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SubmitPatch:
    patch_id: str
    command: PatchCommand
    meta: Mapping[str, Any]
    reply: Future[PatchOutcome] = field(compare=False)


@dataclass(frozen=True, slots=True)
class DecidePatch:
    """An owner's decision about a patch of this workspace."""

    decision: Decision
    patch_id: str
    by: str
    reply: Future[PatchOutcome] = field(compare=False)
    reason: str = ""
    force: bool = False
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class RunTests:
    """Run the workspace's tests now, in the queue between patches (never during one)."""

    by: str
    meta: Mapping[str, Any]
    reply: Future[dict[str, Any]] = field(compare=False)


@dataclass(frozen=True, slots=True)
class SetPaused:
    paused: bool
    reply: Future[list[PatchOutcome]] = field(compare=False)


# --- the actor -----------------------------------------------------------------------------------
class PatchActor(GhostActor):
    def __init__(
        self,
        workspace: WorkspaceConfig,
        store: EventStore,
        journal_dir: Path,
        test_runner: TestRunner = default_test_runner,
        expect_writes: AnnounceWrites | None = None,
    ) -> None:
        super().__init__(f"patch.{workspace.name}")
        self.workspace = workspace
        self._store = store
        self._journal_dir = journal_dir
        self._test_runner = test_runner
        self._expect_writes = expect_writes
        self.flow: PatchFlow | None = None

    def setup(self) -> None:
        # Rebuilt from events on every (re)start, and leftover journals resolved first: a
        # restart after a crash mid-patch leaves every patch all-before or all-after.
        flow = PatchFlow(
            self.workspace,
            self._store,
            self._journal_dir,
            self._test_runner,
            self._expect_writes,
            reap_later=True,  # tidied after each answer, in _answer
        )
        flow.load()
        self.flow = flow

    def teardown(self) -> None:
        if self.flow is not None:
            self.flow.close()

    def receive(self, message: Any) -> Any:
        if isinstance(message, SubmitPatch | DecidePatch | SetPaused | RunTests):
            self._answer(message)
            return None
        return super().receive(message)

    def _answer(self, message: SubmitPatch | DecidePatch | SetPaused | RunTests) -> None:
        flow = self.flow
        assert flow is not None
        try:
            self._decide(flow, message)
        finally:
            flow.tidy()  # after the answer: see PatchFlow.tidy

    def _decide(
        self, flow: PatchFlow, message: SubmitPatch | DecidePatch | SetPaused | RunTests
    ) -> None:
        try:
            result: Any
            if isinstance(message, SubmitPatch):
                result = flow.submit(message.command, message.meta, message.patch_id)
            elif isinstance(message, RunTests):
                result = flow.run_tests_now(message.by, message.meta)
            elif isinstance(message, SetPaused):
                result = [] if message.paused else flow.resume()
                if message.paused:
                    flow.pause()
            elif message.decision is Decision.APPROVE:
                result = flow.approve(message.patch_id, message.by)
            elif message.decision is Decision.REJECT:
                result = flow.reject(message.patch_id, message.by, message.reason)
            else:
                result = flow.rollback(message.patch_id, message.by, message.force, message.dry_run)
        except FlowError as exc:
            message.reply.set_exception(exc)
            return
        except StoreError as exc:
            # The store refused a write (locked by another process past its busy timeout, disk
            # full): a condition to retry after, not a bug. Nothing of the failed step was
            # recorded (a transaction whose commit failed restored its files first). Then fail
            # like any other error, so the flow is rebuilt from what the store does hold.
            pid = getattr(message, "patch_id", None)
            details = {"patch_id": pid} if pid else {}
            message.reply.set_exception(
                FlowError("busy", f"the event store is unavailable ({exc}); retry later", details)
            )
            raise
        except Exception as exc:
            # Unexpected: answer the caller, then fail so the supervisor restarts this actor
            # and setup() rebuilds the flow from events (and recovers any journal).
            message.reply.set_exception(FlowError("busy", f"internal error: {exc!r}"))
            raise
        message.reply.set_result(result)


# --- the service ---------------------------------------------------------------------------------
class PatchService:
    def __init__(
        self,
        handles: Mapping[str, ChildHandle],
        store: EventStore,
        workspaces: Sequence[WorkspaceConfig],
    ) -> None:
        self._handles = dict(handles)
        self._store = store
        self._workspaces = {w.name: w for w in workspaces}
        self._accepted: dict[str, str] = {}  # patch id -> workspace, until its events exist
        self._lock = threading.Lock()

    @property
    def workspaces(self) -> Mapping[str, WorkspaceConfig]:
        return self._workspaces

    def workspace_name(self, requested: str | None) -> str:
        if requested is None:
            if len(self._workspaces) == 1:
                return next(iter(self._workspaces))
            raise FlowError(
                "invalid", "several workspaces: say which", {"workspaces": sorted(self._workspaces)}
            )
        if requested not in self._workspaces:
            raise FlowError(
                "not_found",
                f"no workspace {requested!r}",
                {"workspaces": sorted(self._workspaces)},
            )
        return requested

    def submit(
        self, command: PatchCommand, meta: Mapping[str, Any] | None = None
    ) -> tuple[str, Future[PatchOutcome]]:
        """The patch id at once, and the outcome when its actor has processed it."""
        pid = new_patch_id()
        reply: Future[PatchOutcome] = Future()
        with self._lock:
            self._accepted[pid] = command.workspace
        reply.add_done_callback(lambda _: self._forget(pid))
        self._tell(command.workspace, SubmitPatch(pid, command, dict(meta or {}), reply), reply)
        return pid, reply

    def decide(
        self,
        decision: Decision,
        pid: str,
        by: str,
        *,
        reason: str = "",
        force: bool = False,
        dry_run: bool = False,
    ) -> Future[PatchOutcome]:
        reply: Future[PatchOutcome] = Future()
        view = self.view(pid)
        if view is None:
            reply.set_exception(FlowError("not_found", f"no patch {pid}"))
            return reply
        message = DecidePatch(Decision(decision), pid, by, reply, reason, force, dry_run)
        self._tell(view.workspace, message, reply)
        return reply

    def run_tests(
        self, workspace: str, by: str, meta: Mapping[str, Any] | None = None
    ) -> Future[dict[str, Any]]:
        """{run_id, status, tests, position} once the workspace's actor ran its tests."""
        reply: Future[dict[str, Any]] = Future()
        self._tell(workspace, RunTests(by, dict(meta or {}), reply), reply)
        return reply

    def set_paused(self, paused: bool, by: str) -> Future[list[PatchOutcome]]:
        """Pause or resume every workspace; recorded, so a restarted node stays paused."""
        kind = EventType.NODE_PAUSED if paused else EventType.NODE_RESUMED
        self._store.append(NODE_STREAM, [NewEvent(kind, {"by": by})])
        futures = []
        for name in self._workspaces:
            reply: Future[list[PatchOutcome]] = Future()
            self._tell(name, SetPaused(paused, reply), reply)
            futures.append(reply)
        combined: Future[list[PatchOutcome]] = Future()
        remaining = [len(futures)]
        results: list[PatchOutcome] = []
        lock = threading.Lock()

        def one_done(f: Future[list[PatchOutcome]]) -> None:
            with lock:
                if f.exception() is None:
                    results.extend(f.result())
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                combined.set_result(results)

        for f in futures:
            f.add_done_callback(one_done)
        return combined

    def view(self, pid: str) -> PatchView | None:
        """The patch from its events (or `queued` while it waits in its actor's inbox)."""
        view: PatchView | None = None
        for event in self._store.read_stream(patch_stream(pid)):
            view = fold(view, event)
        if view is None:
            with self._lock:
                workspace = self._accepted.get(pid)
            if workspace is not None:
                return PatchView(patch_id=pid, workspace=workspace, status=PatchStatus.QUEUED)
        return view

    def _tell(self, workspace: str, message: Any, reply: Future[Any]) -> None:
        handle = self._handles.get(workspace)
        if handle is None:
            reply.set_exception(FlowError("not_found", f"no workspace {workspace!r}"))
            return
        try:
            handle.tell(message)
        except ChildUnavailableError:
            # the reason (an exception's text) stays in the node's log: it may name host paths
            reply.set_exception(
                FlowError(
                    "busy",
                    f"workspace {workspace} is not available (its patch actor is restarting); "
                    "retry in a few seconds",
                )
            )

    def _forget(self, pid: str) -> None:
        with self._lock:
            self._accepted.pop(pid, None)
