"""What keeps one caller from taking the node's connections, before any request is parsed:
a deadline for a request's head, caps on open connections (in all and per peer address), and
the Host / Origin check against DNS rebinding.

- `GuardedChannel`: twisted's HTTPChannel restarts its idle timeout on every byte, so headers
  sent a byte a minute kept a connection forever (4,000 of them, unauthenticated, in one
  attack). Here a request's head must be complete within `header_timeout_s` of its first byte
  (or of the connection's start); the body has its own deadline (`limits.LimitedRequest`).
- `ConnectionLimits`: counted in the site's `buildProtocol`; a connection over a cap gets a
  raw 503 and is closed at once, so an attacker runs out of slots, not the node of files.
- `HostPolicy`: a browser page on `evil.example` that resolves to 127.0.0.1 sends
  `Host: evil.example`; names other than loopback ones, the node's own and its tunnels' public
  hosts are refused (403), and so is a browser `Origin` naming one. IP literals are allowed
  (rebinding needs a name).
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.protocol import Protocol
from twisted.web.http import HTTPChannel

from adapters.web.limits import raw_error

_CHANNEL: Any = HTTPChannel  # untyped in twisted

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_MAX_CONNECTIONS_PER_PEER = 256


class ConnectionLimits:
    """Open connections, in all and per peer address. Reactor thread only, but locked anyway:
    /metrics reads it from the thread pool."""

    def __init__(
        self,
        total: int = DEFAULT_MAX_CONNECTIONS,
        per_peer: int = DEFAULT_MAX_CONNECTIONS_PER_PEER,
    ) -> None:
        self.total, self.per_peer = total, per_peer
        self._open: Counter[str] = Counter()
        self._count = 0
        self._lock = threading.Lock()

    def admit(self, peer: str) -> bool:
        with self._lock:
            if self._count >= self.total or self._open[peer] >= self.per_peer:
                return False
            self._open[peer] += 1
            self._count += 1
            return True

    def release(self, peer: str) -> None:
        with self._lock:
            self._open[peer] -= 1
            self._count -= 1
            if self._open[peer] <= 0:
                del self._open[peer]

    def open(self, peer: str | None = None) -> int:
        with self._lock:
            return self._count if peer is None else self._open[peer]


class Refusal(Protocol):
    """What a connection over a cap gets: a 503 and the end of the connection."""

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(
            raw_error(503, "Service Unavailable", "busy", "too many open connections; retry later")
        )
        transport.loseConnection()


class GuardedChannel(HTTPChannel):
    """HTTPChannel with a deadline for each request's head. `header_timeout_s` and
    `on_lost` are set by the site (class attribute and per instance)."""

    header_timeout_s = DEFAULT_HEADER_TIMEOUT_S

    def __init__(self) -> None:
        _CHANNEL.__init__(self)
        self._head_timer: Any = None
        self.on_lost: Callable[[], None] | None = None
        self.on_slow_head: Callable[[], None] = lambda: None

    def connectionMade(self) -> None:
        _CHANNEL.connectionMade(self)
        self._start_head_timer()

    def dataReceived(self, data: bytes) -> None:
        # line mode = reading a request line or headers: the head of a request has begun
        if self.line_mode and self._head_timer is None:
            self._start_head_timer()
        _CHANNEL.dataReceived(self, data)

    def allHeadersReceived(self) -> None:
        self._cancel_head_timer()
        _CHANNEL.allHeadersReceived(self)

    def connectionLost(self, reason: Any = None) -> None:
        self._cancel_head_timer()
        try:
            _CHANNEL.connectionLost(self, reason)
        finally:
            lost, self.on_lost = self.on_lost, None
            if lost is not None:
                lost()

    def _start_head_timer(self) -> None:
        later: Any = self.callLater  # untyped in twisted
        self._head_timer = later(self.header_timeout_s, self._head_too_slow)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None and self._head_timer.active():
            self._head_timer.cancel()
        self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        self.on_slow_head()
        transport: Any = self.transport
        if transport is None:
            return
        message = f"the request's head took over {self.header_timeout_s:g} s"
        transport.write(raw_error(408, "Request Timeout", "timeout", message))
        transport.loseConnection()
        # a client that stops reading must not keep the socket open either
        later: Any = self.callLater
        later(self.abortTimeout or 15, transport.abortConnection)


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Which Host and Origin names may reach the node (module doc)."""

    names: frozenset[str] = frozenset()  # exact host names, lower-case
    url_patterns: tuple[re.Pattern[str], ...] = ()  # tunnels' url_pattern: a public URL's shape

    @classmethod
    def build(cls, names: Iterable[str], url_patterns: Iterable[str] = ()) -> HostPolicy:
        return cls(
            frozenset(n.lower().strip("[]") for n in names if n),
            tuple(re.compile(p) for p in url_patterns),
        )

    def allows(self, host: str) -> bool:
        """`host` without its port, as in a Host header or a URL."""
        name = host.lower().strip("[]").rstrip(".")
        if not name or name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        if name in self.names:
            return True
        return any(p.fullmatch(f"https://{name}") for p in self.url_patterns)

    def check(self, host_header: str | None, origin: str | None) -> str | None:
        """None when allowed, else what is refused ("host" or "origin")."""
        if host_header is not None and not self.allows(_host_of(host_header)):
            return "host"
        if origin is not None:
            if origin == "null":
                return "origin"
            try:
                origin_host = urlsplit(origin).hostname or ""
            except ValueError:
                return "origin"
            if not self.allows(origin_host):
                return "origin"
        return None


def _host_of(header: str) -> str:
    """The host of a Host header value: `[::1]:5051` -> `::1`, `a.b:80` -> `a.b`."""
    text = header.strip()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rpartition(":")[0] if text.count(":") == 1 else text
