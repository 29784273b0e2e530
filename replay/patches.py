"""The patches projection: what each patch is, built only from its events (SPEC §6).

`fold(view, event)` is a pure function: the node uses it live (GET /patches/{id}, idempotent
answers) and the CLI uses it from scratch (`ghost show`, `ghost audit`), so both always agree.

Status after each event:
    PatchReceived -> received   PatchQueued -> queued      PatchRejected -> rejected
    PatchDryRun -> dry_run      PatchPendingApproval -> pending_approval
    PatchApproved -> approved   PatchApplying -> applying   PatchApplied -> applied
    TestsFinished (failed, no rollback) -> failed           PatchRolledBack -> rolled_back
    PatchRecovered: an interrupted apply is `applied` if it was completed, else `failed`
    (nothing changed); an interrupted rollback is `rolled_back` if completed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from eventstore.catalogue import EventType
from eventstore.events import RecordedEvent

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

# Statuses in which the patch's changes are on disk (so it can be rolled back).
ON_DISK = frozenset({"applied", "failed_tests"})


class PatchView(NamedTuple):
    """One patch as its events tell it. A NamedTuple: immutable like a frozen dataclass, and
    `_replace` is several times cheaper than dataclasses.replace on a replay's hot path."""

    patch_id: str
    workspace: str = ""
    status: str = "received"
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
    def public_status(self) -> str:
        """The SPEC §4 status word."""
        return "failed" if self.status == "failed_tests" else self.status


def fold(view: PatchView | None, event: RecordedEvent) -> PatchView:
    """The patch after `event` (an event of its stream)."""
    d = event.data
    if view is None:
        view = PatchView(patch_id=str(d.get("patch_id", event.stream.removeprefix("patch-"))))
    return view._replace(
        last_position=event.position,
        first_position=view.first_position or event.position,
        events=(*view.events, event.position),
        **_changes(view, event, d),
    )


def _changes(view: PatchView, event: RecordedEvent, d: Mapping[str, Any]) -> dict[str, Any]:
    """The fields `event` changes (besides positions)."""
    kind = event.type
    if kind == EventType.PATCH_RECEIVED:
        return dict(
            workspace=d.get("workspace", ""),
            client_id=d.get("client_id"),
            body_sha256=d.get("body_sha256", ""),
            body_blob=d.get("body_blob"),
            format=d.get("format"),
            description=d.get("description", ""),
            author=d.get("author", ""),
            dry_run=bool(d.get("dry_run", False)),
            received_at=event.recorded_at,
        )
    if kind == EventType.PATCH_QUEUED:
        return dict(status="queued")
    if kind == EventType.PATCH_REJECTED:
        error = {"code": d.get("code"), "message": d.get("message"), "details": d.get("details")}
        decisions = view.decisions
        if d.get("by"):
            decisions = (
                *decisions,
                {"decision": "rejected", "by": d["by"], "at": event.recorded_at},
            )
        return dict(status="rejected", error=error, decisions=decisions)
    if kind in (EventType.PATCH_DRY_RUN, EventType.PATCH_PENDING_APPROVAL):
        status = "dry_run" if kind == EventType.PATCH_DRY_RUN else "pending_approval"
        return dict(
            status=status,
            files=tuple(d.get("files", ())),
            diff_blob=d.get("diff_blob"),
        )
    if kind == EventType.PATCH_APPROVED:
        decision = {"decision": "approved", "by": d.get("by"), "at": event.recorded_at}
        return dict(status="approved", decisions=(*view.decisions, decision))
    if kind == EventType.PATCH_APPLYING:
        return dict(status="applying", files=tuple(d.get("files", view.files)))
    if kind == EventType.PATCH_APPLIED:
        return dict(
            status="applied",
            files=tuple(d.get("files", view.files)),
            changes=tuple(d.get("changes", ())),
            diff_blob=d.get("diff_blob", view.diff_blob),
        )
    if kind == EventType.TESTS_STARTED:
        return dict(tests={"status": "running", "command": d.get("command")})
    if kind == EventType.TESTS_FINISHED:
        tests = {k: d.get(k) for k in ("status", "exit_code", "duration_s", "output_tail")}
        tests["output_blob"] = d.get("output_blob")
        failed = tests["status"] != "passed"
        status = "failed_tests" if failed and view.status == "applied" else view.status
        return dict(tests=tests, status=status)
    if kind == EventType.PATCH_ROLLED_BACK:
        decision = {
            "decision": "rolled_back",
            "by": d.get("by"),
            "reason": d.get("reason"),
            "forced": bool(d.get("forced", False)),
            "at": event.recorded_at,
        }
        return dict(status="rolled_back", rolled_back=True, decisions=(*view.decisions, decision))
    if kind == EventType.PATCH_RECOVERED:
        completed = d.get("outcome") == "applied"
        if d.get("kind") == "rollback":
            return dict(status="rolled_back", rolled_back=True) if completed else {}
        if completed:
            return dict(status="applied", changes=tuple(d.get("changes", view.changes)))
        error = {"code": "interrupted", "message": d.get("message", "interrupted"), "details": {}}
        return dict(status="failed", error=error)
    return {}


def fold_all(events: Iterable[RecordedEvent]) -> dict[str, PatchView]:
    """Every patch from a sequence of events (other event types are skipped)."""
    views: dict[str, PatchView] = {}
    for event in events:
        if event.type in PATCH_EVENT_TYPES and event.stream.startswith("patch-"):
            pid = event.stream.removeprefix("patch-")
            views[pid] = fold(views.get(pid), event)
    return views
