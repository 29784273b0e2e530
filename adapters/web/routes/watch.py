"""GET /watch (SPEC §4): each workspace's watcher, as its WatcherActor reports it (patterns,
observer kind, whether the start rescan is done, the last changes seen, warnings)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from adapters.operations.model import Call
from adapters.web.app import WebApp
from adapters.web.http import ApiResponse
from adapters.web.statuses import gather_statuses


def get_watch(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    def answer(infos: dict[str, dict[str, Any]]) -> ApiResponse:
        watchers = [{"workspace": name, **infos.get(name, {})} for name in sorted(infos)]
        return ApiResponse(200, {"watchers": watchers})

    d = gather_statuses(app.reactor, app.services.watchers)
    return d.addCallback(answer)
