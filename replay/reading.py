"""Read-only questions over a state directory's event store: what happened (audit, show),
what the state was at any point (replay --until), whether it is intact (replay --verify)."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.ledger.projection import PatchView, fold
from eventstore import RecordedEvent, SQLiteEventStore
from eventstore.catalogue import EventType, patch_stream
from eventstore.rows import RowScan, to_us
from replay.snapshots import SnapshotDir
from replay.state import ACTOR_TYPE_PREFIX, FOLDED_TYPES, NodeProjection

# Positions a replay to the end must fold before it leaves a snapshot for the next one: a
# rebuild of fewer takes well under a second.
SNAPSHOT_EVERY = 100_000


def patch_view(store: SQLiteEventStore, pid: str) -> tuple[PatchView | None, list[RecordedEvent]]:
    events = store.read_stream(patch_stream(pid))
    view = None
    for event in events:
        view = fold(view, event)
    return view, events


def first_position_at(store: SQLiteEventStore, when: datetime) -> int:
    """The first position recorded at or after `when`. recorded_at never decreases along
    positions (the writer keeps it monotonic), so this is a binary search, not a scan."""
    lo, hi = 1, store.last_position() + 1
    while lo < hi:
        mid = (lo + hi) // 2
        [event] = store.read_all(after=mid - 1, limit=1)
        if event.recorded_at < when:
            lo = mid + 1
        else:
            hi = mid
    return lo


def audit_rows(
    store: SQLiteEventStore, since: datetime | None = None, patch: str | None = None
) -> list[dict[str, Any]]:
    """Who sent what, when, what it changed, the tests and the outcome, per patch, oldest
    first."""
    if patch is not None:
        pids = [patch]
    else:
        after = 0 if since is None else first_position_at(store, since) - 1
        received = store.read_all(after=after, types=[EventType.PATCH_RECEIVED])
        pids = [e.stream.removeprefix("patch-") for e in received]
    rows = []
    for pid in pids:
        view, _ = patch_view(store, pid)
        if view is None:
            continue
        rows.append(audit_row(view))
    return rows


def audit_row(view: PatchView) -> dict[str, Any]:
    return {
        "patch_id": view.patch_id,
        "received_at": view.received_at,
        "workspace": view.workspace,
        "author": view.author,
        "description": view.description,
        "format": view.format,
        "files": [f.get("path") for f in view.files],
        "added": sum(int(f.get("added", 0)) for f in view.files),
        "removed": sum(int(f.get("removed", 0)) for f in view.files),
        "tests": None if view.tests is None else view.tests.get("status"),
        "status": view.public_status,
        "error": None if view.error is None else view.error.get("message"),
        "reason": reason_of(view),
        "decisions": list(view.decisions),
    }


def reason_of(view: PatchView) -> str:
    """Why the patch is where it is, in a few words (an audit line's last column)."""
    if view.error is not None:
        return str(view.error.get("message") or view.error.get("code") or "")
    rolled = [d for d in view.decisions if d.get("decision") == "rolled_back"]
    if rolled:
        last = rolled[-1]
        why = "tests failed" if last.get("reason") == "tests_failed" else f"by {last.get('by')}"
        return f"rolled back: {why}" + (" (forced)" if last.get("forced") else "")
    if view.tests is not None and view.tests.get("status") not in (None, "passed", "skipped"):
        return f"tests {view.tests.get('status')}"
    return ""


def parse_until(text: str) -> int | datetime:
    """A position, or an ISO date or time; without a timezone it is this machine's local
    time, as `date` and `git log --until` read it."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"--until takes a position or an ISO time, not {text!r}") from exc
    if when.tzinfo is None:
        when = when.astimezone()  # the local timezone at that date
    return when


def replay(
    store: SQLiteEventStore,
    until: int | datetime | None = None,
    progress: Callable[[int], None] | None = None,
    snapshots: SnapshotDir | None = None,
) -> NodeProjection:
    """Every projection rebuilt from the store, up to position `until` or to the last event
    recorded at or before time `until`.

    The bulk path: raw rows straight from SQLite (eventstore/rows.py), only of the types the
    projection folds (the filter runs in SQL; other payloads are never decoded), folded by
    `NodeProjection.apply_rows` (the same folds as the live `apply`) with the garbage
    collector off (a rebuild allocates millions of objects and frees almost none).

    With `snapshots`, the fold starts from the newest usable snapshot within the bound
    (replay/snapshots.py) instead of from nothing, and a replay to the end that folded at least
    SNAPSHOT_EVERY positions leaves a snapshot for the next one. Without, from scratch."""
    scan = RowScan(
        store,
        types=FOLDED_TYPES,
        type_prefixes=(ACTOR_TYPE_PREFIX,),
        upto=until if isinstance(until, int) else None,
        until_us=to_us(until) if isinstance(until, datetime) else None,
        progress=progress,
    )
    collecting = gc.isenabled()
    gc.disable()
    try:
        projection = NodeProjection()
        end_hash = None
        reads = store.upcasters.fingerprint()
        if snapshots is not None:
            found = snapshots.latest(scan.position, scan.chain_hash_at, reads)
            if found is not None:
                projection = found.projection
                scan.resume_after(found.position)
            end_hash = scan.chain_hash_at(scan.position)
        started_at = projection.position
        # Rows carry recorded_at as the stored integer, which the folds accept (Instant).
        projection.apply_rows(scan)
        projection.advance(scan.position)
        worth_keeping = until is None and projection.position - started_at >= SNAPSHOT_EVERY
        if snapshots is not None and end_hash is not None and worth_keeping:
            snapshots.save(projection, end_hash, reads)  # its layout allocates millions too
    finally:
        scan.close()
        if collecting:
            gc.enable()
    return projection


@dataclass(frozen=True, slots=True)
class Drift:
    workspace: str
    path: str
    expected_sha256: str
    actual_sha256: str | None
    last_position: int
    source: str


def workspace_paths(store: SQLiteEventStore) -> dict[str, Path]:
    """Workspace name -> path, as the latest NodeStarted recorded them."""
    started = store.read_all(types=[EventType.NODE_STARTED])
    if not started:
        return {}
    return {w["name"]: Path(w["path"]) for w in started[-1].data.get("workspaces", ())}


def drift(projection: NodeProjection, paths: dict[str, Path]) -> list[Drift]:
    """Files whose content on disk differs from what the events say."""
    found = []
    for workspace, files in sorted(projection.files.items()):
        root = paths.get(workspace)
        if root is None:
            continue
        for rel, state in sorted(files.items()):
            target = root / rel
            try:
                actual: str | None = hashlib.sha256(target.read_bytes()).hexdigest()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                actual = None
            if actual != state.sha256:
                found.append(
                    Drift(workspace, rel, state.sha256, actual, state.position, state.source)
                )
    return found
