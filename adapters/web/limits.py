"""Limits that protect the node from its callers: the body size counted while it arrives, a
deadline for receiving the body, and per-client token buckets.

twisted.web has no body limit of its own (INTEGRATION.md): `LimitedRequest` counts in
`gotLength` (the announced Content-Length) and `handleContentChunk` (chunked bodies), and
answers 413 and closes the connection as soon as the limit is passed, without buffering more.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.web.server import Request

from adapters.web.http import dumps

# twisted.web's Request is untyped: its methods are called through this Any-typed alias so
# that mypy --strict accepts the overrides.
_BASE: Any = Request

DEFAULT_MAX_BODY = 5 * 1024 * 1024
DEFAULT_BODY_TIMEOUT_S = 30.0


def raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    body = dumps({"error": {"code": code, "message": message, "details": {}}})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class LimitedRequest(Request):
    """A Request that refuses bodies over `max_body` bytes and bodies slower than
    `body_timeout_s`. Both are class attributes, set on a subclass by `request_factory`."""

    max_body = DEFAULT_MAX_BODY
    body_timeout_s = DEFAULT_BODY_TIMEOUT_S
    on_refused: Callable[[int], None] = staticmethod(lambda status: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _BASE.__init__(self, *args, **kwargs)
        self._received = 0
        self._refused = False
        self._body_timer: Any = None

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._refuse_too_large()
            return
        try:
            _BASE.gotLength(self, length)  # over 100 kB: a temporary file holds the body
        except OSError as exc:
            self._refuse_unbuffered(exc)
            return
        from twisted.internet import reactor

        # A client that trickles its body byte by byte would hold a connection forever: the
        # channel's idle timeout restarts with every byte, this deadline does not.
        clock: Any = reactor
        self._body_timer = clock.callLater(self.body_timeout_s, self._body_too_slow)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self._refuse_too_large()
            return
        try:
            _BASE.handleContentChunk(self, data)
        except OSError as exc:
            self._refuse_unbuffered(exc)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._cancel_timer()
        if self._refused:
            return
        _BASE.requestReceived(self, command, path, version)

    def connectionLost(self, reason: Any) -> None:
        self._cancel_timer()
        _BASE.connectionLost(self, reason)

    def _cancel_timer(self) -> None:
        if self._body_timer is not None and self._body_timer.active():
            self._body_timer.cancel()
        self._body_timer = None

    def _refuse_too_large(self) -> None:
        self._refuse(
            413,
            "Payload Too Large",
            "too_large",
            f"the body is larger than the limit of {self.max_body} bytes",
        )

    def _refuse_unbuffered(self, exc: OSError) -> None:
        # A full disk (or a file size limit) where twisted.web buffers large bodies: a clear
        # answer, instead of an unhandled error in the reactor and a dropped connection.
        self._refuse(
            503,
            "Service Unavailable",
            "busy",
            f"no space to receive the request body ({exc.strerror or exc}); retry later",
        )

    def _body_too_slow(self) -> None:
        self._body_timer = None
        self._refuse(
            408, "Request Timeout", "timeout", f"the body took over {self.body_timeout_s:g} s"
        )

    def _refuse(self, status: int, reason: str, code: str, message: str) -> None:
        if self._refused:
            return
        self._refused = True
        self._cancel_timer()
        self.on_refused(status)
        # Written raw: the request never reaches the resource, and the connection is closed
        # (with whatever the client still sends discarded), so nothing more is buffered.
        channel: Any = self.channel
        if channel is not None and channel.transport is not None:
            channel.transport.write(raw_error(status, reason, code, message))
            channel.loseConnection()


def request_factory(
    max_body: int, body_timeout_s: float, on_refused: Callable[[int], None]
) -> type[LimitedRequest]:
    return type(
        "ConfiguredRequest",
        (LimitedRequest,),
        {
            "max_body": max_body,
            "body_timeout_s": body_timeout_s,
            "on_refused": staticmethod(on_refused),
        },
    )


class RateLimiter:
    """A token bucket per client IP: `rate` requests per second on average, bursts of `burst`.

    Buckets of clients not seen for a while are dropped (bounded memory, `max_clients`)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # ip -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, client: str) -> float:
        """0.0 when the request may go on, else the seconds to wait (for Retry-After)."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)  # least recently seen
        return wait


def retry_after(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
