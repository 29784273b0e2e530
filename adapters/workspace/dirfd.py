"""Walking a workspace through directory file descriptors, never following a symlink.

Paths were checked by the sandbox, but a directory can be swapped for a symlink after the
check. Opening every component with O_NOFOLLOW relative to its parent's descriptor (openat)
means a swapped-in symlink makes the operation fail instead of writing outside the workspace.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)  # Linux only


class UnsafePathError(OSError):
    """A component of the path is a symlink or not a directory (changed since the check?)."""


def split(relative: str) -> tuple[list[str], str]:
    # Checked on the raw text: PurePosixPath would quietly normalise "a//b/./c".
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\0" in relative:
        raise UnsafePathError(errno.EINVAL, f"not a plain relative path: {relative!r}")
    return list(parts[:-1]), parts[-1]


@contextmanager
def open_parent(root: Path, relative: str, create: bool = False) -> Iterator[tuple[int, str]]:
    """Yield (descriptor of the file's directory, file name); with `create`, make missing
    directories on the way (0o755, as an editor would)."""
    directories, name = split(relative)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for component in directories:
            try:
                child = os.open(component, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(component, 0o755, dir_fd=fd)
                os.fsync(fd)  # the new directory entry must survive a crash too
                child = os.open(component, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePathError(
                        exc.errno, f"{relative}: {component!r} is a symlink or not a directory"
                    ) from exc
                raise
            os.close(fd)
            fd = child
        yield fd, name
    finally:
        os.close(fd)


def read_at(dir_fd: int, name: str) -> bytes | None:
    """The file's bytes, None when absent; refuses a symlink in place of the file."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(exc.errno, f"{name!r} is a symlink") from exc
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def mode_at(dir_fd: int, name: str) -> int | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode & 0o7777
    except FileNotFoundError:
        return None


def write_temp(dir_fd: int, name: str, content: bytes, mode: int) -> None:
    """Create `name` (which must not exist) with `content`, fsynced before returning."""
    fd = create_temp(dir_fd, name, content, mode)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_temp(dir_fd: int, name: str, content: bytes, mode: int) -> int:
    """Create `name` (which must not exist) with `content`, NOT fsynced: the open descriptor
    is returned so the caller can fsync several files at once, then close it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return _fill(os.open(name, flags, mode, dir_fd=dir_fd), content, mode)


def create_unnamed(dir_fd: int, content: bytes, mode: int) -> int:
    """An unnamed file (O_TMPFILE) in the directory holding `content`, NOT fsynced. It has no
    name until `link_unnamed`: if the process dies first, the file system reclaims it and
    nothing is left behind. Raises OSError where the file system (or the OS) has none."""
    if not _O_TMPFILE:
        raise OSError(errno.EOPNOTSUPP, "no O_TMPFILE here")
    fd = os.open(".", _O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    return _fill(fd, content, mode)


def link_unnamed(fd: int, dir_fd: int, name: str) -> None:
    """Give an unnamed file a name in the directory (through /proc, as open(2) documents for
    O_TMPFILE: linkat with AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH)."""
    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)


def unnamed_supported(directory: Path) -> bool:
    """Whether unnamed files can be made and named in `directory`."""
    try:
        fd = os.open(directory, _DIR_FLAGS)
    except OSError:
        return False
    try:
        os.close(create_unnamed(fd, b"", 0o600))
    except OSError:
        return False
    finally:
        os.close(fd)
    return os.path.isdir("/proc/self/fd")


def _fill(fd: int, content: bytes, mode: int) -> int:
    try:
        view = memoryview(content)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fchmod(fd, mode)  # the umask must not change an existing file's mode
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlink_quietly(dir_fd: int, name: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
