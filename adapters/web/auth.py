"""Who may call (SPEC §4): a bearer token, or an HMAC signature when a secret is set, or the
dashboard's cookie (with a CSRF header on POSTs).

A signature covers the whole request, not only its body: `sign()` is HMAC-SHA256 over
"v1\n<timestamp>\n<nonce>\n<METHOD>\n<request target as sent: path?query>\n<raw body>".
A signature for `GET /tree` is no use on `POST /pause`, and the caller's nonce
(X-Ghost-Nonce, fresh per request) keeps two identical requests in one second apart.

Every secret comparison is hmac.compare_digest (constant time). Nothing here logs a secret:
failures carry only a reason word for the log and a generic message for the caller.

Replays of signed requests are refused by `SignatureMemory`, which the node persists in its
state directory (`SignatureJournal`, an append-only file) so that a restarted node still knows
what the previous runs accepted (RELIABILITY.md O1)."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

from adapters.web.errors import ApiError
from adapters.web.http import Principal
from adapters.web.sessions import SessionStore
from adapters.web.signature_journal import SignatureJournal, signature_digest

log = logging.getLogger("ghost.web.auth")

WINDOW_S = 300.0
MAX_REMEMBERED_SIGNATURES = 100_000
COOKIE_NAME = "ghost_session"
CSRF_HEADER = "x-ghost-csrf"


class SignatureMemory:
    """Signatures that could still be accepted, so a captured request cannot be replayed.

    Each is kept until its own timestamp leaves the window (timestamp + window, by the node's
    clock), not for one window from when it was seen: a request dated ahead of the node's clock
    (the caller's clock runs fast, or the node's steps forward) stays acceptable for up to two
    windows after it was seen, and must be remembered for all of that time. Keyed by
    `signature_digest`.

    With a journal (`persistent`), every accepted signature is written to it before `remember`
    returns, and the next run loads the unexpired ones: a replay is refused across restarts too,
    whatever the clock did in between. `bounds` are then the previous runs' latest start and
    highest accepted timestamp (for the signed-before-start rule, see `Authenticator`).

    Bounded: when full of still-fresh signatures, new signed requests are refused (503) rather
    than forgetting one that could then be replayed (fail closed). So is a signature that cannot
    be written to the journal: it is not accepted, as the next run could not know it."""

    def __init__(
        self,
        window_s: float,
        capacity: int = MAX_REMEMBERED_SIGNATURES,
        journal: SignatureJournal | None = None,
    ) -> None:
        self._window_s = window_s
        self._capacity = capacity
        self._expires: dict[str, float] = {}  # digest -> when its timestamp leaves the window
        self._heap: list[tuple[float, str]] = []  # the same, soonest first
        self._lock = threading.Lock()
        self.journal = journal
        self.bounds: tuple[float, ...] = ()
        if journal is not None:
            journal.snapshot = self._snapshot

    def _snapshot(self) -> dict[str, float]:
        """What a compaction of the journal keeps, consistent with the file: every record in
        the file is in the memory (remember() appends and inserts under the lock), and what is
        appended after this is collected by the journal for the new file."""
        with self._lock:
            if self.journal is not None:
                self.journal.begin_compaction()
            return dict(self._expires)

    @classmethod
    def persistent(
        cls,
        path: Path,
        window_s: float,
        started: float,
        capacity: int = MAX_REMEMBERED_SIGNATURES,
        now: float | None = None,
    ) -> SignatureMemory:
        """The memory of every run on `path`: loads the unexpired signatures, then journals."""
        now = time.time() if now is None else now
        journal, entries, bounds = SignatureJournal.load(path, window_s, started, now)
        memory = cls(window_s, capacity, journal)
        memory._expires = entries
        memory._heap = [(expires, digest) for digest, expires in entries.items()]
        heapq.heapify(memory._heap)
        memory.bounds = bounds
        return memory

    def __len__(self) -> int:
        return len(self._expires)

    def __contains__(self, signature: object) -> bool:
        return isinstance(signature, str) and signature_digest(signature) in self._expires

    def remember(self, signature: str, now: float, timestamp: float | None = None) -> None:
        """Record `signature` (signed at `timestamp`, default `now`); ApiError 401 if it is
        remembered already, 503 if it cannot be remembered (full, or the journal failed)."""
        # Whole seconds up (timestamps are integers anyway): what the journal can write.
        expires = float(math.ceil((now if timestamp is None else timestamp) + self._window_s))
        digest = signature_digest(signature)
        with self._lock:
            while self._heap and self._heap[0][0] < now:
                _, old = heapq.heappop(self._heap)
                self._expires.pop(old, None)
            if digest in self._expires:
                raise unauthorized("replayed")
            if len(self._expires) >= self._capacity:
                raise ApiError(503, "busy", "too many signed requests in the window; retry later")
            if self.journal is not None:
                try:
                    self.journal.append(digest, expires, self._window_s, len(self._expires))
                except OSError as exc:
                    log.error("cannot journal an accepted signature: %s", exc)
                    raise ApiError(
                        503, "busy", "cannot record the signature (state directory); retry later"
                    ) from None
            self._expires[digest] = expires
            heapq.heappush(self._heap, (expires, digest))

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()


def unauthorized(reason: str) -> ApiError:
    # The reason word (missing, bad_token, expired_timestamp, replayed...) tells an honest
    # caller what to fix and reveals nothing about the secret.
    return ApiError(
        401,
        "unauthorized",
        "send 'Authorization: Bearer <token>' (or X-Ghost-Timestamp, X-Ghost-Nonce and "
        "X-Ghost-Signature)",
        {"reason": reason},
        headers={"WWW-Authenticate": 'Bearer realm="ghost-node"'},
    )


class Authenticator:
    """`signatures` outlives this object when given: the node keeps one per process (a
    restarted web actor still knows what it accepted), loaded from and journaled to its state
    directory (a restarted node knows what the previous runs accepted; RELIABILITY.md O1).

    The signed-before-start rule is a second line behind that memory, for what it may lack
    (the journal's last ~50 ms after a power loss, a journal that could not be read): a
    signature dated before a *bound* is refused once the node's clock has reached that bound.
    The bounds are this run's start (`not_before`) and, from the journal, the previous runs'
    latest start and highest accepted timestamp: a clock stepped back between two runs no
    longer makes the previous run's signatures look "after the start". A caller whose clock
    runs behind the node's by d seconds is refused for the first d seconds after a start (or
    after the clock passes a bound); it signs again with a fresh timestamp.

    A bound the clock has not reached yet (it stepped back: the node's own time is "before"
    the start or before a previous run's start) is not applied. Such a request is stale by the
    bounds but fresh by the clock, and is handled by the 300 s window and the memory alone:
    refusing it would lock out, for as long as the step (an hour, say), every caller that signs
    with the node's own time, and the memory is what really tells a replay; a signature the
    previous run accepted is in the journal whatever the clocks say, since its expiry is in
    timestamp terms (timestamp + window), not in the clock's. What is left: a signature lost
    from the journal by a power loss, replayed on a clock stepped back across the reboot."""

    def __init__(
        self,
        token: str,
        hmac_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        window_s: float = WINDOW_S,
        signatures: SignatureMemory | None = None,
        not_before: float | None = None,
        sessions: SessionStore | None = None,
    ) -> None:
        self._token = token.encode()
        self._secret = hmac_secret.encode() if hmac_secret else None
        self._clock = clock
        self._window_s = window_s
        self._seen = signatures if signatures is not None else SignatureMemory(window_s)
        bounds = (*([] if not_before is None else [not_before]), *self._seen.bounds)
        self._bounds = tuple(sorted(set(bounds)))
        self.sessions = sessions if sessions is not None else SessionStore()
        # Derived, so the page never holds the token itself; CSRF needs only a value that
        # another origin cannot read, the session cookie is what gets revoked.
        self._csrf = self._derive(b"dashboard-csrf")

    @property
    def hmac_enabled(self) -> bool:
        return self._secret is not None

    def set_token(self, token: str) -> None:
        """From now on `token` is the node token; the old one is refused (and the CSRF value
        derived from it changes with it)."""
        self._token = token.encode()
        self._csrf = self._derive(b"dashboard-csrf")

    @property
    def csrf_token(self) -> str:
        """What the dashboard page embeds and sends back in X-Ghost-CSRF."""
        return self._csrf

    def _derive(self, label: bytes) -> str:
        return hmac.new(self._token, label, hashlib.sha256).hexdigest()

    def authenticate(
        self,
        method: str,
        headers: Mapping[str, str],
        cookies: Mapping[str, str],
        body: bytes,
        target: str = "/",
    ) -> Principal:
        """The caller, or ApiError 401/403. `headers` have lower-case names; `target` is the
        request target exactly as sent (path and query), which a signature covers."""
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise unauthorized("malformed_authorization")
            if not hmac.compare_digest(value.strip().encode(), self._token):
                raise unauthorized("bad_token")
            return Principal("bearer")
        if "x-ghost-signature" in headers or "x-ghost-timestamp" in headers:
            return self._check_signature(method, target, headers, body)
        session = cookies.get(COOKIE_NAME)
        if session is not None:
            if not self.sessions.valid(session):
                raise unauthorized("bad_cookie")
            if method not in ("GET", "HEAD"):
                csrf = headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(csrf.encode(), self._csrf.encode()):
                    raise ApiError(
                        403, "forbidden", "missing or wrong X-Ghost-CSRF header", {"reason": "csrf"}
                    )
            return Principal("cookie")
        raise unauthorized("missing")

    def _check_signature(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Principal:
        if self._secret is None:
            raise unauthorized("hmac_disabled")
        timestamp = headers.get("x-ghost-timestamp", "")
        signature = headers.get("x-ghost-signature", "")
        nonce = headers.get("x-ghost-nonce", "")
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise unauthorized("malformed_timestamp")
        if not _NONCE.fullmatch(nonce):
            raise unauthorized("malformed_nonce")
        now = self._clock()
        if abs(now - int(timestamp)) > self._window_s:
            raise unauthorized("expired_timestamp")
        for bound in self._bounds:
            if int(timestamp) < int(bound) and now >= bound:
                # Possibly accepted by a previous run, and possibly missing from the memory:
                # never again. (Not while the clock is behind the bound: see the class doc.)
                raise unauthorized("signed_before_start")
        scheme, _, hexdigest = signature.partition("=")
        if scheme != "sha256" or not hexdigest:
            raise unauthorized("malformed_signature")
        expected = sign(self._secret, timestamp, body, method=method, target=target, nonce=nonce)
        if not hmac.compare_digest(hexdigest.lower().encode(), expected.encode()):
            raise unauthorized("bad_signature")
        self._seen.remember(expected, now, int(timestamp))
        return Principal("hmac")

    def login_with_query_token(self, token: str) -> str:
        """The Set-Cookie value for a dashboard visit with a valid `?token=`; 401 otherwise."""
        if not hmac.compare_digest(token.encode(), self._token):
            raise unauthorized("bad_token")
        session = self.sessions.create()
        return (
            f"{COOKIE_NAME}={quote(session)}; HttpOnly; SameSite=Strict; Path=/; "
            f"Max-Age={int(self.sessions.ttl_s)}"
        )


_NONCE = re.compile(r"[A-Za-z0-9._~-]{8,128}")


def sign(
    secret: bytes,
    timestamp: str,
    body: bytes,
    *,
    method: str,
    target: str,
    nonce: str,
) -> str:
    """hex HMAC-SHA256 of the v1 string (module doc): what a caller puts after `sha256=`."""
    head = f"v1\n{timestamp}\n{nonce}\n{method.upper()}\n{target}\n".encode("latin-1")
    return hmac.new(secret, head + body, hashlib.sha256).hexdigest()


def signature_headers(
    secret: bytes,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """What a caller sends to sign a request (for clients and tests): a fresh nonce unless
    one is given."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = secrets.token_urlsafe(16) if nonce is None else nonce
    digest = sign(secret, ts, body, method=method, target=target, nonce=nonce)
    return {
        "X-Ghost-Timestamp": ts,
        "X-Ghost-Nonce": nonce,
        "X-Ghost-Signature": f"sha256={digest}",
    }
