"""Who may call (SPEC §4): a bearer token, or an HMAC signature over the raw body when a secret
is set, or the dashboard's cookie (with a CSRF header on POSTs).

Every secret comparison is hmac.compare_digest (constant time). Nothing here logs a secret:
failures carry only a reason word for the log and a generic message for the caller."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import threading
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote

from adapters.web.errors import ApiError
from adapters.web.http import Principal

WINDOW_S = 300.0
MAX_REMEMBERED_SIGNATURES = 100_000
COOKIE_NAME = "ghost_session"
CSRF_HEADER = "x-ghost-csrf"


class SignatureMemory:
    """Signatures that could still be accepted, so a captured request cannot be replayed.

    Each is kept until its own timestamp leaves the window (timestamp + window, by the node's
    clock), not for one window from when it was seen: a request dated ahead of the node's clock
    (the caller's clock runs fast, or the node's steps forward) stays acceptable for up to two
    windows after it was seen, and must be remembered for all of that time.

    Bounded: when full of still-fresh signatures, new signed requests are refused (503) rather
    than forgetting one that could then be replayed (fail closed)."""

    def __init__(self, window_s: float, capacity: int = MAX_REMEMBERED_SIGNATURES) -> None:
        self._window_s = window_s
        self._capacity = capacity
        self._expires: dict[str, float] = {}  # signature -> when its timestamp leaves the window
        self._heap: list[tuple[float, str]] = []  # the same, soonest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expires)

    def remember(self, signature: str, now: float, timestamp: float | None = None) -> None:
        """Record `signature` (signed at `timestamp`, default `now`); ApiError 401 if it is
        remembered already."""
        expires = (now if timestamp is None else timestamp) + self._window_s
        with self._lock:
            while self._heap and self._heap[0][0] < now:
                _, old = heapq.heappop(self._heap)
                del self._expires[old]
            if signature in self._expires:
                raise unauthorized("replayed")
            if len(self._expires) >= self._capacity:
                raise ApiError(503, "busy", "too many signed requests in the window; retry later")
            self._expires[signature] = expires
            heapq.heappush(self._heap, (expires, signature))


def unauthorized(reason: str) -> ApiError:
    # The reason word (missing, bad_token, expired_timestamp, replayed...) tells an honest
    # caller what to fix and reveals nothing about the secret.
    return ApiError(
        401,
        "unauthorized",
        "send 'Authorization: Bearer <token>' (or X-Ghost-Timestamp + X-Ghost-Signature)",
        {"reason": reason},
        headers={"WWW-Authenticate": 'Bearer realm="ghost-node"'},
    )


class Authenticator:
    """`signatures` outlives this object when given (the node keeps one per process, so a
    restarted web actor still knows what it accepted). What a process cannot know is what an
    earlier process accepted: so a signature dated before `not_before` (the node's start) is
    refused. A caller whose clock runs behind the node's by d seconds is refused for the
    first d seconds after a start; it signs again with a fresh timestamp. While the node's
    clock is behind its own start (it stepped back), that rule is off and only the memory
    guards: the one gap left, until the memory is persisted across restarts."""

    def __init__(
        self,
        token: str,
        hmac_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        window_s: float = WINDOW_S,
        signatures: SignatureMemory | None = None,
        not_before: float | None = None,
    ) -> None:
        self._token = token.encode()
        self._secret = hmac_secret.encode() if hmac_secret else None
        self._clock = clock
        self._window_s = window_s
        self._seen = signatures if signatures is not None else SignatureMemory(window_s)
        self._not_before = not_before
        # Derived values, so neither the cookie nor the page ever holds the token itself.
        self._session = self._derive(b"dashboard-session")
        self._csrf = self._derive(b"dashboard-csrf")

    @property
    def hmac_enabled(self) -> bool:
        return self._secret is not None

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
    ) -> Principal:
        """The caller, or ApiError 401/403. `headers` have lower-case names."""
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise unauthorized("malformed_authorization")
            if not hmac.compare_digest(value.strip().encode(), self._token):
                raise unauthorized("bad_token")
            return Principal("bearer")
        if "x-ghost-signature" in headers or "x-ghost-timestamp" in headers:
            return self._check_signature(headers, body)
        session = cookies.get(COOKIE_NAME)
        if session is not None:
            if not hmac.compare_digest(session.encode(), self._session.encode()):
                raise unauthorized("bad_cookie")
            if method not in ("GET", "HEAD"):
                csrf = headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(csrf.encode(), self._csrf.encode()):
                    raise ApiError(
                        403, "forbidden", "missing or wrong X-Ghost-CSRF header", {"reason": "csrf"}
                    )
            return Principal("cookie")
        raise unauthorized("missing")

    def _check_signature(self, headers: Mapping[str, str], body: bytes) -> Principal:
        if self._secret is None:
            raise unauthorized("hmac_disabled")
        timestamp = headers.get("x-ghost-timestamp", "")
        signature = headers.get("x-ghost-signature", "")
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise unauthorized("malformed_timestamp")
        now = self._clock()
        if abs(now - int(timestamp)) > self._window_s:
            raise unauthorized("expired_timestamp")
        if (
            self._not_before is not None
            and int(timestamp) < int(self._not_before)
            and now >= self._not_before
        ):
            # Possibly accepted by the previous process, whose memory is gone: never again.
            # (Not while the clock is behind the start: it stepped back, and the node's own
            # time is then "before its start"; its callers must still get in.)
            raise unauthorized("signed_before_start")
        scheme, _, hexdigest = signature.partition("=")
        if scheme != "sha256" or not hexdigest:
            raise unauthorized("malformed_signature")
        expected = sign(self._secret, timestamp, body)
        if not hmac.compare_digest(hexdigest.lower().encode(), expected.encode()):
            raise unauthorized("bad_signature")
        self._seen.remember(expected, now, int(timestamp))
        return Principal("hmac")

    def login_with_query_token(self, token: str) -> str:
        """The Set-Cookie value for a dashboard visit with a valid `?token=`; 401 otherwise."""
        if not hmac.compare_digest(token.encode(), self._token):
            raise unauthorized("bad_token")
        return (
            f"{COOKIE_NAME}={quote(self._session)}; HttpOnly; SameSite=Strict; Path=/; "
            "Max-Age=2592000"
        )


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """hex HMAC-SHA256 of "<timestamp>.<raw body>" (what a caller puts after `sha256=`)."""
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
