"""Which patches there are, for GET /patches and `/ghost patches`, without replaying the store
on every request and without keeping every patch's view in memory.

The index keeps per patch only what listing filters and sorts on (status, workspace, first
position), brought current by folding just the patch events appended since the last look
(adapters/ledger/projection.py's pure fold, so statuses are the projection's). The views of the page
actually shown are then folded from their own streams (an indexed read per patch). Called
from the thread pool; a lock keeps two refreshes from folding the same events twice."""

from __future__ import annotations

import sys
import threading
from typing import Any, NamedTuple, cast

from adapters.ledger.projection import PATCH_EVENT_TYPES, PatchView, fold
from adapters.ledger.status import PUBLIC_WORD, PatchStatus
from eventstore.catalogue import patch_stream
from eventstore.events import RecordedEvent
from eventstore.protocol import EventStore

PATCH_TYPES = sorted(PATCH_EVENT_TYPES)
_PAGE = 5000


class Brief(NamedTuple):
    patch_id: str
    status: str  # the SPEC §4 word (public_status)
    workspace: str
    first_position: int


class PatchIndex:
    def __init__(self, store: EventStore) -> None:
        self._store = store
        # The fold needs the previous status (TestsFinished fails only an applied patch), so
        # that is kept too; nothing else of a view survives between refreshes.
        self._briefs: dict[str, tuple[str, str, int]] = {}  # pid -> (status, workspace, first)
        self._position = 0
        self._lock = threading.Lock()

    def refresh(self) -> list[Brief]:
        """Every patch, oldest first."""
        with self._lock:
            while True:
                page = self._store.read_all(after=self._position, limit=_PAGE, types=PATCH_TYPES)
                for event in page:
                    if event.stream.startswith("patch-"):
                        self._fold(event.stream.removeprefix("patch-"), event)
                if page:
                    self._position = page[-1].position
                if len(page) < _PAGE:
                    break
            briefs = [
                Brief(pid, PUBLIC_WORD[status], ws, first)
                for pid, (status, ws, first) in self._briefs.items()
            ]
        briefs.sort(key=lambda b: b.first_position)
        return briefs

    def views(self, briefs: list[Brief]) -> list[PatchView]:
        """The full views of these patches, from their own streams."""
        out = []
        for brief in briefs:
            view = None
            for event in self._store.read_stream(patch_stream(brief.patch_id)):
                view = fold(view, event)
            if view is not None:
                out.append(view)
        return out

    def _fold(self, pid: str, event: RecordedEvent) -> None:
        known = self._briefs.get(pid)
        before = None
        if known is not None:
            status, ws, first = known
            # a PatchStatus value kept as its interned str (no enum lookup per event)
            before = PatchView(pid, ws, cast(PatchStatus, status), first_position=first)
        after = fold(before, event)
        # Interned: thousands of patches share a handful of status and workspace strings.
        self._briefs[pid] = (
            sys.intern(str(after.status)),
            sys.intern(after.workspace),
            after.first_position,
        )


def summary(view: PatchView) -> dict[str, Any]:
    return {
        "patch_id": view.patch_id,
        "status": view.public_status,
        "workspace": view.workspace,
        "description": view.description,
        "author": view.author,
        "format": view.format,
        "dry_run": view.dry_run,
        "client_id": view.client_id,
        "received_at": view.received_at,
        "files": [
            {
                "path": f.get("path"),
                "action": f.get("action"),
                "added": f.get("added"),
                "removed": f.get("removed"),
            }
            for f in view.files
        ],
        "tests": None if view.tests is None else view.tests.get("status"),
        "error": None if view.error is None else view.error.get("code"),
        "position": view.last_position,
    }
