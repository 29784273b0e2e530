"""The event store: every fact ghost-runner knows is an event appended here.

Public surface: the `EventStore` Protocol, its SQLite backend, the event records and errors.
"""

from eventstore.errors import (
    BlobNotFoundError,
    CodecError,
    ConcurrencyError,
    CorruptEventError,
    DuplicateEventError,
    EventTooLargeError,
    StoreClosedError,
    StoreError,
)
from eventstore.events import ANY, NO_STREAM, ExpectedVersion, NewEvent, RecordedEvent, VerifyReport
from eventstore.protocol import EventStore, Subscription
from eventstore.sqlite import SQLiteEventStore

__all__ = [
    "ANY",
    "NO_STREAM",
    "BlobNotFoundError",
    "CodecError",
    "ConcurrencyError",
    "CorruptEventError",
    "DuplicateEventError",
    "EventStore",
    "EventTooLargeError",
    "ExpectedVersion",
    "NewEvent",
    "RecordedEvent",
    "SQLiteEventStore",
    "StoreClosedError",
    "StoreError",
    "Subscription",
    "VerifyReport",
]
