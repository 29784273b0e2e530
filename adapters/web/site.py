"""The twisted Site that serves the API: the router as its only resource (so there is no
directory listing and no HTML error page anywhere), the size-limited request factory, an idle
timeout for keep-alive connections, and no tracebacks in answers."""

from __future__ import annotations

import logging
from typing import Any

from twisted.web.server import Site

from adapters.web.app import WebApp
from adapters.web.limits import request_factory
from adapters.web.router import Router
from adapters.web.routes import all_routes

access_log = logging.getLogger("ghost.http.access")


class _AccessLog:
    """Twisted's combined-format access log, one line per request, at DEBUG: requests are
    counted by route and status in /metrics, and a line per request at INFO would flood
    journald under load (and block the reactor on a stderr nobody drains)."""

    def write(self, line: str, /) -> object:
        if access_log.isEnabledFor(logging.DEBUG):
            access_log.debug("%s", line.rstrip("\n"))
        return None

    def close(self) -> None:
        pass


def build_site(app: WebApp) -> Site:
    make: Any = Site  # untyped in twisted
    site: Site = make(Router(app, all_routes()), timeout=app.config.idle_timeout_s)
    site.displayTracebacks = False
    site.noisy = False
    site._logFile = _AccessLog()  # where HTTPFactory.log() writes (no public setter)
    site.requestFactory = request_factory(
        app.config.max_body,
        app.config.body_timeout_s,
        lambda status: app.metrics.refused.labels(str(status)).inc(),
    )
    return site
