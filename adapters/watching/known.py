"""The watcher's last known state: sha256 per watched path, and the net change a new reading is.

Only the watcher's flusher thread writes it; the lock is there so that other threads can take
a consistent copy at any time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from adapters.watching.model import Change


class KnownState:
    def __init__(self, initial: Mapping[str, str] | None = None) -> None:
        self._sha: dict[str, str] = dict(initial or {})
        # Stat signatures of files hashed by this process: a rescan skips re-hashing a file
        # whose signature is unchanged. Empty for a state restored from events.
        self._sig: dict[str, int] = {}
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self._sha)

    def __len__(self) -> int:
        return len(self._sha)

    def get(self, rel: str) -> str | None:
        return self._sha.get(rel)

    def unchanged_since_hashed(self, rel: str, sig: int | None) -> bool:
        return sig is not None and self._sig.get(rel) == sig

    def record(self, rel: str, sha: str | None, sig: int | None) -> Change | None:
        """Store what `rel` holds now; return the net change from the last known state."""
        with self._lock:
            old = self._sha.get(rel)
            if sha is None:
                self._sha.pop(rel, None)
                self._sig.pop(rel, None)
            else:
                self._sha[rel] = sha
                if sig is None:
                    self._sig.pop(rel, None)
                else:
                    self._sig[rel] = sig
        if old == sha:
            return None
        if old is None:
            return Change(rel, "created", sha)
        return Change(rel, "deleted", None) if sha is None else Change(rel, "modified", sha)

    def paths_under(self, dirs: Iterable[str]) -> list[str]:
        """Known paths inside any of `dirs` (one pass over the state, however many dirs)."""
        prefixes = set(dirs)
        if not prefixes:
            return []
        found = []
        for rel in list(self._sha):
            head = rel
            while "/" in head:
                head = head.rpartition("/")[0]
                if head in prefixes:
                    found.append(rel)
                    break
        return found

    def missing_from(self, seen: set[str]) -> list[str]:
        return [rel for rel in list(self._sha) if rel not in seen]
