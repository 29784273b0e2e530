"""events (GET /events): a page of events as JSON, or with `Accept: text/event-stream` the live feed
(id = global position; resumable with Last-Event-ID)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from adapters.operations.model import Call
from adapters.web.app import WebApp
from adapters.web.errors import ApiError, invalid
from adapters.web.http import ApiRequest, ApiResponse
from adapters.web.router import STREAMING, Streaming
from adapters.web.sse import SSEClient
from eventstore.events import RecordedEvent

MAX_PAGE = 1000


def _types(call: Call) -> list[str] | None:
    types: list[str] = list(call.args.get("type") or [])
    for t in types:
        if len(t) > 64 or not t.isidentifier():
            raise invalid("type", f"not an event type: {t[:64]!r}")
    return types or None


def get_events(app: WebApp, call: Call) -> Deferred[ApiResponse] | Streaming:
    after = int(call.args["after"])
    types = _types(call)
    stream = call.args.get("stream") or None
    req = call.request
    if req is not None and "text/event-stream" in req.headers.get("accept", ""):
        return _stream(app, req, after, types, stream)
    limit = int(call.args["limit"])
    streams = [stream] if stream else None

    def page(events: list[RecordedEvent]) -> ApiResponse:
        body = [e.as_dict() for e in events]
        next_after = body[-1]["position"] if body else after
        return ApiResponse(200, {"events": body, "next_after": next_after})

    read: Deferred[list[RecordedEvent]] = app.in_thread(
        app.services.store.read_all, after, limit, types, streams
    )
    return read.addCallback(page)


def _stream(
    app: WebApp, req: ApiRequest, after: int, types: list[str] | None, stream: str | None
) -> Streaming:
    last_id = req.headers.get("last-event-id")
    if last_id:
        if not last_id.isdigit():
            raise invalid("Last-Event-ID", "expected an event position")
        after = int(last_id)
    if len(app.hub.clients) >= app.hub.max_clients:
        raise ApiError(503, "busy", "too many live event clients; retry later")
    mine = sum(1 for c in app.hub.clients if c.owner == req.client_ip)
    if mine >= app.config.sse_max_per_client:
        raise ApiError(
            429,
            "rate_limited",
            f"this client holds {mine} live event streams already; close one first",
            {"limit": app.config.sse_max_per_client},
        )
    request: Any = req.raw
    request.setResponseCode(200)
    request.setHeader("Content-Type", "text/event-stream; charset=utf-8")
    request.setHeader("Cache-Control", "no-cache")
    request.setHeader("X-Accel-Buffering", "no")  # proxies must not hold frames back
    request.setHeader("X-Request-Id", req.request_id)
    request.write(b"retry: 2000\n: connected\n\n")
    client = SSEClient(
        request, after, frozenset(types) if types else None, stream, owner=req.client_ip
    )
    app.hub.attach(client)
    return STREAMING
