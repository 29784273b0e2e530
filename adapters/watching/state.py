"""Reading what is on disk now (sha256 per path) without ever leaving the workspace root.

Every path is opened component by component from a directory descriptor with O_NOFOLLOW
(adapters/workspace/dirfd.py), so a directory swapped for a symlink reads as "absent" instead
of pointing the watcher outside the root.

Symlinks are reported as paths, never followed: their sha256 is that of the link text
(`os.readlink`), so retargeting a link is a change and its target is never read. Directories,
fifos, sockets and devices are not files: they read as absent.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from adapters.watching.patterns import PathFilter
from adapters.workspace import dirfd

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in between lstat and open must not block the watcher.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# A file whose mtime/ctime is this recent may still change within the same timestamp tick, so
# its stat signature is not trusted to skip hashing on the next rescan (git's "racy clean").
_RACY_NS = 2_000_000_000
# Errors that mean "nothing readable is there (any more)".
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
_CHUNK = 256 * 1024  # read size for large files (hashlib releases the GIL on big updates)
_TAIL = 4096  # after a short read: the confirmation that EOF was reached


class Unreadable(OSError):
    """The path exists but cannot be read (permissions, I/O): its last known state stands."""


def signature(st: os.stat_result) -> int | None:
    """A cheap fingerprint of a file's stat data, or None while it is too fresh to trust."""
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_NS:
        return None
    return hash((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode))


def read_at(dir_fd: int, name: str) -> tuple[str | None, int | None]:
    """(sha256, stat signature) of the entry `name` in `dir_fd`; (None, None) when absent."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            target = os.readlink(name, dir_fd=dir_fd)
            return hashlib.sha256(os.fsencode(target)).hexdigest(), signature(st)
        if not stat.S_ISREG(mode):  # never opened: a device or a fifo must not be touched
            return None, None
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _ABSENT or exc.errno == errno.EINVAL:  # EINVAL: readlink of a non-link
            return None, None
        raise Unreadable(exc.errno, f"{name}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the stat and the open
            return None, None
        try:
            digest = _sha256_of(fd, st.st_size)
        except OSError as exc:
            raise Unreadable(exc.errno, f"{name}: {exc.strerror}") from exc
        return digest, signature(st)
    finally:
        os.close(fd)


def _sha256_of(fd: int, size: int) -> str:
    """Read to the end with os.read: a small file takes two reads and no file object or
    256 KiB buffer (hashlib.file_digest allocates one per call). The file may have grown since
    fstat: reading goes on until EOF either way."""
    digest = hashlib.sha256()
    want = size + 1 if size < _CHUNK else _CHUNK
    while chunk := os.read(fd, want):
        digest.update(chunk)
        want = _CHUNK if len(chunk) == want else _TAIL
    return digest.hexdigest()


def read(root: Path, rel: str) -> tuple[str | None, int | None]:
    """(sha256, signature) of a workspace-relative path; (None, None) when absent."""
    directory, _, name = rel.rpartition("/")
    for _, result in read_in_dir(root, directory, [name]):
        if isinstance(result, Unreadable):
            raise result
        return result
    return None, None


def read_in_dir(
    root: Path, rel_dir: str, names: Iterable[str]
) -> Iterator[tuple[str, tuple[str | None, int | None] | Unreadable]]:
    """(name, (sha256, signature) or the Unreadable error) for each name in the workspace
    directory `rel_dir` ("" for the root), which is opened once, component by component with
    O_NOFOLLOW: a burst of files in one directory costs one walk, not one per file."""
    try:
        fd = _open_dir(root, rel_dir)
    except OSError as exc:
        # A symlink or file where a directory was, or nothing: nothing of ours is there.
        # Anything else (permissions, I/O): the files' last known state stands.
        absent = isinstance(exc, dirfd.UnsafePathError) or exc.errno in _ABSENT
        for name in names:
            error = Unreadable(exc.errno, f"{rel_dir}/{name}: {exc.strerror}")
            yield name, (None, None) if absent else error
        return
    try:
        for name in names:
            if name in ("", ".", "..") or "/" in name or "\0" in name:
                yield name, (None, None)
                continue
            try:
                yield name, read_at(fd, name)
            except Unreadable as exc:
                yield name, exc
    finally:
        os.close(fd)


def _open_dir(root: Path, rel_dir: str) -> int:
    if not rel_dir:
        return os.open(root, _DIR_FLAGS)
    with dirfd.open_parent(root, rel_dir) as (parent, name):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise dirfd.UnsafePathError(exc.errno, f"{rel_dir} is not a directory") from exc
            raise


def walk_files(
    root: Path, path_filter: PathFilter, rel_dir: str = ""
) -> Iterator[tuple[int, str, str]]:
    """Yield (directory fd, entry name, relative path) for every watched file or symlink below
    `rel_dir`, depth-first, never through a symlink and never into an excluded directory.
    The fd is only valid until the next item is requested."""
    try:
        if rel_dir:
            with dirfd.open_parent(root, rel_dir) as (parent, name):
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        else:
            fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return  # gone, or not a directory any more: nothing to walk
    yield from _walk_fd(fd, rel_dir + "/" if rel_dir else "", path_filter)


def _walk_fd(fd: int, prefix: str, path_filter: PathFilter) -> Iterator[tuple[int, str, str]]:
    try:
        try:
            with os.scandir(fd) as it:
                entries = list(it)  # read fully first: no directory stream stays open below
        except OSError:
            return
        subdirs: list[str] = []
        for entry in entries:
            rel = prefix + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if not path_filter.dir_excluded(rel):
                    subdirs.append(entry.name)
            elif path_filter.file_matches(rel):
                yield fd, entry.name, rel
        del entries
        for name in subdirs:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # vanished or became a symlink since it was listed
            yield from _walk_fd(child, prefix + name + "/", path_filter)
    finally:
        os.close(fd)
