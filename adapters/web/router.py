"""Method/path dispatch for the whole API, and everything every route shares: request ids,
rate limits, authentication, the JSON error shape (404/405 included), handler timeouts,
metrics, and a 500 with a request id (logged and recorded, never a traceback) for bugs.

One leaf resource instead of twisted's resource tree: a tree answers unknown paths and methods
with its own HTML pages, and the API must answer JSON everywhere."""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from adapters.web.app import WebApp
from adapters.web.errors import ApiError
from adapters.web.http import ApiRequest, ApiResponse, Principal, TwistedRequest, dumps
from adapters.web.limits import retry_after

log = logging.getLogger("ghost.web")

Handler = Callable[[WebApp, ApiRequest], "ApiResponse | Deferred[ApiResponse] | Streaming"]

# Headers a proxy or tunnel adds: a request carrying one did not start on this machine.
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "cf-connecting-ip", "x-real-ip")


class Streaming:
    """Returned by a handler that took the connection over (SSE): the router writes nothing."""


STREAMING = Streaming()


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: str  # "/patches/{id}" -- also the metrics label
    handler: Handler
    auth: str = "token"  # token | open (handler checks principal) | slack (handler verifies)
    loopback_only: bool = False

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(
            "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.pattern)) + "$"
        )


_RESOURCE: Any = Resource  # untyped in twisted
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Router(Resource):
    isLeaf = True

    def __init__(self, app: WebApp, routes: Sequence[Route]) -> None:
        _RESOURCE.__init__(self)
        self.app = app
        self._routes = [(route, route.regex) for route in routes]

    def render(self, request: TwistedRequest) -> Any:
        started = time.monotonic()
        request_id = uuid.uuid4().hex[:16]
        method = request.method.decode("ascii", "replace").upper()
        path = unquote(request.path.decode("utf-8", "replace"))
        label = "unmatched"
        try:
            route, params = self._match(method, path)
            label = route.pattern
            api = self._api_request(request, method, path, params, request_id)
            self._check_host(api)
            self._limit(api)
            if route.loopback_only:
                _require_loopback(api)
            if route.auth == "token":
                api.principal = self._authenticate(request, api)
            elif route.auth == "open":
                api.principal = self._optional_auth(request, api)
            result = maybeDeferred(route.handler, self.app, api)
        except ApiError as exc:
            self._write_error(request, exc, request_id, label, method)
            return NOT_DONE_YET
        except Exception:  # noqa: BLE001 - a bug in a route's synchronous part: answer 500
            self._unexpected(request, _failure(), request_id, label, method)
            return NOT_DONE_YET
        result.addTimeout(self.app.config.handler_timeout_s, self.app.reactor)
        result.addCallbacks(
            lambda response: self._write(request, response, request_id, label, method, started),
            lambda failure: self._failed(request, failure, request_id, label, method),
        )
        result.addErrback(
            lambda failure: self._unexpected(request, failure, request_id, label, method)
        )
        return NOT_DONE_YET

    # --- steps ---------------------------------------------------------------------------------
    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route, regex in self._routes:
            m = regex.match(path)
            if m is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, m.groupdict()
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405,
                "method_not_allowed",
                f"{method} is not allowed on {path}; use {', '.join(sorted(set(allowed)))}",
                {"allowed": sorted(set(allowed))},
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError(404, "not_found", f"no endpoint {path}; see GET /openapi.json")

    def _api_request(
        self,
        request: TwistedRequest,
        method: str,
        path: str,
        params: dict[str, str],
        request_id: str,
    ) -> ApiRequest:
        headers = {
            k.decode("latin-1").lower(): v[-1].decode("latin-1")
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        query_text = request.uri.partition(b"?")[2].decode("utf-8", "replace")
        try:
            query = parse_qs(query_text, keep_blank_values=True, max_num_fields=50)
        except ValueError:
            raise ApiError(400, "invalid", "too many query parameters") from None
        body = request.content.read() if request.content is not None else b""
        return ApiRequest(
            method=method,
            path=path,
            params=params,
            query=query,
            headers=headers,
            body=body,
            client_ip=_client_ip(request, headers, self.app.proxies),
            request_id=request_id,
            raw=request,
        )

    def _check_host(self, api: ApiRequest) -> None:
        refused = self.app.hosts.check(api.headers.get("host"), api.headers.get("origin"))
        if refused is not None:
            shown = api.headers.get(refused, "")[:100]
            raise ApiError(
                403,
                "forbidden",
                f"{refused} {shown!r} is not this node's (DNS rebinding?); use 127.0.0.1, "
                "localhost or the tunnel's URL",
                {"reason": f"bad_{refused}"},
            )

    def _limit(self, api: ApiRequest) -> None:
        wait = self.app.limiter.take(api.client_ip)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests from {api.client_ip}; retry in {retry_after(wait)} s",
                {"retry_after_s": float(retry_after(wait))},
                headers={"Retry-After": retry_after(wait)},
            )

    def _authenticate(self, request: TwistedRequest, api: ApiRequest) -> Principal:
        cookies = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in request.received_cookies.items()
        }
        target = request.uri.decode("latin-1")
        return self.app.auth.authenticate(api.method, api.headers, cookies, api.body, target)

    def _optional_auth(self, request: TwistedRequest, api: ApiRequest) -> Principal:
        """GET /health: the full answer with credentials, `{status}` without; wrong
        credentials are still a 401 (a caller who tries to log in wants to know)."""
        if "authorization" in api.headers or "x-ghost-signature" in api.headers:
            return self._authenticate(request, api)
        if b"ghost_session" in request.received_cookies:
            return self._authenticate(request, api)
        return Principal("open")

    # --- answers -------------------------------------------------------------------------------
    def _write(
        self,
        request: TwistedRequest,
        response: ApiResponse | Streaming,
        request_id: str,
        label: str,
        method: str,
        started: float,
    ) -> None:
        if isinstance(response, Streaming):
            self.app.metrics.requests.labels(label, method, "200").inc()
            return
        body = response.encoded()
        headers = {
            "Content-Type": response.content_type,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Request-Id": request_id,
            **response.headers,
        }
        self._send(request, response.status, headers, body)
        self.app.metrics.requests.labels(label, method, str(response.status)).inc()

    def _write_error(
        self, request: TwistedRequest, error: ApiError, request_id: str, label: str, method: str
    ) -> None:
        details_reason = error.details.get("reason") if error.status == 401 else None
        if details_reason:
            log.info("401 %s %s from %s: %s", method, label, _peer(request), details_reason)
        headers = {
            "Content-Type": "application/json",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Request-Id": request_id,
            **error.headers,
        }
        body = error.body()
        body["error"]["details"].setdefault("request_id", request_id)
        self._send(request, error.status, headers, dumps(body))
        self.app.metrics.requests.labels(label, method, str(error.status)).inc()

    def _failed(
        self, request: TwistedRequest, failure: Failure, request_id: str, label: str, method: str
    ) -> None:
        from twisted.internet.defer import TimeoutError as DeferredTimeout

        if isinstance(failure.value, ApiError):
            self._write_error(request, failure.value, request_id, label, method)
            return
        if isinstance(failure.value, DeferredTimeout):
            error = ApiError(
                503,
                "timeout",
                f"no answer within {self.app.config.handler_timeout_s:g} s; retry later",
            )
            self._write_error(request, error, request_id, label, method)
            return
        self._unexpected(request, failure, request_id, label, method)

    def _unexpected(
        self, request: TwistedRequest, failure: Failure, request_id: str, label: str, method: str
    ) -> None:
        log.error(
            "request %s %s %s failed: %s",
            request_id,
            method,
            label,
            failure.getTraceback(),
        )
        self.app.record_http_error(label, method, request_id, type(failure.value).__name__)
        error = ApiError(
            500,
            "internal",
            f"unexpected error; reported as request {request_id}",
            {"request_id": request_id},
        )
        self._write_error(request, error, request_id, label, method)

    @staticmethod
    def _send(request: TwistedRequest, status: int, headers: dict[str, str], body: bytes) -> None:
        if request.finished or request._disconnected or request.channel is None:
            return  # the client went away while we worked
        request.setResponseCode(status)
        for name, value in headers.items():
            request.setHeader(name, value)
        request.setHeader("Content-Length", str(len(body)))
        if request.method != b"HEAD":
            request.write(body)
        request.finish()


def _failure() -> Failure:
    make: Any = Failure  # untyped constructor: the exception being handled
    result: Failure = make()
    return result


def _peer(request: TwistedRequest) -> str:
    address = request.getClientAddress()
    return str(getattr(address, "host", "?"))


def _client_ip(request: TwistedRequest, headers: dict[str, str], proxies: Sequence[Network]) -> str:
    """The peer's address; from a trusted proxy (a local tunnel: WebConfig.trusted_proxies)
    the last hop it recorded in X-Forwarded-For, so that each remote client gets its own rate
    bucket. From anyone else the header is ignored: rotating it would mint fresh buckets."""
    peer = _peer(request)
    forwarded = headers.get("x-forwarded-for") or headers.get("cf-connecting-ip")
    if forwarded and proxies and _within(peer, proxies):
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:64]
    return peer


def _within(host: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _require_loopback(api: ApiRequest) -> None:
    peer = _peer(api.raw)
    # A tunnel also connects from loopback: its forwarding headers give it away.
    if not _is_loopback(peer) or any(h in api.headers for h in FORWARDING_HEADERS):
        raise ApiError(
            403,
            "forbidden",
            "POST /patch is for local tools only; remote callers use POST /webhook",
            {"reason": "not_loopback"},
        )
