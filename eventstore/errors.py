"""The store's own errors: callers catch these, never sqlite3 or msgpack exceptions."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the event store raises."""


class StoreClosedError(StoreError):
    """The store was closed; nothing more can be appended or read."""


class ConcurrencyError(StoreError):
    """An append's expected version did not match the stream's actual version."""

    def __init__(self, stream: str, expected: object, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        shown = actual if actual else "no stream"
        super().__init__(f"stream {stream!r}: expected version {expected}, actual version {shown}")


class DuplicateEventError(StoreError):
    """An event id is already stored with other content, or in another place."""

    def __init__(self, event_id: str, detail: str) -> None:
        self.event_id = event_id
        super().__init__(f"event id {event_id} already stored: {detail}")


class CodecError(StoreError):
    """A value cannot be encoded (an unsupported type) into the stored form."""


class EventTooLargeError(CodecError):
    """An event whose encoded data or meta is larger than readers accept: refused at append,
    so that the store never holds an event that it could not read back."""

    def __init__(self, event_type: str, size: int, limit: int) -> None:
        self.event_type, self.size, self.limit = event_type, size, limit
        super().__init__(f"{event_type}: {size} encoded bytes, over the {limit} byte limit")


class CorruptEventError(StoreError):
    """Stored or received bytes cannot be decoded: corrupt, truncated or hostile."""


class BlobNotFoundError(StoreError):
    """No blob with that sha256 is stored."""
