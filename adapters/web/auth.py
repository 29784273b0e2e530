"""Who may call (SPEC §4): a bearer token, or an HMAC signature over the raw body when a secret
is set, or the dashboard's cookie (with a CSRF header on POSTs).

Every secret comparison is hmac.compare_digest (constant time). Nothing here logs a secret:
failures carry only a reason word for the log and a generic message for the caller."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from urllib.parse import quote

from adapters.web.errors import ApiError
from adapters.web.http import Principal

WINDOW_S = 300.0
MAX_REMEMBERED_SIGNATURES = 100_000
COOKIE_NAME = "ghost_session"
CSRF_HEADER = "x-ghost-csrf"


class SignatureMemory:
    """Signatures seen within the window, so a captured request cannot be replayed.

    Bounded: when full of still-fresh signatures, new signed requests are refused (503) rather
    than forgetting one that could then be replayed (fail closed)."""

    def __init__(self, window_s: float, capacity: int = MAX_REMEMBERED_SIGNATURES) -> None:
        self._window_s = window_s
        self._capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> when seen, in order
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, signature: str, now: float) -> None:
        """Record `signature`; ApiError 401 if it was seen within the window."""
        with self._lock:
            while self._seen:
                oldest, seen_at = next(iter(self._seen.items()))
                if now - seen_at <= self._window_s:
                    break
                del self._seen[oldest]
            if signature in self._seen:
                raise unauthorized("replayed")
            if len(self._seen) >= self._capacity:
                raise ApiError(503, "busy", "too many signed requests in the window; retry later")
            self._seen[signature] = now


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
    def __init__(
        self,
        token: str,
        hmac_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        window_s: float = WINDOW_S,
    ) -> None:
        self._token = token.encode()
        self._secret = hmac_secret.encode() if hmac_secret else None
        self._clock = clock
        self._window_s = window_s
        self._seen = SignatureMemory(window_s)
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
        scheme, _, hexdigest = signature.partition("=")
        if scheme != "sha256" or not hexdigest:
            raise unauthorized("malformed_signature")
        expected = sign(self._secret, timestamp, body)
        if not hmac.compare_digest(hexdigest.lower().encode(), expected.encode()):
            raise unauthorized("bad_signature")
        self._seen.remember(expected, now)
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
