"""The node's state as a projection of its events: patches, files per workspace, actors,
tunnels, services, notifications, and the node's runs.

Each entity evolves by a pure function (`adapters/ledger/projection.py` for patches, the `_evolve_*`
functions here) from its previous view and one event. `NodeProjection` is the only mutable
part: the dictionaries that hold the current view of every entity, and the position it has
folded up to. The node keeps one live (fed by a subscription), the CLI builds one from
scratch; both fold the same events with the same functions, so they agree by construction.

One fold for both: `apply_rows` takes events as rows (position, stream, type, recorded time,
data), dispatches by type to the fold functions below, and folds the patches it touches into
mutable `PatchState`s that it freezes into views once, at the end. `apply(event)` is a batch
of one RecordedEvent; a rebuild (replay/reading.py) is one batch of a million raw store rows
(eventstore/rows.py), read only for the types folded here (FOLDED_TYPES, plus Actor* types),
with recorded times left as the stored integer until a fold keeps one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple, cast

from adapters.ledger.projection import (
    PATCH_EVENT_TYPES,
    Instant,
    PatchState,
    PatchView,
    step,
    to_datetime,
)
from eventstore.catalogue import EventType
from eventstore.events import RecordedEvent

# What `NodeProjection.apply_rows` folds: position, stream, type, recorded time, data.
Row = tuple[int, str, str, Instant, Mapping[str, Any]]

# Besides the types in FOLDED_TYPES, every type with this prefix on an `actor-` stream.
ACTOR_TYPE_PREFIX = "Actor"


class FileState(NamedTuple):
    """A NamedTuple (immutable, cheap to build: a rebuild makes one per path per event)."""

    sha256: str
    position: int  # the last event that touched the file
    source: str  # external | patch:<id> | rescan


# FileState(sha256, position, source) without the Python-level __new__ of a NamedTuple: the
# fold's most frequent constructor.
_file_state = cast(Callable[[type[FileState], tuple[str, int, str]], FileState], tuple.__new__)


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

    def apply(self, event: RecordedEvent) -> None:
        self.apply_rows(
            ((event.position, event.stream, event.type, event.recorded_at, event.data),)
        )

    def apply_all(self, events: Iterable[RecordedEvent]) -> NodeProjection:
        return self.apply_rows(
            (e.position, e.stream, e.type, e.recorded_at, e.data) for e in events
        )

    def apply_rows(self, rows: Iterable[Row]) -> NodeProjection:
        """Fold events given as rows, in position order: the one fold behind `apply` (one
        live event), `apply_all` and a rebuild from raw store rows (replay/reading.py).
        Events at or before `position` are ignored (already folded: replays from any split
        point give the same state). The patches these rows touch are folded into mutable
        PatchStates (adapters/ledger/projection.py `step`) and frozen into their views once, at
        the end (also if a row fails)."""
        states: dict[str, PatchState] = {}  # by stream
        patch_effects, folds, other = _PATCH_EFFECTS, _FOLDS, _NOT_A_PATCH_TYPE
        last = self.position
        try:
            for position, stream, kind, at, d in rows:
                if position <= last:
                    continue
                last = position
                effect = patch_effects.get(kind, other)
                if effect is not other:
                    if stream.startswith("patch-"):
                        state = states.get(stream)
                        if state is None:
                            state = states[stream] = self._thaw(stream, d)
                        step(state, position, kind, at, d)
                        if effect is not None:
                            effect(self, state, position, stream, d)
                    continue
                fold = folds.get(kind)
                if fold is not None:
                    fold(self, position, stream, kind, at, d)
                elif kind.startswith(ACTOR_TYPE_PREFIX) and stream.startswith("actor-"):
                    _actor(self, position, stream, kind, at, d)
        finally:
            self.position = last
            patches = self.patches
            for stream, state in states.items():
                patches[stream[6:]] = state.freeze()
        return self

    def _thaw(self, stream: str, d: Mapping[str, Any]) -> PatchState:
        view = self.patches.get(stream[6:])
        return PatchState.start(stream, d) if view is None else PatchState(view)

    def advance(self, position: int) -> None:
        """Every event up to `position` has been seen: a rebuild that read only the types it
        folds (replay/reading.py) is still at the store's position, as a full fold would be."""
        self.position = max(self.position, position)

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


# --- the folds, by event type -----------------------------------------------------------------
# Each takes the projection and the row's fields. Patch events go through
# adapters/ledger/projection.py (`step`), then, for those that move files, an effect on the
# projection's files.
_Fold = Callable[[NodeProjection, int, str, str, Instant, Mapping[str, Any]], None]
_Effect = Callable[[NodeProjection, PatchState, int, str, Mapping[str, Any]], None]


def _files_of_transaction(
    p: NodeProjection, state: PatchState, position: int, stream: str, d: Mapping[str, Any]
) -> None:
    """PatchApplied and PatchRolledBack: both carry the per-path hashes of their own
    transaction."""
    _set_files(p, state.workspace, d.get("changes", ()), "after_sha256", position, stream)


def _files_of_recovery(
    p: NodeProjection, state: PatchState, position: int, stream: str, d: Mapping[str, Any]
) -> None:
    """A completed interrupted transaction; its `changes` are the patch's own, so a rollback
    ends at their before side."""
    if d.get("outcome") == "applied":
        key = "after_sha256" if d.get("kind") == "apply" else "before_sha256"
        _set_files(p, state.workspace, d.get("changes", ()), key, position, stream)


def _set_files(
    p: NodeProjection, workspace: str, changes: Iterable[Any], key: str, position: int, stream: str
) -> None:
    files = p.files.setdefault(workspace, {})
    source = f"patch:{stream[6:]}"
    for change in changes:
        sha = change.get(key)
        if sha is None:
            files.pop(change["path"], None)
        else:
            files[change["path"]] = _file_state(FileState, (sha, position, source))


def _files_changed(
    p: NodeProjection,
    position: int,
    stream: str,
    kind: str,
    at: Instant,
    d: Mapping[str, Any],
) -> None:
    files = p.files.setdefault(stream.removeprefix("workspace-"), {})
    source = str(d.get("source", "external"))
    for change in d.get("paths", ()):
        if change.get("kind") == "deleted" or change.get("sha256") is None:
            files.pop(change["path"], None)
        else:
            files[change["path"]] = _file_state(FileState, (change["sha256"], position, source))


def _actor(
    p: NodeProjection,
    position: int,
    stream: str,
    kind: str,
    at: Instant,
    d: Mapping[str, Any],
) -> None:
    name = str(d.get("actor", stream.removeprefix("actor-")))
    p.actors[name] = _evolve_actor(p.actors.get(name) or ActorView(name), position, kind, d)


def _link(views_of: Callable[[NodeProjection], dict[str, LinkView]], prefix: str) -> _Fold:
    """The fold of a tunnel's or a service's events (they evolve alike, `_evolve_link`)."""

    def fold(
        p: NodeProjection,
        position: int,
        stream: str,
        kind: str,
        at: Instant,
        d: Mapping[str, Any],
    ) -> None:
        views = views_of(p)
        name = str(d.get("name", stream.removeprefix(prefix)))
        views[name] = _evolve_link(views.get(name) or LinkView(name), kind, at, d)

    return fold


_tunnel = _link(lambda p: p.tunnels, "tunnel-")
_service = _link(lambda p: p.services, "service-")


def _notification(
    p: NodeProjection,
    position: int,
    stream: str,
    kind: str,
    at: Instant,
    d: Mapping[str, Any],
) -> None:
    p.notifications["sent" if kind == EventType.NOTIFICATION_SENT else "failed"] += 1


def _node_started(
    p: NodeProjection,
    position: int,
    stream: str,
    kind: str,
    at: Instant,
    d: Mapping[str, Any],
) -> None:
    p.runs.append(
        {
            "pid": d.get("pid"),
            "started_at": to_datetime(at),
            "position": position,
            "stopped_at": None,
            "clean": None,
        }
    )


def _node_stopped(
    p: NodeProjection,
    position: int,
    stream: str,
    kind: str,
    at: Instant,
    d: Mapping[str, Any],
) -> None:
    clean = bool(d.get("clean", False))
    runs = p.runs
    if runs and runs[-1]["stopped_at"] is None and (clean or d.get("pid") == runs[-1]["pid"]):
        runs[-1].update(stopped_at=to_datetime(at), clean=clean)


def _paused(
    p: NodeProjection,
    position: int,
    stream: str,
    kind: str,
    at: Instant,
    d: Mapping[str, Any],
) -> None:
    p.paused = kind == EventType.NODE_PAUSED


# Every patch event type (on a patch- stream): its effect on files, if any.
_PATCH_EFFECTS: dict[str, _Effect | None] = {
    **{str(kind): None for kind in PATCH_EVENT_TYPES},
    str(EventType.PATCH_APPLIED): _files_of_transaction,
    str(EventType.PATCH_ROLLED_BACK): _files_of_transaction,
    str(EventType.PATCH_RECOVERED): _files_of_recovery,
}
_NOT_A_PATCH_TYPE: Any = object()

_FOLDS: dict[str, _Fold] = {
    str(EventType.FILES_CHANGED): _files_changed,
    str(EventType.TUNNEL_UP): _tunnel,
    str(EventType.TUNNEL_DOWN): _tunnel,
    str(EventType.SERVICE_STARTED): _service,
    str(EventType.SERVICE_EXITED): _service,
    str(EventType.NOTIFICATION_SENT): _notification,
    str(EventType.NOTIFICATION_FAILED): _notification,
    str(EventType.NODE_STARTED): _node_started,
    str(EventType.NODE_STOPPED): _node_stopped,
    str(EventType.NODE_PAUSED): _paused,
    str(EventType.NODE_RESUMED): _paused,
}

# Every type `NodeProjection` folds, but for ACTOR_TYPE_PREFIX types (on actor- streams): a
# rebuild reads only these from the store.
FOLDED_TYPES = frozenset(_PATCH_EFFECTS) | frozenset(_FOLDS)


def _evolve_actor(view: ActorView, position: int, kind: str, d: Mapping[str, Any]) -> ActorView:
    view = replace(view, last_position=position)
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


def _evolve_link(view: LinkView, kind: str, at: Instant, d: Mapping[str, Any]) -> LinkView:
    up = kind in (EventType.TUNNEL_UP, EventType.SERVICE_STARTED)
    detail = d.get("reason") or d.get("stderr_tail") or d.get("exit_code")
    return replace(
        view,
        up=up,
        url=d.get("url", view.url),
        detail=None if detail is None else str(detail),
        transitions=view.transitions + (1 if up != view.up else 0),
        since=to_datetime(at) if up != view.up else view.since,
    )
