"""One workspace's patch events: appending them, the live views folded from them, and the
answers built from those views.

Events can be held (`defer=True`) and appended with the patch's next event, in one commit: a
patch's PatchReceived goes to disk with whatever comes next, so an apply makes one durable
commit. Views of recent patches are kept (a bounded LRU, so memory stays flat: a view costs
~3.5 KB); any other is folded again from its own stream.
Every client id is kept: idempotency needs them all."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.ledger.projection import PATCH_EVENT_TYPES, PatchView, fold, tests_of
from adapters.ledger.records import (
    FileOutcome,
    FlowError,
    PatchCommand,
    PatchError,
    PatchOutcome,
    TestsOutcome,
    command_from_body,
)
from eventstore.catalogue import EventType, patch_stream
from eventstore.events import NewEvent, RecordedEvent
from eventstore.protocol import EventStore

# Patch views kept in memory (most recently used); the rest are read again from the store.
VIEW_CACHE_SIZE = 256


@dataclass(slots=True)
class _Held:
    """Events of one patch waiting to be appended with its next one (one commit)."""

    events: list[NewEvent] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)


class PatchLedger:
    def __init__(self, store: EventStore, workspace: str) -> None:
        self.store = store
        self.workspace = workspace
        self.patches: OrderedDict[str, PatchView] = OrderedDict()
        self.by_client_id: dict[str, str] = {}
        self._held: dict[str, _Held] = {}
        self._pinned = False  # while loading: every view stays until recovery is done

    # --- loading -----------------------------------------------------------------------------
    def load(self) -> PatchView | None:
        """Fold this workspace's patches from the store, every one kept until `unpin()`;
        returns the latest (the one a crash can have left leftovers of)."""
        views: dict[str, PatchView] = {}
        for event in self.store.read_all(types=sorted(PATCH_EVENT_TYPES)):
            pid = event.stream.removeprefix("patch-")
            view = views.get(pid)
            if view is None and event.data.get("workspace") != self.workspace:
                continue
            views[pid] = view = fold(view, event)
            if view.client_id is not None:
                self.by_client_id[view.client_id] = pid
        latest = max(views.values(), key=lambda v: v.last_position, default=None)
        self.patches = OrderedDict(views)
        self._pinned = True
        return latest

    def unpin(self) -> None:
        self._pinned = False
        self._trim()

    # --- appending ---------------------------------------------------------------------------
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
        """Append one event of the patch (with what was held before it, in the same commit)
        and fold it into the live view. `defer`: hold it for the next one."""
        held = self._held.setdefault(pid, _Held())
        held.events.append(NewEvent(kind, data, meta or {}))
        held.blobs.extend(blobs)
        if not defer:
            self._append(pid, durable)

    def flush(self, pid: str) -> None:
        """Append what is still held for the patch (a bug escaped before its next event)."""
        if pid in self._held:
            self._append(pid, durable=True)

    def _append(self, pid: str, durable: bool) -> None:
        held = self._held.pop(pid)
        # The view before these events, read before the append (a view loaded after it would
        # already hold them). A new patch has none.
        new = held.events[0].type == EventType.PATCH_RECEIVED
        view = None if new else self.lookup(pid)
        stream = patch_stream(pid)
        positions = self.store.append(stream, held.events, blobs=held.blobs, durable=durable)
        now = datetime.now(UTC)
        for position, event in zip(positions, held.events, strict=True):
            # Keep the live view exactly what a replay would fold.
            recorded = RecordedEvent(
                position,
                event.event_id,
                stream,
                0,
                str(event.type),
                now,
                event.data,
                event.meta,
                "",
            )
            view = fold(view, recorded)
        assert view is not None
        self._remember(pid, view)
        if view.client_id is not None:
            self.by_client_id[view.client_id] = pid

    # --- reading -----------------------------------------------------------------------------
    def lookup(self, pid: str) -> PatchView | None:
        """This workspace's patch: from the cache, else folded from its own stream."""
        view = self.patches.get(pid)
        if view is not None:
            self.patches.move_to_end(pid)
            return view
        for event in self.store.read_stream(patch_stream(pid)):
            view = fold(view, event)
        if view is None or view.workspace != self.workspace:
            return None
        self._remember(pid, view)
        return view

    def view(self, pid: str) -> PatchView:
        view = self.lookup(pid)
        if view is None:
            raise FlowError("not_found", f"no patch {pid} in workspace {self.workspace}")
        return view

    def command_of(self, view: PatchView) -> PatchCommand:
        """The command again, from its stored body (approval and resume can be much later)."""
        assert view.body_blob is not None
        raw = json.loads(self.store.get_blob(view.body_blob))
        return command_from_body(raw, self.workspace)

    def blob_or_none(self, sha256: str | None) -> bytes | None:
        return None if sha256 is None else self.store.get_blob(sha256)

    def outcome(self, pid: str, diff: str | None = None) -> PatchOutcome:
        """The answer about the patch, from its view (`diff`: when the caller has it)."""
        view = self.view(pid)
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
        return PatchOutcome(
            pid, view.public_status, files, diff or "", tests, view.last_position, error
        )

    # --- the cache ---------------------------------------------------------------------------
    def _remember(self, pid: str, view: PatchView) -> None:
        self.patches[pid] = view
        self.patches.move_to_end(pid)
        self._trim()

    def _trim(self) -> None:
        while len(self.patches) > VIEW_CACHE_SIZE and not self._pinned:
            self.patches.popitem(last=False)
