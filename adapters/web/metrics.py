"""The node's metrics (GET /metrics): counted in plain tallies as requests and events happen,
and turned into Prometheus' text exposition by prometheus-client only when scraped.

Why not prometheus-client's own Counter/Histogram objects: importing prometheus-client costs a
resident node ~11 MB (its exposition pulls in wsgiref, http.server and socketserver) for an
endpoint many nodes never serve. The tallies cost nothing until then; a scrape imports the
library and yields them through a custom collector, the documented way to expose counts kept
elsewhere. Each Metrics has its own tallies, so tests and several nodes in one process never
share counters."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# prometheus_client.exposition.CONTENT_TYPE_LATEST, without importing it to say so
CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"


class _Child:
    """One label combination of a tally."""

    __slots__ = ("_key", "_tally")

    def __init__(self, tally: _Tally, key: tuple[str, ...]) -> None:
        self._tally = tally
        self._key = key

    def inc(self, amount: float = 1.0) -> None:
        self._tally.add(self._key, amount)

    def observe(self, value: float) -> None:
        self._tally.add(self._key, value)


class _Tally:
    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labels_names = tuple(labels)
        self._lock = threading.Lock()
        self.values: dict[tuple[str, ...], float] = {}

    def labels(self, *values: str) -> _Child:
        if len(values) != len(self.labels_names):
            raise ValueError(f"{self.name} takes labels {self.labels_names}, got {values}")
        return _Child(self, tuple(str(v) for v in values))

    def add(self, key: tuple[str, ...], amount: float) -> None:
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + amount

    def snapshot(self) -> dict[tuple[str, ...], Any]:
        with self._lock:
            return dict(self.values)


class Counter(_Tally):
    def inc(self, amount: float = 1.0) -> None:
        self.add((), amount)


class Histogram(_Tally):
    def __init__(
        self, name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(buckets)
        self.observations: dict[tuple[str, ...], tuple[list[int], float]] = {}

    def add(self, key: tuple[str, ...], amount: float) -> None:
        with self._lock:
            counts, total = self.observations.get(key) or ([0] * (len(self.buckets) + 1), 0.0)
            counts[bisect_left(self.buckets, amount)] += 1
            self.observations[key] = (counts, total + amount)

    def snapshot(self) -> dict[tuple[str, ...], Any]:
        with self._lock:
            return {k: (list(c), s) for k, (c, s) in self.observations.items()}


class Gauge(_Tally):
    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._function: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        with self._lock:
            self.values[()] = float(value)

    def set_function(self, function: Callable[[], float]) -> None:
        self._function = function

    def snapshot(self) -> dict[tuple[str, ...], Any]:
        if self._function is not None:
            return {(): float(self._function())}
        return super().snapshot() or {(): 0.0}


class Metrics:
    def __init__(self) -> None:
        self.requests = Counter(
            "ghost_http_requests",
            "HTTP requests answered, by route pattern, method and status",
            ["route", "method", "status"],
        )
        self.webhook_latency = Histogram(
            "ghost_webhook_duration_seconds",
            "Time from a POST /webhook (or /patch) arriving to its answer",
            ["command"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30),
        )
        self.patches = Counter(
            "ghost_patches", "Patch outcomes answered over HTTP, by status", ["status"]
        )
        self.events = Counter(
            "ghost_events_appended", "Events appended to the store, by type", ["type"]
        )
        self.restarts = Counter(
            "ghost_actor_restarts", "Actor restarts (ActorRestarting events)", ["actor"]
        )
        self.sse_clients = Gauge("ghost_sse_clients", "Connected GET /events SSE clients")
        self.position = Gauge("ghost_event_position", "Last event position seen")
        self.refused = Counter(
            "ghost_http_refused",
            "Requests refused before routing (413 body too large, 408 body too slow)",
            ["status"],
        )
        self._all: tuple[_Tally, ...] = (
            self.requests,
            self.webhook_latency,
            self.patches,
            self.events,
            self.restarts,
            self.sse_clients,
            self.position,
            self.refused,
        )
        self._registry: Any = None

    def bind_sse_count(self, count: Callable[[], int]) -> None:
        self.sse_clients.set_function(lambda: float(count()))

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self._registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Collector(self._all))
            self._registry = registry
        text: bytes = generate_latest(self._registry)
        return text


class _Collector:
    """The tallies as prometheus-client metric families (a custom collector)."""

    def __init__(self, tallies: Sequence[_Tally]) -> None:
        self._tallies = tallies

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        for tally in self._tallies:
            names = list(tally.labels_names)
            family: Any
            if isinstance(tally, Histogram):
                family = HistogramMetricFamily(tally.name, tally.help, labels=names)
                for key, (counts, total) in sorted(tally.snapshot().items()):
                    cumulative, buckets = 0, []
                    for bound, count in zip((*tally.buckets, float("inf")), counts, strict=True):
                        cumulative += count
                        buckets.append((_bound(bound), cumulative))
                    family.add_metric(list(key), buckets, total)
            elif isinstance(tally, Gauge):
                family = GaugeMetricFamily(tally.name, tally.help, labels=names)
                for key, value in tally.snapshot().items():
                    family.add_metric(list(key), value)
            else:
                family = CounterMetricFamily(tally.name, tally.help, labels=names)
                for key, value in sorted(tally.snapshot().items()):
                    family.add_metric(list(key), value)
            yield family


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))
