"""The node's state as a projection of its events: patches, files per workspace, actors,
tunnels, services, notifications, and the node's runs.

Each entity evolves by a pure function (`replay/patches.py:fold` for patches, the `_evolve_*`
functions here) from its previous immutable view and one event. `NodeProjection` is the only
mutable part: the dictionaries that hold the current view of every entity, and the position it
has folded up to. The node keeps one live (fed by a subscription), the CLI builds one from
scratch; both fold the same events with the same functions, so they agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from eventstore.catalogue import EventType
from eventstore.events import RecordedEvent
from replay.patches import PATCH_EVENT_TYPES, PatchView
from replay.patches import fold as fold_patch


@dataclass(frozen=True, slots=True)
class FileState:
    sha256: str
    position: int  # the last event that touched the file
    source: str  # external | patch:<id> | rescan


@dataclass(frozen=True, slots=True)
class ActorView:
    name: str
    state: str = "unknown"
    restarts: int = 0
    failures: int = 0
    last_error: str | None = None
    last_position: int = 0


@dataclass(frozen=True, slots=True)
class LinkView:
    """A tunnel or a service: up/down (or started/exited) with its last word."""

    name: str
    up: bool = False
    url: str | None = None
    detail: str | None = None
    transitions: int = 0
    since: datetime | None = None


@dataclass(slots=True)
class NodeProjection:
    position: int = 0
    patches: dict[str, PatchView] = field(default_factory=dict)
    files: dict[str, dict[str, FileState]] = field(default_factory=dict)
    actors: dict[str, ActorView] = field(default_factory=dict)
    tunnels: dict[str, LinkView] = field(default_factory=dict)
    services: dict[str, LinkView] = field(default_factory=dict)
    notifications: dict[str, int] = field(default_factory=lambda: {"sent": 0, "failed": 0})
    runs: list[dict[str, Any]] = field(default_factory=list)
    paused: bool = False
    _workspace_of_patch: dict[str, str] = field(default_factory=dict)

    def apply(self, event: RecordedEvent) -> None:
        if event.position <= self.position:
            return  # already folded: replays from any split point give the same state
        self.position = event.position
        kind = event.type
        if kind in PATCH_EVENT_TYPES and event.stream.startswith("patch-"):
            self._patch(event)
        elif kind == EventType.FILES_CHANGED:
            self._files_changed(event)
        elif event.stream.startswith("actor-") and kind.startswith("Actor"):
            name = str(event.data.get("actor", event.stream.removeprefix("actor-")))
            self.actors[name] = _evolve_actor(self.actors.get(name) or ActorView(name), event)
        elif kind in (EventType.TUNNEL_UP, EventType.TUNNEL_DOWN):
            name = str(event.data.get("name", event.stream.removeprefix("tunnel-")))
            self.tunnels[name] = _evolve_link(self.tunnels.get(name) or LinkView(name), event)
        elif kind in (EventType.SERVICE_STARTED, EventType.SERVICE_EXITED):
            name = str(event.data.get("name", event.stream.removeprefix("service-")))
            self.services[name] = _evolve_link(self.services.get(name) or LinkView(name), event)
        elif kind == EventType.NOTIFICATION_SENT:
            self.notifications["sent"] += 1
        elif kind == EventType.NOTIFICATION_FAILED:
            self.notifications["failed"] += 1
        elif kind == EventType.NODE_STARTED:
            self.runs.append(
                {
                    "pid": event.data.get("pid"),
                    "started_at": event.recorded_at,
                    "position": event.position,
                    "stopped_at": None,
                    "clean": None,
                }
            )
        elif kind == EventType.NODE_STOPPED:
            self._node_stopped(event)
        elif kind in (EventType.NODE_PAUSED, EventType.NODE_RESUMED):
            self.paused = kind == EventType.NODE_PAUSED

    def apply_all(self, events: Iterable[RecordedEvent]) -> NodeProjection:
        for event in events:
            self.apply(event)
        return self

    # --- patches and the files they change ------------------------------------------------
    def _patch(self, event: RecordedEvent) -> None:
        pid = event.stream.removeprefix("patch-")
        view = fold_patch(self.patches.get(pid), event)
        self.patches[pid] = view
        workspace = view.workspace
        source = f"patch:{pid}"
        changes = event.data.get("changes", ())
        if event.type in (EventType.PATCH_APPLIED, EventType.PATCH_ROLLED_BACK):
            # Both carry the per-path hashes of their own transaction.
            self._set_files(workspace, changes, "after_sha256", event, source)
        elif event.type == EventType.PATCH_RECOVERED and event.data.get("outcome") == "applied":
            # A completed interrupted transaction; its `changes` are the patch's own, so a
            # rollback ends at their before side.
            key = "after_sha256" if event.data.get("kind") == "apply" else "before_sha256"
            self._set_files(workspace, changes, key, event, source)

    def _set_files(
        self, workspace: str, changes: Iterable[Any], key: str, event: RecordedEvent, source: str
    ) -> None:
        files = self.files.setdefault(workspace, {})
        for change in changes:
            sha = change.get(key)
            if sha is None:
                files.pop(change["path"], None)
            else:
                files[change["path"]] = FileState(sha, event.position, source)

    def _files_changed(self, event: RecordedEvent) -> None:
        workspace = event.stream.removeprefix("workspace-")
        files = self.files.setdefault(workspace, {})
        source = str(event.data.get("source", "external"))
        for change in event.data.get("paths", ()):
            if change.get("kind") == "deleted" or change.get("sha256") is None:
                files.pop(change["path"], None)
            else:
                files[change["path"]] = FileState(change["sha256"], event.position, source)

    def _node_stopped(self, event: RecordedEvent) -> None:
        clean = bool(event.data.get("clean", False))
        if (
            self.runs
            and self.runs[-1]["stopped_at"] is None
            and (clean or event.data.get("pid") == self.runs[-1]["pid"])
        ):
            self.runs[-1].update(stopped_at=event.recorded_at, clean=clean)

    # --- questions ---------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for view in self.patches.values():
            by_status[view.public_status] = by_status.get(view.public_status, 0) + 1
        return {
            "position": self.position,
            "patches": by_status,
            "files": {ws: len(files) for ws, files in self.files.items()},
            "actors": {
                n: {"state": a.state, "restarts": a.restarts}
                for n, a in sorted(self.actors.items())
            },
            "tunnels": {n: {"up": t.up, "url": t.url} for n, t in sorted(self.tunnels.items())},
            "services": {
                n: {"up": s.up, "detail": s.detail} for n, s in sorted(self.services.items())
            },
            "notifications": dict(self.notifications),
            "runs": len(self.runs),
            "unclean_runs": sum(1 for r in self.runs if r["clean"] is False),
            "paused": self.paused,
        }


def _evolve_actor(view: ActorView, event: RecordedEvent) -> ActorView:
    d, kind = event.data, event.type
    view = replace(view, last_position=event.position)
    if kind == "ActorFailed":
        return replace(
            view,
            failures=view.failures + 1,
            last_error=f"{d.get('error_type')}: {d.get('message')}",
        )
    if kind == "ActorRestarting":
        return replace(view, state="backoff", restarts=view.restarts + 1)
    if kind == "ActorStarted":
        return replace(view, state="running")
    if kind == "ActorStarting":
        return replace(view, state="starting")
    if kind == "ActorStopped":
        return replace(view, state="stopped")
    if kind == "ActorFatal":
        return replace(view, state="fatal")
    return view


def _evolve_link(view: LinkView, event: RecordedEvent) -> LinkView:
    d = event.data
    up = event.type in (EventType.TUNNEL_UP, EventType.SERVICE_STARTED)
    detail = d.get("reason") or d.get("stderr_tail") or d.get("exit_code")
    return replace(
        view,
        up=up,
        url=d.get("url", view.url),
        detail=None if detail is None else str(detail),
        transitions=view.transitions + (1 if up != view.up else 0),
        since=event.recorded_at if up != view.up else view.since,
    )
