"""Source attribution: writes announced by the patch engine just before it makes them.

A change whose path and resulting sha256 (None for a deletion) match a live expectation is
reported with that expectation's source (e.g. "patch:<id>") and consumes it; anything else is
somebody else's. Matching on the content, not just the path, keeps an editor's save that lands
right after a patch from being credited to the patch. Expectations expire after their TTL, so
a patch that never wrote (aborted transaction) leaves nothing behind for long.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Expected:
    sha256: str | None
    source: str
    expires: float


class Expectations:
    def __init__(self) -> None:
        self._by_path: dict[str, list[_Expected]] = {}
        self._lock = threading.Lock()  # expect() comes from the patch engine's thread

    def add(self, paths_to_sha: Mapping[str, str | None], source: str, expires: float) -> None:
        with self._lock:
            for rel, sha in paths_to_sha.items():
                self._by_path.setdefault(rel, []).append(_Expected(sha, source, expires))

    def claim(self, rel: str, sha256: str | None, now: float) -> str | None:
        """The source expecting exactly this outcome for `rel`, consumed; None if nobody."""
        with self._lock:
            entries = self._by_path.get(rel)
            if not entries:
                return None
            live = [e for e in entries if e.expires > now]
            found = next((e for e in live if e.sha256 == sha256), None)
            if found is not None:
                live.remove(found)
            if live:
                self._by_path[rel] = live
            else:
                del self._by_path[rel]
            return found.source if found is not None else None

    def purge(self, now: float) -> None:
        with self._lock:
            for rel in list(self._by_path):
                live = [e for e in self._by_path[rel] if e.expires > now]
                if live:
                    self._by_path[rel] = live
                else:
                    del self._by_path[rel]

    def __len__(self) -> int:
        with self._lock:
            return sum(map(len, self._by_path.values()))
