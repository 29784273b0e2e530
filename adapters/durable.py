"""Replacing a file so that a reader, or a crash at any instant, sees the old file or the new
one, complete: the one way every part of the node writes a whole file (the state directory's
files, the transaction journal, unit files, snapshots, the signature journal's compaction).

A temp file in the same directory (a rename is atomic only within one file system) is written,
fsynced, renamed over the target, and the directory fsynced so that the rename itself is
durable. `durable=False` leaves out both fsyncs, for files that are only a cache (projection
snapshots): still never torn, only possibly lost in a power cut."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

PRIVATE = 0o600


def fsync_dir(path: Path) -> None:
    """Make a rename, or a new entry, in directory `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A replacement of `path` being written: write to `.file`, then `commit()` (or
    `discard()`). For writers that must do something between writing and renaming (the
    signature journal renames under its lock); everyone else calls `atomic_write`."""

    def __init__(self, path: Path, mode: int = PRIVATE) -> None:
        self.path = path
        fd, self._temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, mode)
            self.file: BinaryIO = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            os.unlink(self._temp)
            raise
        self._done = False

    def sync(self) -> None:
        """Flush and fsync what was written so far (the slow part, callable before commit)."""
        self.file.flush()
        os.fsync(self.file.fileno())

    def commit(self, durable: bool = True, sync_dir: bool = True) -> None:
        """Rename the temp over the target. `sync_dir=False`: the caller fsyncs the directory
        itself (after releasing a lock, say) with `fsync_dir`."""
        if durable:
            self.sync()
        self.file.close()
        os.replace(self._temp, self.path)
        self._done = True
        if durable and sync_dir:
            fsync_dir(self.path.parent)

    def discard(self) -> None:
        if self._done:
            return
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)
        self._done = True


def atomic_write(path: Path, data: bytes, mode: int = PRIVATE, durable: bool = True) -> None:
    """Replace `path` with `data` (see the module's doc)."""
    replacement = AtomicFile(path, mode)
    try:
        replacement.file.write(data)
        replacement.commit(durable)
    finally:
        replacement.discard()
