"""The API's routes; `all_routes()` is the table the router serves (SPEC §4), the dashboard's
included."""

from __future__ import annotations

from adapters.web.dashboard.resource import dashboard_routes
from adapters.web.router import Route
from adapters.web.routes import (
    events,
    files,
    health,
    node_control,
    openapi_route,
    patches,
    slack,
    watch,
    webhook,
)


def all_routes() -> list[Route]:
    return [
        Route("POST", "/webhook", webhook.post_webhook),
        Route("POST", "/patch", webhook.post_webhook, loopback_only=True),
        Route("GET", "/patches", patches.list_patches),
        Route("GET", "/patches/{id}", patches.get_patch),
        Route("POST", "/patches/{id}/approve", patches.approve),
        Route("POST", "/patches/{id}/reject", patches.reject),
        Route("POST", "/patches/{id}/rollback", patches.rollback),
        Route("POST", "/pause", node_control.pause),
        Route("POST", "/resume", node_control.resume),
        Route("GET", "/files", files.get_file),
        Route("GET", "/tree", files.get_tree),
        Route("GET", "/events", events.get_events),
        Route("GET", "/health", health.get_health, auth="open"),
        Route("GET", "/metrics", health.get_metrics),
        Route("GET", "/openapi.json", openapi_route.get_openapi),
        Route("GET", "/watch", watch.get_watch),
        Route("POST", "/slack/commands", slack.post_command, auth="slack"),
        *dashboard_routes(),
    ]
