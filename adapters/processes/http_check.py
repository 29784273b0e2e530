"""A bounded HTTP GET for health checks, run from actor threads (blocking urllib, no reactor).

Bounded in time and size: the timeout applies to each socket operation and the body is read
against a deadline, at most `max_body` bytes, so a server that drips or streams cannot hold
the calling actor.
"""

from __future__ import annotations

import http.client
import ipaddress
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    reason: str  # "HTTP 200", "HTTP 502", "connection refused", "timed out"...
    status: int | None = None
    elapsed_s: float = 0.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opener(url: str) -> urllib.request.OpenerDirector:
    host = urllib.parse.urlsplit(url).hostname or ""
    # A proxy from the environment cannot reach our loopback; public URLs may need it.
    if _is_loopback(host):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def http_check(url: str, timeout_s: float = 10.0, max_body: int = MAX_BODY) -> ProbeResult:
    """GET `url`; ok when it answers 2xx and the body (first `max_body` bytes) arrives."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return ProbeResult(False, f"not an http(s) URL: {url!r}")
    started = time.monotonic()
    deadline = started + timeout_s

    def done(ok: bool, reason: str, status: int | None = None) -> ProbeResult:
        return ProbeResult(ok, reason, status, time.monotonic() - started)

    request = urllib.request.Request(url, headers={"User-Agent": "ghost-runner-health"})
    try:
        with _opener(url).open(request, timeout=timeout_s) as response:
            status = int(response.status)
            remaining, finished = max_body, False
            while not finished and time.monotonic() < deadline:
                chunk = response.read1(min(remaining, 16 * 1024))
                remaining -= len(chunk)
                finished = not chunk or remaining <= 0  # a larger body is not our concern
    except urllib.error.HTTPError as e:
        e.close()
        return done(False, f"HTTP {e.code}", e.code)
    except urllib.error.URLError as e:
        return done(False, str(e.reason))
    except (OSError, http.client.HTTPException) as e:  # timeouts, resets mid-body
        return done(False, str(e) or type(e).__name__)
    if not finished:
        return done(False, f"body not received within {timeout_s:g} s", status)
    return done(200 <= status < 300, f"HTTP {status}", status)
