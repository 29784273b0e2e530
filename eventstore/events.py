"""Domain-facing event records: what callers append and what readers get back.

The stored form (msgpack columns, hash chain) lives in `sqlite.py`; these records are the
only thing that crosses the store's boundary.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple


class StreamState(enum.Enum):
    """Expected-version markers for `append` that are not a version number."""

    ANY = "any"  # no check at all
    NO_STREAM = "no_stream"  # the stream must not exist yet

    def __str__(self) -> str:
        return self.value


ANY = StreamState.ANY
NO_STREAM = StreamState.NO_STREAM

# A stream's versions start at 1; an int expected version means "the stream's last version is n"
# (0 is the same as NO_STREAM).
ExpectedVersion = StreamState | int

# The schema version of an event's data when a caller does not say; see upcasting.py.
DEFAULT_SCHEMA = 1


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. `event_id` makes retries idempotent: give the same id again and the
    store answers with the position it already has instead of writing a second copy."""

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=new_event_id)
    schema: int = DEFAULT_SCHEMA


class RecordedEvent(NamedTuple):
    """An event as stored: its global position, its place in its stream, and its hash link.

    A NamedTuple rather than a frozen dataclass: replays build millions of these, and a tuple
    is built several times faster while being just as immutable."""

    position: int
    event_id: str
    stream: str
    version: int
    type: str
    recorded_at: datetime
    data: Mapping[str, Any]
    meta: Mapping[str, Any]
    hash: str
    schema: int = DEFAULT_SCHEMA

    def as_dict(self) -> dict[str, Any]:
        """The event as the API, the SSE feed and `ghost events --json` show it (datetimes
        are left to the JSON encoder)."""
        return {
            "position": self.position,
            "event_id": self.event_id,
            "stream": self.stream,
            "version": self.version,
            "type": self.type,
            "recorded_at": self.recorded_at,
            "data": self.data,
            "meta": self.meta,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What `verify()` found. `first_bad_position` is None when the whole chain holds."""

    checked: int
    last_position: int
    first_bad_position: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_position is None
