"""Availability over the last 24 h, from events alone (GET /health): how often an actor's
restart succeeded, and how much of the time each tunnel was up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from eventstore.events import RecordedEvent
from eventstore.protocol import EventStore

WINDOW = timedelta(hours=24)
ACTOR_TYPES = ("ActorRestarting", "ActorStarted", "ActorFailed", "ActorFatal")
TUNNEL_TYPES = ("TunnelUp", "TunnelDown")


def availability(store: EventStore, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    since = now - WINDOW
    events = [
        e
        for e in store.read_all(types=[*ACTOR_TYPES, *TUNNEL_TYPES])
        if e.recorded_at >= since or e.type in TUNNEL_TYPES
    ]
    return {
        "window_s": int(WINDOW.total_seconds()),
        **_restarts([e for e in events if e.type in ACTOR_TYPES and e.recorded_at >= since]),
        "tunnels": _tunnels([e for e in events if e.type in TUNNEL_TYPES], since, now),
    }


def _restarts(events: Sequence[RecordedEvent]) -> dict[str, Any]:
    """A restart (ActorRestarting) succeeded when the actor's next state event is ActorStarted;
    one still pending at the end of the window is not counted either way."""
    attempts = succeeded = 0
    waiting: dict[str, bool] = {}
    for event in events:
        if event.type == "ActorRestarting":
            if waiting.get(event.stream):
                attempts += 1  # restarting again without having started: that one failed
            waiting[event.stream] = True
        elif waiting.pop(event.stream, False):
            attempts += 1
            succeeded += event.type == "ActorStarted"
    rate = None if attempts == 0 else round(succeeded / attempts, 4)
    return {"restarts": attempts, "restarts_succeeded": succeeded, "restart_success_rate": rate}


def _tunnels(events: Sequence[RecordedEvent], since: datetime, now: datetime) -> dict[str, Any]:
    """Per tunnel: the fraction of the window (from its first event, if later) spent up."""
    out: dict[str, Any] = {}
    by_name: dict[str, list[RecordedEvent]] = {}
    for event in events:
        name = str(event.data.get("name") or event.stream.removeprefix("tunnel-"))
        by_name.setdefault(name, []).append(event)
    for name, seq in by_name.items():
        up_since: datetime | None = None
        up = timedelta()
        start: datetime | None = None
        for event in seq:
            at = max(event.recorded_at, since)
            if event.recorded_at >= since and start is None:
                start = at
            if event.type == "TunnelUp":
                up_since = up_since or at
            elif up_since is not None:
                up += at - up_since
                up_since = None
        if up_since is not None:
            up += now - up_since
        begin = since if seq[0].recorded_at < since else (start or now)
        total = (now - begin).total_seconds()
        out[name] = {"availability": None if total <= 0 else round(up.total_seconds() / total, 4)}
    return out
