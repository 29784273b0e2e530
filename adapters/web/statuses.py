"""Ask a group of actors for their status at once and gather the answers into one Deferred
(GET /watch, the tunnels and services of GET /health, `/ghost tunnel`).

Each ask is a pykka future waited for in the thread pool with a deadline; an actor that is
restarting or does not answer in time is reported as such instead of failing the whole
answer, so one stuck tunnel never hides the others."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed

from adapters.operations.ports import ActorPort, Unavailable
from adapters.twisted_bridge import BridgeReactor, deferred_from_future

ASK_TIMEOUT_S = 2.0


def gather_statuses(
    reactor: BridgeReactor,
    ports: Mapping[str, ActorPort],
    timeout_s: float = ASK_TIMEOUT_S,
) -> Deferred[dict[str, dict[str, Any]]]:
    """{name: status dict}; an unavailable actor gives {"state": <its supervision state>}."""
    names = sorted(ports)
    if not names:
        return succeed({})
    answers: list[Deferred[dict[str, Any]]] = [
        _ask(reactor, ports[name], timeout_s) for name in names
    ]
    gathered: Deferred[list[dict[str, Any]]] = gatherResults(answers)
    return gathered.addCallback(lambda values: dict(zip(names, values, strict=True)))


def _ask(reactor: BridgeReactor, port: ActorPort, timeout_s: float) -> Deferred[dict[str, Any]]:
    try:
        future = port.status()
    except Unavailable:
        return succeed({"state": port.state})

    def unanswered(failure: Any) -> dict[str, Any]:
        return {"state": port.state, "error": type(failure.value).__name__}

    d: Deferred[Any] = deferred_from_future(future, timeout_s, reactor)
    return d.addCallbacks(lambda status: dict(status), unanswered)
