"""Every patch's view, kept current by folding only the patch events appended since the last
look (replay/patches.py's pure fold), so GET /patches does not replay the store each time.
Called from the thread pool; a lock keeps two refreshes from folding the same events twice."""

from __future__ import annotations

import threading
from typing import Any

from eventstore.protocol import EventStore
from replay.patches import PATCH_EVENT_TYPES, PatchView, fold

PATCH_TYPES = sorted(PATCH_EVENT_TYPES)


class PatchIndex:
    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._views: dict[str, PatchView] = {}
        self._position = 0
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, PatchView]:
        with self._lock:
            while True:
                page = self._store.read_all(after=self._position, limit=5000, types=PATCH_TYPES)
                for event in page:
                    if event.stream.startswith("patch-"):
                        pid = event.stream.removeprefix("patch-")
                        self._views[pid] = fold(self._views.get(pid), event)
                if page:
                    self._position = page[-1].position
                if len(page) < 5000:
                    return dict(self._views)

    def find_client_id(self, client_id: str) -> str | None:
        for pid, view in self.refresh().items():
            if view.client_id == client_id:
                return pid
        return None


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
