"""The typed interface every event store backend implements.

The contract tests in tests/eventstore/test_contract.py are written against this Protocol
only, and parametrised by backend, so a second backend (PostgreSQL, say) runs the very same
suite.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Protocol

from eventstore.events import ANY, ExpectedVersion, NewEvent, RecordedEvent, VerifyReport


class Subscription(Protocol):
    """Catch-up then live: every event after the start position, in order, exactly once."""

    @property
    def position(self) -> int:
        """The position of the last event handed out (the start position before any)."""
        ...

    def poll(self, timeout: float | None = None, max_count: int = 1000) -> list[RecordedEvent]:
        """The next events, waiting up to `timeout` seconds (None: forever) for at least one.
        Returns [] on timeout or once closed."""
        ...

    @property
    def committed(self) -> int:
        """The store's last committed position, which may be ahead of `position`."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Wait, without reading, until an event is committed past `position` (True), or the
        timeout ends or the subscription closes (False)."""
        ...

    def close(self) -> None: ...

    def __iter__(self) -> Iterator[RecordedEvent]:
        """Blocks for new events until `close()` is called (from any thread)."""
        ...


class EventStore(Protocol):
    # --- writing -------------------------------------------------------------------------
    def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        blobs: Sequence[bytes] = (),
        durable: bool = True,
    ) -> list[int]:
        """Append durably; returns the events' global positions once committed.
        Raises ConcurrencyError or DuplicateEventError; appends from other callers in the same
        group commit are not affected by this one's failure. `blobs` are stored (by sha256) in
        the same transaction, so events can name contents that are certainly there.

        `durable=False`: committed (visible, and kept if the process dies) but not forced to
        the disk, so a power loss may undo it until the next durable append, which makes it
        durable too. For an event a later durable event of the same flow always follows."""
        ...

    def append_async(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        blobs: Sequence[bytes] = (),
    ) -> Future[list[int]]:
        """The same as `append` without waiting: the Future resolves after the commit."""
        ...

    def put_blob(self, content: bytes) -> str:
        """Store content once under its sha256 (hex), which is returned."""
        ...

    def save_checkpoint(self, subscriber: str, position: int) -> None: ...

    # --- reading ---------------------------------------------------------------------------
    def read_stream(
        self, stream: str, after_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]: ...

    def read_all(
        self,
        after: int = 0,
        limit: int | None = None,
        types: Sequence[str] | None = None,
        streams: Sequence[str] | None = None,
    ) -> list[RecordedEvent]: ...

    def iter_all(self, after: int = 0, batch: int = 10_000) -> Iterator[RecordedEvent]:
        """Every event after `after`, read in pages (for replays over millions of events)."""
        ...

    def last_position(self) -> int: ...

    def stream_version(self, stream: str) -> int:
        """The stream's last version, 0 when it does not exist."""
        ...

    def streams(self, prefix: str, limit: int = 100) -> list[str]:
        """The names of streams that start with `prefix`, in order, at most `limit` (an id
        typed in part: `patch-4730` finds `patch-4730e1...`)."""
        ...

    def get_blob(self, sha256: str) -> bytes: ...

    def has_blob(self, sha256: str) -> bool: ...

    def load_checkpoint(self, subscriber: str) -> int:
        """The subscriber's saved position, 0 when it never saved one."""
        ...

    def subscribe(self, after: int = 0, types: Sequence[str] | None = None) -> Subscription: ...

    def verify(self) -> VerifyReport: ...

    # --- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Flush pending appends, stop the writer, close every connection. Idempotent."""
        ...
