"""The twisted Site that serves the API: the router as its only resource (so there is no
directory listing and no HTML error page anywhere), the size-limited request factory, an idle
timeout for keep-alive connections, and no tracebacks in answers."""

from __future__ import annotations

import logging
from typing import Any

from twisted.web.server import Site

from adapters.web.app import WebApp
from adapters.web.dispatch import all_routes
from adapters.web.guard import ConnectionLimits, GuardedChannel, Refusal
from adapters.web.limits import request_factory
from adapters.web.router import Router

access_log = logging.getLogger("ghost.http.access")


class ApiSite(Site):
    """Twisted's combined-format access log line per request goes to `ghost.http.access` at
    DEBUG, not to twisted.logger at INFO: requests are counted by route and status in
    /metrics, and a line per request would flood journald under load (a quarter of the
    reactor's time under /health load was spent logging)."""

    protocol: Any = GuardedChannel
    limits = ConnectionLimits()
    on_refused: Any = staticmethod(lambda status: None)

    def buildProtocol(self, addr: Any) -> Any:
        peer = str(getattr(addr, "host", ""))
        if not self.limits.admit(peer):
            self.on_refused(503)
            return Refusal()
        build: Any = Site.buildProtocol  # untyped in twisted
        channel: Any = build(self, addr)
        channel.on_lost = lambda: self.limits.release(peer)
        channel.on_slow_head = lambda: self.on_refused(408)
        return channel

    def log(self, request: Any) -> None:
        if access_log.isEnabledFor(logging.DEBUG):
            formatter: Any = self._logFormatter  # untyped in twisted
            access_log.debug("%s", formatter(self._logDateTime, request))


def build_site(app: WebApp) -> ApiSite:
    make: Any = ApiSite  # Site.__init__ is untyped in twisted
    # No form parsing: every route reads the raw body itself (Slack's form body is verified
    # byte for byte). twisted.web would otherwise parse the Content-Type of every POST with
    # the email package, ~40 % of the reactor's time for a POST /webhook.
    site: ApiSite = make(
        Router(app, all_routes()),
        timeout=app.config.idle_timeout_s,
        parsePOSTFormSubmission=False,
    )
    site.displayTracebacks = False
    site.noisy = False

    def refused(status: int) -> None:
        app.metrics.refused.labels(str(status)).inc()

    site.on_refused = refused
    site.limits = ConnectionLimits(app.config.max_connections, app.config.max_connections_per_peer)
    site.protocol = type(
        "ConfiguredChannel", (GuardedChannel,), {"header_timeout_s": app.config.header_timeout_s}
    )
    site.requestFactory = request_factory(app.config.max_body, app.config.body_timeout_s, refused)
    return site
