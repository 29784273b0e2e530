"""Dashboard sessions that can be ended one at a time or all at once.

A sign-in (`GET /dashboard?token=`) makes a random session id, which is the cookie; only its
sha256 is kept, with its expiry, in `<state>/sessions` (0600, rewritten atomically on every
change), so a restarted node still knows its sessions and a copy of that file signs nobody
in. `DELETE /dashboard/session` ends the caller's session (sign out), `POST /sessions/revoke`
(the node token) ends every one, as `ghost sessions revoke` does. Each sign-in has a cookie of
its own, so ending one never means changing the token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from adapters.durable import atomic_write

log = logging.getLogger("ghost.web.sessions")

SESSION_TTL_S = 30 * 24 * 3600.0
MAX_SESSIONS = 1000  # the oldest are ended past this: sign-ins cannot grow the file forever


class SessionStore:
    def __init__(
        self,
        path: Path | None = None,
        ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = path
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._expires: dict[str, float] = {}  # sha256 hex of the session id -> expiry
        if path is not None:
            self._expires = _load(path)

    def __len__(self) -> int:
        with self._lock:
            return len(self._expires)

    def create(self) -> str:
        """A new session id (the cookie's value)."""
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._prune()
            while len(self._expires) >= MAX_SESSIONS:
                oldest = min(self._expires, key=self._expires.__getitem__)
                del self._expires[oldest]
            self._expires[_digest(session)] = self._clock() + self._ttl_s
            self._save()
        return session

    def valid(self, session: str) -> bool:
        with self._lock:
            expires = self._expires.get(_digest(session))
        return expires is not None and expires > self._clock()

    def revoke(self, session: str) -> bool:
        with self._lock:
            found = self._expires.pop(_digest(session), None) is not None
            if found:
                self._save()
        return found

    def revoke_all(self) -> int:
        with self._lock:
            count = len(self._expires)
            self._expires.clear()
            self._save()
        return count

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def _prune(self) -> None:
        now = self._clock()
        for digest in [d for d, e in self._expires.items() if e <= now]:
            del self._expires[digest]

    def _save(self) -> None:
        if self._path is None:
            return
        data = json.dumps({"version": 1, "sessions": self._expires}, sort_keys=True)
        try:
            atomic_write(self._path, data.encode())
        except OSError as exc:  # the session works in this run; the next one will not know it
            log.error("cannot save the dashboard sessions to %s: %s", self._path, exc)


def _digest(session: str) -> str:
    return hashlib.sha256(session.encode("utf-8", "surrogateescape")).hexdigest()


def _load(path: Path) -> dict[str, float]:
    try:
        raw = json.loads(path.read_bytes())
        sessions = raw["sessions"]
        return {str(d): float(e) for d, e in sessions.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # Unreadable: nobody stays signed in (they sign in again), nobody is let in wrongly.
        log.warning("dashboard sessions in %s unreadable (%s): starting with none", path, exc)
        return {}
