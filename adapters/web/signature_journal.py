"""The accepted HMAC signatures on disk (RELIABILITY.md O1): an append-only, CRC-checked file
in the state directory, so that a restarted node still refuses what a previous run accepted."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

from adapters.durable import AtomicFile, atomic_write, fsync_dir
from adapters.statedir import SECRET_FILE_MODE

log = logging.getLogger("ghost.web.auth")

JOURNAL_FLUSH_S = 0.05  # fdatasync batching: at most one per this, off the reactor thread
JOURNAL_COMPACT_MIN = 4096  # records; compacted when dead ones outnumber live ones and this


def signature_digest(signature: str) -> str:
    """What is remembered of a signature: 128 bits of its SHA-256, never the signature itself
    (the file then holds nothing a caller could send)."""
    return hashlib.sha256(signature.encode()).hexdigest()[:32]


class SignatureJournal:
    """The accepted signatures on disk, so that the next run of the node refuses their replay.

    Format: text lines, each ending with the CRC-32 of what precedes it on the line:
    - `s <expires> <digest> <crc>`: a signature (its `signature_digest`), refused until the
      integer unix time `expires` (its timestamp + the window; past it the window refuses it).
    - `m <started> <max_ts> <crc>`: the latest start of any run so far, and the highest
      timestamp ever accepted (what the compaction dropped included): the bounds of the
      signed-before-start rule of the next run (`Authenticator`).

    Crash safety: a record is written (one O_APPEND write(2)) before `append` returns, so before
    the request is answered; from then on it survives a SIGKILL of the process (it is in the
    kernel's page cache). A background thread fdatasyncs at most every JOURNAL_FLUSH_S, so a
    power loss or kernel crash loses at most the last ~50 ms of accepted signatures (the
    signed-before-start rule still covers those after a reboot on a sane clock). Loading
    tolerates a torn last line (a record half-written when the machine died, never answered)
    and any corrupt line (CRC mismatch): skipped with a warning, never an exception.

    Bounded: every load rewrites the file with only the unexpired records (atomically), and a
    run compacts the same way, on the flusher thread, when dead records outnumber the live ones
    (and JOURNAL_COMPACT_MIN): the file holds about twice the memory's capacity at most."""

    def __init__(self, path: Path, fd: int, records: int, started: int, max_ts: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self._records = records  # lines in the current file
        self._started = started  # latest start of any run, this one included
        self._max_ts = max_ts  # highest timestamp accepted by any run, this one included
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._closed = False
        self._flusher: threading.Thread | None = None
        self._torn = False  # a failed write may have left a partial line: start a new one
        self._since: list[bytes] | None = None  # appended while a compaction runs
        self._wants_compaction = False
        # The memory's live signatures, for a compaction (`SignatureMemory` sets it).
        self.snapshot: Callable[[], Mapping[str, float]] | None = None
        self.syncs = 0  # fdatasyncs done (for the tests and the measurements)
        self.compactions = 0

    # --- loading -------------------------------------------------------------------------------
    @classmethod
    def load(
        cls, path: Path, window_s: float, started: float, now: float
    ) -> tuple[SignatureJournal | None, dict[str, float], tuple[float, ...]]:
        """Read `path` (absent is fine), rewrite it with only what is still live, and open it for
        appending. Returns (the journal, digest -> expires of the unexpired signatures, the
        previous runs' bounds: latest start and highest accepted timestamp). The journal is
        None when the file cannot be written (logged): the node then runs with a memory of
        this process only, as before the journal existed, rather than not at all."""
        entries: dict[str, float] = {}
        prev_started: int | None = None
        max_ts: int | None = None
        skipped = 0
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            log.error("cannot read the signature journal %s (%s): starting without it", path, exc)
            data = b""
        lines = data.split(b"\n")
        torn = lines.pop()  # after the last newline: b"" unless the last write was cut short
        if torn:
            skipped += 1
        for line in lines:
            record = _parse(line)
            if record is None:
                if line:
                    skipped += 1
                continue
            kind, a, b = record
            if kind == "s":
                ts = int(a - window_s)
                max_ts = ts if max_ts is None else max(max_ts, ts)
                if a >= now:
                    entries[b] = max(a, entries.get(b, a))
            else:
                prev_started = int(a) if prev_started is None else max(prev_started, int(a))
                if int(b) > 0:  # 0: none accepted yet
                    max_ts = int(b) if max_ts is None else max(max_ts, int(b))
        if skipped:
            log.warning("signature journal %s: %d torn or corrupt line(s) skipped", path, skipped)
        bounds = tuple(float(x) for x in (prev_started, max_ts) if x is not None)
        start = int(started) if prev_started is None else max(prev_started, int(started))
        top = max_ts if max_ts is not None else 0
        try:
            atomic_write(path, _compacted(start, top, entries))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            log.error(
                "cannot write the signature journal %s (%s): HMAC replays are refused only "
                "within this run, and for signatures dated before its start",
                path,
                exc,
            )
            return None, entries, bounds
        return cls(path, fd, 1 + len(entries), start, top), entries, bounds

    # --- appending -----------------------------------------------------------------------------
    def append(self, digest: str, expires: float, window_s: float, live: int) -> None:
        """Write one accepted signature; returns once it is in the file (OSError otherwise).
        The caller holds its memory's lock (see `SignatureMemory._snapshot`); `live` is how
        many signatures it holds: when the dead records outnumber them (and
        JOURNAL_COMPACT_MIN), the flusher thread compacts the file."""
        line = _record("s", expires, digest)
        with self._lock:
            if self._closed:
                raise OSError("the signature journal is closed")
            if self._fd is None:  # a compaction could not reopen it
                self._fd = self._open_for_append()
            if self._torn:
                line = b"\n" + line
            try:
                written = os.write(self._fd, line)
            except OSError:
                self._torn = True
                raise
            if written != len(line):
                self._torn = True
                raise OSError(f"short write to {self.path} ({written} of {len(line)} bytes)")
            self._torn = False
            self._records += 1
            self._max_ts = max(self._max_ts, int(expires - window_s))
            if self._since is not None:
                self._since.append(line.lstrip(b"\n"))
            elif self._records >= 2 * live + JOURNAL_COMPACT_MIN:
                self._wants_compaction = True
        self._dirty.set()
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_loop, name="signature-journal", daemon=True
            )
            self._flusher.start()

    def begin_compaction(self) -> None:
        """Called by the memory under its lock, with the snapshot it hands to `compact`: from
        now on, appended lines are also kept for the new file."""
        with self._lock:
            self._since = []

    def _compact(self) -> None:
        """On the flusher thread, so that the reactor thread never waits for a rewrite (a
        third of a second with 100,000 live signatures): write the new file from a snapshot of
        the memory, without any lock; then, under the lock, add what was appended meanwhile
        and rename it over the old one. A SIGKILL at any point leaves the old file or the new
        one, both complete."""
        if self.snapshot is None:
            return
        live = self.snapshot()  # calls begin_compaction() under the memory's lock
        replacement: AtomicFile | None = None
        try:
            replacement = AtomicFile(self.path, SECRET_FILE_MODE)
            replacement.file.write(_compacted(self._started, self._max_ts, live))
            replacement.sync()  # the slow part, outside the lock
            with self._lock:
                since, self._since = self._since or [], None
                if self._closed:
                    return
                replacement.file.write(b"".join(since))
                replacement.commit(sync_dir=False)
                # From here on, never append to the old (now unlinked) file again.
                old, self._fd = self._fd, None
                if old is not None:
                    os.close(old)
                self._records = 1 + len(live) + len(since)
                self._torn = False
                self.compactions += 1
                self._fd = self._open_for_append()  # if it fails, append() retries
            fsync_dir(self.path.parent)
        except OSError as exc:
            log.error("cannot compact the signature journal %s: %s", self.path, exc)
            with self._lock:
                self._since = None
                self._records = 1 + len(live)  # retry after as many appends as a success would
        finally:
            if replacement is not None:
                with contextlib.suppress(OSError):
                    replacement.discard()

    def _open_for_append(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def _flush_loop(self) -> None:
        while not self._closed:  # close() sets it, then _dirty: checked after every flush
            self._dirty.wait()
            if self._closed:
                return  # close() does the last flush
            time.sleep(JOURNAL_FLUSH_S)  # let a batch gather: one fdatasync for all of it
            self.flush()
            if self._wants_compaction and not self._closed:
                self._wants_compaction = False
                self._compact()

    def flush(self) -> None:
        """fdatasync what was appended so far (the flusher thread does it every
        JOURNAL_FLUSH_S; never on the caller's thread except here)."""
        with self._lock:
            self._dirty.clear()
            # A dup, so that a compaction may close the file while this one syncs.
            fd = os.dup(self._fd) if self._fd is not None else None
        if fd is None:
            return
        try:
            os.fdatasync(fd)
            self.syncs += 1
        except OSError as exc:
            log.error("cannot fdatasync the signature journal %s: %s", self.path, exc)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._closed = True
        self._dirty.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self.flush()
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _record(kind: str, a: float, b: str | float) -> bytes:
    body = f"{kind} {int(a)} {b if isinstance(b, str) else int(b)}".encode("ascii")
    return body + b" %08x\n" % zlib.crc32(body)


_LINE = re.compile(
    rb"(s) ([0-9]{1,12}) ([0-9a-f]{32}) ([0-9a-f]{8})|(m) ([0-9]{1,12}) ([0-9]{1,12}) ([0-9a-f]{8})"
)


def _parse(line: bytes) -> tuple[str, float, str] | None:
    """(kind, a, b) of a well-formed line, None for anything else (torn, corrupt, empty)."""
    m = _LINE.fullmatch(line)
    if m is None:
        return None
    kind, a, b, crc = m.group(1, 2, 3, 4) if m.group(1) else m.group(5, 6, 7, 8)
    if int(crc, 16) != zlib.crc32(line[: -len(crc) - 1]):
        return None
    return kind.decode(), float(int(a)), b.decode()


def _compacted(started: int, max_ts: int, live: Mapping[str, float]) -> bytes:
    lines = [_record("m", started, max_ts)]
    lines += [_record("s", expires, digest) for digest, expires in live.items()]
    return b"".join(lines)
