"""Bounded capture of one output stream of a child process.

A child can print without end (a dev server, a test in a loop), so nothing here grows without
a bound: the tail is a ring of the last `tail_bytes`, the full copy stops at `keep_bytes`, and a
line longer than `max_line_bytes` is handed to the callback in pieces.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

LineCallback = Callable[[str], None]


class StreamCapture:
    """Fed raw chunks by a reader thread; read from any thread."""

    def __init__(
        self,
        *,
        tail_bytes: int = 64 * 1024,
        keep_bytes: int = 0,
        max_line_bytes: int = 8 * 1024,
        on_line: LineCallback | None = None,
    ) -> None:
        self._tail_bytes = tail_bytes
        self._keep_bytes = keep_bytes
        self._max_line = max_line_bytes
        self._on_line = on_line
        self._lock = threading.Lock()
        self._tail = bytearray()
        self._full = bytearray()
        self._partial = bytearray()
        self.total_bytes = 0
        self.truncated = False  # True once the full copy stopped at keep_bytes

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            self.total_bytes += len(chunk)
            self._tail += chunk
            if len(self._tail) > self._tail_bytes:
                del self._tail[: len(self._tail) - self._tail_bytes]
            room = self._keep_bytes - len(self._full)
            if room > 0:
                self._full += chunk[:room]
            if len(chunk) > max(room, 0):
                self.truncated = True
        if self._on_line is not None:
            self._split_lines(chunk)

    def close(self) -> None:
        """End of stream: a last line without a newline still counts."""
        if self._partial:
            self._emit(bytes(self._partial))
            self._partial.clear()

    def tail(self) -> bytes:
        with self._lock:
            return bytes(self._tail)

    def tail_text(self) -> str:
        return self.tail().decode("utf-8", errors="replace")

    def full(self) -> bytes:
        with self._lock:
            return bytes(self._full)

    def last_lines(self, n: int) -> list[str]:
        lines = self.tail_text().splitlines()
        return lines[-n:] if n > 0 else []

    def _split_lines(self, chunk: bytes) -> None:
        # Only the reader thread calls feed(), so _partial needs no lock.
        self._partial += chunk
        while True:
            newline = self._partial.find(b"\n")
            if newline < 0 or newline > self._max_line:
                if len(self._partial) <= self._max_line:
                    return
                newline = self._max_line  # an endless line: hand it over in bounded pieces
                piece, cut = bytes(self._partial[:newline]), newline
            else:
                piece, cut = bytes(self._partial[:newline]), newline + 1
            del self._partial[:cut]
            self._emit(piece)

    def _emit(self, line: bytes) -> None:
        assert self._on_line is not None
        text = line.decode("utf-8", errors="replace").rstrip("\r")
        try:
            self._on_line(text)
        except Exception:
            # A failing callback must not stop the reader: the child would block on a full pipe.
            log.exception("output line callback failed")
