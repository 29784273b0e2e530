"""All-or-nothing, crash-safe changes to several workspace files (SPEC §5).

The order of one transaction, and why:
1. every before and after content goes into the store as a blob, so recovery can restore
   either side even if the process dies at any later instant;
2. a journal naming the transaction and each file's before/after sha256 is written and fsynced:
   from here on a crash is resolved by `recover()`. A caller whose own durable event already
   names all of that (PatchFlow's PatchApplying, committed with the blobs in one fsync) passes
   a `CallerJournal`, and resolves a crashed transaction with `resolve()` from that event;
3. new contents are written to temp files beside their targets and fsynced, and every target is
   checked to still hold exactly its before content (a file changed on disk since the patch
   was checked aborts the whole transaction, nothing written);
4. temps are renamed over their targets (deletions renamed aside) and each directory fsynced;
5. `commit()` runs: the caller appends its "applied" event there. With a journal file that
   event is the commit point: recovery rolls the transaction forward only if it was
   committed, and back to every before content otherwise. A caller journaling in its own
   events (`CallerJournal`) may instead take the renames as the commit point (PatchFlow
   does: all files at their after side roll forward, see its `_recover_apply`);
6. the journal is removed;
7. the replaced and deleted files' old inodes are unlinked (see "Leftovers").

Leftovers. Freeing a file's blocks is slow on some file systems (~0.5 ms a file here: ext4
with `discard`), and a rename over a file frees the one it replaces. So before that rename the
old file gets a second name, `.<name>.ghost-<id>.old.tmp` (a deletion is renamed to it), the
rename frees nothing, and the old names are unlinked after the commit: at the end of `apply()`,
or with `reap_later` when the caller calls `reap()` -- PatchFlow does once it has answered.
Recovery removes the old names of the transactions it resolves; `discard_leftovers()` removes
those of a committed transaction whose process died before reaping them.

Paths are walked with directory descriptors and O_NOFOLLOW (see dirfd.py), so a symlink swapped
into the workspace after the sandbox check makes the transaction fail instead of escaping.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from adapters.workspace import dirfd
from adapters.workspace.changes import (
    BlobStore,
    CallerJournal,
    FileChange,
    FileChangedError,
    Recovery,
    sha256_or_none,
)
from adapters.workspace.journal import JournalFiles
from adapters.workspace.names import check_txn_id, old_name, second_name, temp_name

log = logging.getLogger(__name__)

_DEFAULT_MODE = 0o644


@dataclass(slots=True)
class _Slot:
    change: FileChange
    dir_fd: int
    name: str
    temp: str | None
    temp_fd: int | None = None  # open until named (unnamed temps) or fsynced
    old: str | None = None  # the second name of the old file, once given (see Leftovers)
    mode: int = 0o644
    named: bool = False  # the temp exists under its name `temp`


# fsyncs run in parallel for a multi-file patch: the file system folds concurrent fsyncs into
# fewer journal commits (10 files: ~9 ms one after the other, ~4 ms together, on ext4 here).
_MAX_SYNC_THREADS = 8
# What an O_TMPFILE open says where the file system (or kernel) has none.
_NO_UNNAMED = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT})


class FileTransactions:
    """Runs transactions on one workspace; the journal lives in the node's state directory."""

    def __init__(
        self, root: Path, journal_dir: Path, blobs: BlobStore, reap_later: bool = False
    ) -> None:
        """`reap_later`: the old files a transaction replaced are unlinked by `reap()`, which
        the owner calls once it has answered, not before `apply()` returns (see Leftovers)."""
        self.root = root
        self.reap_later = reap_later
        self.journal_dir = journal_dir
        self.journals = JournalFiles(journal_dir, root, blobs)
        self.blobs = blobs
        self._syncer: ThreadPoolExecutor | None = None  # made at the first multi-file apply
        self._leftovers: list[str] = []  # old names to unlink (relative paths), see Leftovers
        self._unnamed: bool | None = None  # whether O_TMPFILE works here, probed once

    def close(self) -> None:
        """Unlink what is left, stop the fsync threads (the owner calls this when it stops)."""
        self.reap()
        if self._syncer is not None:
            self._syncer.shutdown(wait=True)
            self._syncer = None

    def reap(self) -> None:
        """Unlink the old files of the transactions applied since (with `reap_later`)."""
        leftovers, self._leftovers = self._leftovers, []
        for path in leftovers:
            try:
                with dirfd.open_parent(self.root, path) as (fd, name):
                    dirfd.unlink_quietly(fd, name)
            except OSError as exc:  # the directory went away or was swapped: nothing to free
                log.warning("could not remove %s: %s", path, exc)

    def discard_leftovers(self, txn_id: str, paths: Sequence[str]) -> None:
        """Unlink the old names a committed transaction on `paths` may have left behind when
        its process died before reaping them (idempotent)."""
        check_txn_id(txn_id)
        for path in paths:
            with contextlib.suppress(OSError), dirfd.open_parent(self.root, path) as (fd, name):
                dirfd.unlink_quietly(fd, old_name(name, txn_id))

    def _fsync_all(self, fds: Sequence[int]) -> None:
        if len(fds) <= 1:
            for fd in fds:
                os.fsync(fd)
            return
        for _ in self._pool().map(os.fsync, fds):  # re-raises the first failure
            pass

    # --- applying ------------------------------------------------------------------------------
    def apply(
        self,
        txn_id: str,
        changes: Sequence[FileChange],
        commit: Callable[[], object],
        journal: CallerJournal | None = None,
    ) -> None:
        """Apply every change or none. Raises FileChangedError (nothing written),
        dirfd.UnsafePathError or OSError (nothing left changed), or whatever `commit` raises
        (the files are restored to before first). `journal`: who makes steps 1 and 2
        durable: this class, in a journal file (None, the default), or the caller
        (`CallerJournal`, see there). The old files are unlinked before returning, or by the
        caller's `reap()` when the transactions were made with `reap_later`."""
        check_txn_id(txn_id)
        own_journal = journal is None
        record = None if journal is None else journal.record
        self.reap()  # old names share a prefix per patch: none may be left from its last one
        if own_journal:
            for change in changes:
                for content in (change.before, change.after):
                    if content is not None:
                        self.blobs.put_blob(content)
            self.journals.write(txn_id, changes)
        with contextlib.ExitStack() as stack:
            slots: list[_Slot] = []
            directories: dict[str, int] = {}  # one descriptor per directory, to fsync once
            stack.callback(_close_temps, slots)
            try:
                if record is not None and self._may_overlap(changes):
                    self._stage_alongside(record, stack, txn_id, changes, slots, directories)
                else:
                    if record is not None:
                        record()
                    self._stage(stack, txn_id, changes, slots, directories, unnamed_only=False)
                for slot in slots:
                    self._name_temp(slot)
            except BaseException:
                for slot in slots:
                    if slot.temp is not None and slot.named:
                        dirfd.unlink_quietly(slot.dir_fd, slot.temp)
                if own_journal:
                    self.journals.clear(txn_id)
                raise
            _close_temps(slots)
            # From the first rename on, failure means restoring the before side.
            try:
                for slot in slots:
                    if slot.temp is not None:
                        if slot.change.before is not None:
                            slot.old = second_name(slot.dir_fd, slot.name, txn_id)
                        os.replace(
                            slot.temp, slot.name, src_dir_fd=slot.dir_fd, dst_dir_fd=slot.dir_fd
                        )
                    elif slot.change.before is not None:
                        slot.old = old_name(slot.name, txn_id)
                        try:
                            os.rename(
                                slot.name, slot.old, src_dir_fd=slot.dir_fd, dst_dir_fd=slot.dir_fd
                            )
                        except FileNotFoundError:
                            slot.old = None  # gone already, as a deletion wants
                self._fsync_all(list(directories.values()))
                commit()
            except BaseException:
                log.warning("transaction %s failed after writing; restoring", txn_id)
                self._restore(txn_id, changes, to_after=False)
                if own_journal:
                    self.journals.clear(txn_id)
                raise
        self._leftovers = [
            posixpath.join(posixpath.dirname(s.change.path), s.old)
            for s in slots
            if s.old is not None
        ]
        if not self.reap_later:
            self.reap()  # before the journal goes: a crash until then is recovered, old names too
        if own_journal:
            self.journals.clear(txn_id)

    # --- staging: the new contents, fsynced, before any rename -------------------------------
    def _stage(
        self,
        stack: contextlib.ExitStack,
        txn_id: str,
        changes: Sequence[FileChange],
        slots: list[_Slot],
        directories: dict[str, int],
        unnamed_only: bool,
    ) -> None:
        """Check every file still holds its before side and write its after side to a temp
        (unnamed where possible), then fsync them all. `unnamed_only`: a file that cannot
        have an unnamed temp is left without one, for `_name_temp` to write under its name."""
        for change in changes:
            fd, name = stack.enter_context(
                dirfd.open_parent(self.root, change.path, create=change.after is not None)
            )
            slot = _Slot(change, fd, name, None)
            slots.append(slot)
            directories.setdefault(posixpath.dirname(change.path), fd)
            actual = dirfd.read_at(fd, name)
            if actual != change.before:
                raise FileChangedError(
                    change.path, sha256_or_none(change.before), sha256_or_none(actual)
                )
            if change.after is None:
                continue
            slot.temp = temp_name(name, txn_id)
            slot.mode = dirfd.mode_at(fd, name) or _DEFAULT_MODE
            if self._unnamed_ok():
                try:
                    slot.temp_fd = dirfd.create_unnamed(fd, change.after, slot.mode)
                    continue
                except OSError as exc:
                    if exc.errno not in _NO_UNNAMED:
                        raise  # a full disk is not worth a second try under a name
                    # e.g. another file system mounted inside the workspace
                    log.debug("no unnamed temp in the directory of %s: %s", change.path, exc)
            if unnamed_only:
                continue
            slot.named = True  # from the open on: a failed write must still be unlinked
            slot.temp_fd = dirfd.create_temp(fd, slot.temp, change.after, slot.mode)
        self._fsync_all([s.temp_fd for s in slots if s.temp_fd is not None])

    def _stage_alongside(
        self,
        record: Callable[[], object],
        stack: contextlib.ExitStack,
        txn_id: str,
        changes: Sequence[FileChange],
        slots: list[_Slot],
        directories: dict[str, int],
    ) -> None:
        """The caller's durable record and the staging of the new contents wait on two fsyncs
        that need not follow each other: run them in two threads (a 1-file apply spent ~1 ms
        less in the kernel here). Safe because staging changes nothing that outlives the
        process: unnamed temps only, no new directories (see _may_overlap)."""
        staged = self._pool().submit(self._stage, stack, txn_id, changes, slots, directories, True)
        try:
            record()
        except BaseException:
            futures.wait([staged])  # its temps are closed (and vanish) by the caller
            raise
        staged.result()

    def _may_overlap(self, changes: Sequence[FileChange]) -> bool:
        # An added file may need directories made, and a made directory would outlive a crash
        # before the record that names it.
        return self._unnamed_ok() and all(c.before is not None for c in changes)

    def _unnamed_ok(self) -> bool:
        if self._unnamed is None:
            self._unnamed = dirfd.unnamed_supported(self.root)
        return self._unnamed

    def _name_temp(self, slot: _Slot) -> None:
        """Give a staged temp its name beside its target (the record is durable by now), or
        write the named temp a slot staged without one still needs."""
        if slot.temp is None or slot.named:
            return
        assert slot.change.after is not None
        if slot.temp_fd is not None:
            try:
                dirfd.link_unnamed(slot.temp_fd, slot.dir_fd, slot.temp)
                slot.named = True
                return
            except OSError as exc:  # no /proc: write it again under its name
                log.debug("could not name the temp of %s: %s", slot.change.path, exc)
                os.close(slot.temp_fd)
                slot.temp_fd = None
        slot.named = True  # from the open on: a failed write must still be unlinked
        dirfd.write_temp(slot.dir_fd, slot.temp, slot.change.after, slot.mode)

    def _pool(self) -> ThreadPoolExecutor:
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(_MAX_SYNC_THREADS, thread_name_prefix="txn-fsync")
        return self._syncer

    # --- recovery ------------------------------------------------------------------------------
    def pending(self) -> list[str]:
        """Transactions whose journal is still there (the process died during them)."""
        return self.journals.pending()

    def recover(self, committed: Callable[[str], bool]) -> list[Recovery]:
        """Resolve every leftover journal: forward if `committed(txn_id)`, else back to before.
        Idempotent: a crash during recovery is resolved by the next recovery."""
        done = []
        for txn_id in self.pending():
            changes = self.journals.read(txn_id)
            forward = committed(txn_id)
            kept = self._restore(txn_id, changes, to_after=forward, recovering=True)
            self.journals.clear(txn_id)
            done.append(
                Recovery(
                    txn_id,
                    "applied" if forward else "rolled_back",
                    tuple(c.path for c in changes),
                    kept,
                )
            )
        return done

    def resolve(self, txn_id: str, changes: Sequence[FileChange], forward: bool) -> Recovery:
        """Resolve one crashed transaction applied with `journal=False`, from the caller's
        record of it: every file to its after side if `forward`, else to its before side
        (files edited since are kept, as in `recover`). Idempotent."""
        check_txn_id(txn_id)
        kept = self._restore(txn_id, changes, to_after=forward, recovering=True)
        return Recovery(
            txn_id,
            "applied" if forward else "rolled_back",
            tuple(c.path for c in changes),
            kept,
        )

    def holds_after(self, changes: Sequence[FileChange]) -> bool:
        """Whether every file already holds its after side: every rename of the transaction
        happened (a crash came after them)."""
        for change in changes:
            try:
                with dirfd.open_parent(self.root, change.path) as (fd, name):
                    current = dirfd.read_at(fd, name)
            except FileNotFoundError:
                current = None
            if current != change.after:
                return False
        return True

    def _restore(
        self,
        txn_id: str,
        changes: Sequence[FileChange],
        to_after: bool,
        recovering: bool = False,
    ) -> tuple[str, ...]:
        """Bring every file to one side. When recovering (the node may have been down for a
        while), a file that holds neither side was edited by someone since: it is kept as it
        is and returned, never overwritten."""
        kept = []
        for change in changes:
            wanted = change.after if to_after else change.before
            other = change.before if to_after else change.after
            with dirfd.open_parent(self.root, change.path, create=wanted is not None) as (fd, name):
                dirfd.unlink_quietly(fd, temp_name(name, txn_id))
                dirfd.unlink_quietly(fd, old_name(name, txn_id))
                current = dirfd.read_at(fd, name)
                if current == wanted:
                    continue
                if recovering and current != other:
                    log.warning("recovery of %s: %s was edited since; left as is", txn_id, name)
                    kept.append(change.path)
                    continue
                if wanted is None:
                    dirfd.unlink_quietly(fd, name)
                else:
                    temp = temp_name(name, txn_id)
                    mode = dirfd.mode_at(fd, name) or _DEFAULT_MODE
                    dirfd.write_temp(fd, temp, wanted, mode)
                    os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
                os.fsync(fd)
        return tuple(kept)


def _close_temps(slots: Sequence[_Slot]) -> None:
    for slot in slots:
        if slot.temp_fd is not None:
            os.close(slot.temp_fd)
            slot.temp_fd = None
