"""Prometheus metrics of the node (GET /metrics), in a registry of its own so that tests and
several nodes in one process never share counters."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ghost_http_requests",
            "HTTP requests answered, by route pattern, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "ghost_webhook_duration_seconds",
            "Time from a POST /webhook (or /patch) arriving to its answer",
            ["command"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30),
            registry=r,
        )
        self.patches = Counter(
            "ghost_patches", "Patch outcomes answered over HTTP, by status", ["status"], registry=r
        )
        self.events = Counter(
            "ghost_events_appended", "Events appended to the store, by type", ["type"], registry=r
        )
        self.restarts = Counter(
            "ghost_actor_restarts", "Actor restarts (ActorRestarting events)", ["actor"], registry=r
        )
        self.sse_clients = Gauge(
            "ghost_sse_clients", "Connected GET /events SSE clients", registry=r
        )
        self.position = Gauge("ghost_event_position", "Last event position seen", registry=r)
        self.refused = Counter(
            "ghost_http_refused",
            "Requests refused before routing (413 body too large, 408 body too slow)",
            ["status"],
            registry=r,
        )

    def bind_sse_count(self, count: Callable[[], int]) -> None:
        self.sse_clients.set_function(lambda: float(count()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
