"""The patches projection: what each patch is, built only from its events (SPEC §6).

`fold(view, event)` is a pure function: the node uses it live (GET /patches/{id}, idempotent
answers) and the CLI uses it from scratch (`ghost show`, `ghost audit`), so both always agree.
It is `step` (one event into a mutable `PatchState`, by a fold function per event type) between
a thaw and a freeze; a bulk rebuild (replay/state.py) calls `step` on one state per patch for
all of the patch's events and freezes once at the end, so it runs the same folds.

Status after each event:
    PatchReceived -> received   PatchQueued -> queued      PatchRejected -> rejected
    PatchDryRun -> dry_run      PatchPendingApproval -> pending_approval
    PatchApproved -> approved   PatchApplying -> applying   PatchApplied -> applied
    TestsFinished (failed, no rollback) -> failed           PatchRolledBack -> rolled_back
    PatchRecovered: an interrupted apply is `applied` if it was completed, else `failed`
    (nothing changed); an interrupted rollback is `rolled_back` if completed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple, cast

from adapters.ledger.status import PatchStatus
from eventstore.catalogue import EventType
from eventstore.events import RecordedEvent
from eventstore.rows import recorded_at

PATCH_EVENT_TYPES = frozenset(
    {
        EventType.PATCH_RECEIVED,
        EventType.PATCH_QUEUED,
        EventType.PATCH_REJECTED,
        EventType.PATCH_DRY_RUN,
        EventType.PATCH_PENDING_APPROVAL,
        EventType.PATCH_APPROVED,
        EventType.PATCH_APPLYING,
        EventType.PATCH_APPLIED,
        EventType.PATCH_RECOVERED,
        EventType.PATCH_ROLLED_BACK,
        EventType.TESTS_STARTED,
        EventType.TESTS_FINISHED,
    }
)


class PatchView(NamedTuple):
    """One patch as its events tell it. A NamedTuple: immutable like a frozen dataclass, and
    `_replace` is several times cheaper than dataclasses.replace on a replay's hot path."""

    patch_id: str
    workspace: str = ""
    status: PatchStatus = PatchStatus.RECEIVED
    client_id: str | None = None
    body_sha256: str = ""
    body_blob: str | None = None
    format: str | None = None
    description: str = ""
    author: str = ""
    dry_run: bool = False
    received_at: datetime | None = None
    files: tuple[Mapping[str, Any], ...] = ()
    changes: tuple[Mapping[str, Any], ...] = ()  # per path: path, before/after sha256
    diff_blob: str | None = None
    tests: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    decisions: tuple[Mapping[str, Any], ...] = ()  # approvals, rejections, rollbacks
    rolled_back: bool = False
    first_position: int = 0
    last_position: int = 0
    events: tuple[int, ...] = ()

    @property
    def public_status(self) -> PatchStatus:
        """The SPEC §4 status word."""
        return PatchStatus(self.status).public


# `tests` of a patch not applied yet (also the answer to a queued patch).
NOT_APPLIED_YET: Mapping[str, str] = {"status": "skipped", "reason": "not applied yet"}

# Why a patch that records no test run has none, by its status (SPEC §4: `tests` is never
# null). An applied patch records its own reason (PatchApplied's `tests_skipped`).
_NOT_RUN: Mapping[str, str] = {
    PatchStatus.RECEIVED: NOT_APPLIED_YET["reason"],
    PatchStatus.QUEUED: NOT_APPLIED_YET["reason"],
    PatchStatus.APPROVED: NOT_APPLIED_YET["reason"],
    PatchStatus.APPLYING: NOT_APPLIED_YET["reason"],
    PatchStatus.PENDING_APPROVAL: "waiting for approval",
    PatchStatus.DRY_RUN: "dry run",
    PatchStatus.REJECTED: "not applied",
    PatchStatus.FAILED: "not applied",
}


def tests_of(view: PatchView) -> Mapping[str, Any]:
    """The patch's test run as answered (output_blob left to the store), or why there is none."""
    if view.tests is not None:
        return {k: v for k, v in view.tests.items() if k != "output_blob"}
    return {"status": "skipped", "reason": _NOT_RUN.get(view.status, "not run")}


# A recorded time as a fold gets it: a datetime (RecordedEvent.recorded_at) or the store's
# integer microseconds (a raw row, eventstore/rows.py). Only folds that keep the time turn it
# into a datetime (`to_datetime`), so a bulk rebuild does not build one per event.
Instant = datetime | int


def to_datetime(at: Instant) -> datetime:
    """An Instant as RecordedEvent.recorded_at would be."""
    return at if isinstance(at, datetime) else recorded_at(at)


class PatchState:
    """A patch while events are folded into it: PatchView's fields, mutable, so a rebuild
    changes one object per patch instead of copying a view per event. `freeze()` gives the
    view; `fold` below is thaw, `step`, freeze, so the live fold and a rebuild run the same
    code. (`first_position` and `last_position` follow from `events` at the freeze.)"""

    __slots__ = (*PatchView._fields, "_folded_from")

    def __init__(self, view: PatchView) -> None:
        self.patch_id: str = view.patch_id
        self.workspace: str = view.workspace
        self.status: str = view.status  # a PatchStatus (a plain str once read from a snapshot)
        self.client_id: str | None = view.client_id
        self.body_sha256: str = view.body_sha256
        self.body_blob: str | None = view.body_blob
        self.format: str | None = view.format
        self.description: str = view.description
        self.author: str = view.author
        self.dry_run: bool = view.dry_run
        self.received_at: datetime | None = view.received_at
        self.files: tuple[Mapping[str, Any], ...] = view.files
        self.changes: tuple[Mapping[str, Any], ...] = view.changes
        self.diff_blob: str | None = view.diff_blob
        self.tests: Mapping[str, Any] | None = view.tests
        self.error: Mapping[str, Any] | None = view.error
        self.decisions: tuple[Mapping[str, Any], ...] = view.decisions
        self.rolled_back: bool = view.rolled_back
        self.first_position: int = view.first_position
        self.last_position: int = view.last_position
        self.events: list[int] = list(view.events)
        self._folded_from = len(self.events)

    @classmethod
    def start(cls, stream: str, d: Mapping[str, Any]) -> PatchState:
        """A patch's state before its first event (`d`, that event's data)."""
        state = cls(_NO_PATCH)
        state.patch_id = str(d.get("patch_id", stream.removeprefix("patch-")))
        return state

    def freeze(self) -> PatchView:
        events = self.events
        first, last = self.first_position, self.last_position
        if len(events) > self._folded_from:
            first = first or events[self._folded_from]
            last = events[-1]
        return _new_view(
            PatchView,
            (
                self.patch_id,
                self.workspace,
                self.status,
                self.client_id,
                self.body_sha256,
                self.body_blob,
                self.format,
                self.description,
                self.author,
                self.dry_run,
                self.received_at,
                self.files,
                self.changes,
                self.diff_blob,
                self.tests,
                self.error,
                self.decisions,
                self.rolled_back,
                first,
                last,
                tuple(events),
            ),
        )


# PatchView(*fields) without the Python-level __new__ of a NamedTuple.
_new_view = cast(Callable[[type[PatchView], tuple[Any, ...]], PatchView], tuple.__new__)
_NO_PATCH = PatchView(patch_id="")


def fold(view: PatchView | None, event: RecordedEvent) -> PatchView:
    """The patch after `event` (an event of its stream)."""
    d = event.data
    state = PatchState.start(event.stream, d) if view is None else PatchState(view)
    step(state, event.position, event.type, event.recorded_at, d)
    return state.freeze()


def step(s: PatchState, position: int, kind: str, at: Instant, d: Mapping[str, Any]) -> None:
    """Fold one event of the patch's stream into `s` (events of other types only count as
    the patch's events)."""
    s.events.append(position)
    change = _FOLDS.get(kind)
    if change is not None:
        change(s, d, at)


# --- what each event type changes (besides positions) ------------------------------------------
def _received(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    s.workspace = d.get("workspace", "")
    s.client_id = d.get("client_id")
    s.body_sha256 = d.get("body_sha256", "")
    s.body_blob = d.get("body_blob")
    s.format = d.get("format")
    s.description = d.get("description", "")
    s.author = d.get("author", "")
    s.dry_run = bool(d.get("dry_run", False))
    s.received_at = to_datetime(at)


def _queued(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    s.status = PatchStatus.QUEUED


def _rejected(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    s.status = PatchStatus.REJECTED
    s.error = {"code": d.get("code"), "message": d.get("message"), "details": d.get("details")}
    if d.get("by"):
        s.decisions = (*s.decisions, {"decision": "rejected", "by": d["by"], "at": to_datetime(at)})


def _dry_run(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    s.status = PatchStatus.DRY_RUN
    s.files = tuple(d.get("files", ()))
    s.diff_blob = d.get("diff_blob")


def _pending_approval(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    s.status = PatchStatus.PENDING_APPROVAL
    s.files = tuple(d.get("files", ()))
    s.diff_blob = d.get("diff_blob")


def _approved(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    s.status = PatchStatus.APPROVED
    s.decisions = (*s.decisions, {"decision": "approved", "by": d.get("by"), "at": to_datetime(at)})


def _applying(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    s.status = PatchStatus.APPLYING
    s.files = tuple(d.get("files", s.files))


def _applied(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    s.status = PatchStatus.APPLIED
    s.files = tuple(d.get("files", s.files))
    s.changes = tuple(d.get("changes", ()))
    s.diff_blob = d.get("diff_blob", s.diff_blob)
    if d.get("tests_skipped"):
        s.tests = {"status": "skipped", "reason": d["tests_skipped"]}


def _tests_started(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    s.tests = {"status": "running", "command": d.get("command")}


def _tests_finished(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    status = d.get("status")
    s.tests = {
        "status": status,
        "exit_code": d.get("exit_code"),
        "duration_s": d.get("duration_s"),
        "output_tail": d.get("output_tail"),
        "output_blob": d.get("output_blob"),
    }
    if status != "passed" and s.status == PatchStatus.APPLIED:
        s.status = PatchStatus.FAILED_TESTS


def _rolled_back(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    decision = {
        "decision": "rolled_back",
        "by": d.get("by"),
        "reason": d.get("reason"),
        "forced": bool(d.get("forced", False)),
        "at": to_datetime(at),
    }
    if d.get("overwritten"):
        decision["overwritten"] = list(d["overwritten"])
    s.status = PatchStatus.ROLLED_BACK
    s.rolled_back = True
    s.decisions = (*s.decisions, decision)


def _recovered(s: PatchState, d: Mapping[str, Any], at: Instant) -> None:
    completed = d.get("outcome") == "applied"
    if d.get("kind") == "rollback":
        if completed:
            s.status = PatchStatus.ROLLED_BACK
            s.rolled_back = True
    elif completed:
        s.status = PatchStatus.APPLIED
        s.changes = tuple(d.get("changes", s.changes))
        s.diff_blob = d.get("diff_blob", s.diff_blob)  # an apply completed from its journal
    else:
        s.status = PatchStatus.FAILED
        s.error = {"code": "interrupted", "message": d.get("message", "interrupted"), "details": {}}


_FOLDS: dict[str, Callable[[PatchState, Mapping[str, Any], Instant], None]] = {
    # Plain str keys: rows carry their type as a plain str, the fastest dict lookup.
    str(kind): change
    for kind, change in {
        EventType.PATCH_RECEIVED: _received,
        EventType.PATCH_QUEUED: _queued,
        EventType.PATCH_REJECTED: _rejected,
        EventType.PATCH_DRY_RUN: _dry_run,
        EventType.PATCH_PENDING_APPROVAL: _pending_approval,
        EventType.PATCH_APPROVED: _approved,
        EventType.PATCH_APPLYING: _applying,
        EventType.PATCH_APPLIED: _applied,
        EventType.TESTS_STARTED: _tests_started,
        EventType.TESTS_FINISHED: _tests_finished,
        EventType.PATCH_ROLLED_BACK: _rolled_back,
        EventType.PATCH_RECOVERED: _recovered,
    }.items()
}
assert set(_FOLDS) == PATCH_EVENT_TYPES


def fold_all(events: Iterable[RecordedEvent]) -> dict[str, PatchView]:
    """Every patch from a sequence of events (other event types are skipped)."""
    states: dict[str, PatchState] = {}
    for event in events:
        if event.type in PATCH_EVENT_TYPES and event.stream.startswith("patch-"):
            pid = event.stream.removeprefix("patch-")
            state = states.get(pid)
            if state is None:
                state = states[pid] = PatchState.start(event.stream, event.data)
            step(state, event.position, event.type, event.recorded_at, event.data)
    return {pid: state.freeze() for pid, state in states.items()}
