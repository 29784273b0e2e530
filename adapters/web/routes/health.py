"""GET /health (open: `{status}` only; with credentials: actors, tunnels, services, uptime,
version, position, 24 h availability) and GET /metrics (Prometheus text)."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed

from adapters.operations.model import Call
from adapters.operations.ports import Unavailable
from adapters.twisted_bridge import deferred_from_future
from adapters.web.app import WebApp
from adapters.web.availability import availability
from adapters.web.http import ApiRequest, ApiResponse
from adapters.web.metrics import CONTENT_TYPE_LATEST
from adapters.web.statuses import gather_statuses

SNAPSHOT_TTL_S = 1.0
AVAILABILITY_TTL_S = 30.0


class _Cache:
    """Per-app caches: /health may be polled hard (load balancers, the benchmark) and the
    health actor's answer changes every few seconds at most."""

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] | None = None
        self.snapshot_at = 0.0
        self.availability: dict[str, Any] | None = None
        self.availability_at = 0.0


def _cache(app: WebApp) -> _Cache:
    cache = app.caches.setdefault("health", _Cache())
    assert isinstance(cache, _Cache)
    return cache


def snapshot(app: WebApp) -> Deferred[dict[str, Any]]:
    cache = _cache(app)
    now = time.monotonic()
    if cache.snapshot is not None and now - cache.snapshot_at < SNAPSHOT_TTL_S:
        return succeed(cache.snapshot)
    health = app.services.health
    if health is None:
        return succeed({"status": "down", "actors": {}})
    # The first round runs while the tree is still starting: until a round has seen every
    # actor past "starting", ask for a fresh one rather than serve that early picture.
    early = cache.snapshot is None or any(
        a.get("state") == "starting" for a in cache.snapshot.get("actors", {}).values()
    )
    try:
        future = health.snapshot(fresh=early)
    except Unavailable:
        return succeed({"status": "degraded", "actors": {}, "checks": {}})

    def store(snap: dict[str, Any]) -> dict[str, Any]:
        cache.snapshot = snap
        cache.snapshot_at = time.monotonic()
        return cache.snapshot

    def unavailable(_: Any) -> dict[str, Any]:
        return {"status": "degraded", "actors": {}, "checks": {}}

    return deferred_from_future(future, 2.0, app.reactor).addCallbacks(store, unavailable)


def _availability(app: WebApp) -> Deferred[dict[str, Any]]:
    cache = _cache(app)
    if (
        cache.availability is not None
        and time.monotonic() - cache.availability_at < AVAILABILITY_TTL_S
    ):
        return succeed(cache.availability)

    def keep(value: dict[str, Any]) -> dict[str, Any]:
        cache.availability, cache.availability_at = value, time.monotonic()
        return value

    return app.in_thread(availability, app.services.store).addCallback(keep)


def edge_statuses(app: WebApp) -> Deferred[dict[str, dict[str, dict[str, Any]]]]:
    """{"tunnels": {name: status}, "services": {name: status}} from the actors themselves."""
    tunnels = gather_statuses(app.reactor, app.services.tunnels)
    services = gather_statuses(app.reactor, app.services.services)
    both: Deferred[list[dict[str, dict[str, Any]]]] = gatherResults([tunnels, services])
    return both.addCallback(lambda pair: {"tunnels": pair[0], "services": pair[1]})


def _tunnels(live: dict[str, dict[str, Any]], avail: dict[str, Any]) -> dict[str, Any]:
    """Each tunnel's live state and public URL, with its 24 h availability from events."""
    names = sorted({*live, *avail})
    out: dict[str, Any] = {}
    for name in names:
        status = live.get(name, {})
        entry = {
            "state": status.get("state", "unknown"),
            "url": status.get("url"),
            "pid": status.get("pid"),
        }
        if name in avail:
            entry["availability"] = avail[name].get("availability")
        out[name] = entry
    return out


def _services(live: dict[str, dict[str, Any]]) -> dict[str, Any]:
    keys = ("state", "pid", "port", "health", "rss_bytes", "exits_in_window", "last_exit")
    return {
        name: {key: status[key] for key in keys if key in status}
        for name, status in sorted(live.items())
    }


def summary(app: WebApp) -> Deferred[dict[str, Any]]:
    """The full health document (also the webhook's `status` command)."""

    def build(snap: dict[str, Any]) -> Deferred[dict[str, Any]]:
        def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
            avail, edge = parts
            return {
                "status": snap.get("status", "down"),
                "actors": {
                    name: {"state": info.get("state"), "restarts": info.get("restarts", 0)}
                    for name, info in snap.get("actors", {}).items()
                },
                "tunnels": _tunnels(edge["tunnels"], avail.get("tunnels", {})),
                "services": _services(edge["services"]),
                "checks": snap.get("checks", {}),
                "uptime_s": round(time.monotonic() - app.services.started_at, 3),
                "version": app.services.version,
                "position": app.hub.committed,  # the store's last committed event
                "workspaces": sorted(app.services.workspaces),
                "tests": {name: ws.tests for name, ws in sorted(app.services.workspaces.items())},
                "availability": avail,
            }

        parts: Deferred[list[dict[str, Any]]] = gatherResults(
            [_availability(app), edge_statuses(app)]
        )
        return parts.addCallback(combine)

    return snapshot(app).addCallback(build)


def status(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    """The webhook's `status` command: the full document."""
    return summary(app).addCallback(lambda data: ApiResponse(200, data))


def get_health(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    def answer(body: dict[str, Any]) -> ApiResponse:
        status = 503 if body.get("status") == "down" else 200
        return ApiResponse(status, body)

    if call.request is not None and not call.request.principal.authenticated:
        return snapshot(app).addCallback(lambda snap: answer({"status": snap.get("status")}))
    return summary(app).addCallback(answer)


def get_metrics(app: WebApp, req: ApiRequest) -> ApiResponse:
    return ApiResponse(200, app.metrics.render(), content_type=CONTENT_TYPE_LATEST)
