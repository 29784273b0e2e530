"""The workspace sandbox: which paths a patch may read or write, checked on the real file
system (symlinks resolved with realpath, not lexically), plus a TOCTOU-safe read.

Decisions:
- A symlink AS the target file is refused (reason "symlink"), even one pointing inside: the
  writer renames a temp file over the name, which would silently turn the link into a file,
  and reading through it would patch another file than the one named.
- Symlinked DIRECTORIES on the way are resolved; the path is accepted when the real location
  is inside the workspace and not excluded there, and every later step uses the resolved
  relative path (so the writer, which refuses symlinks, sees plain directories).
- Only regular files: directories, FIFOs and devices are refused ("not_a_file").
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adapters.patching.model import SandboxViolation
from adapters.patching.pathrules import ExcludeRules, IncludeRules, normalize_relative
from adapters.patching.text import is_binary
from adapters.workspace.dirfd import UnsafePathError, open_parent

MIB = 1024 * 1024
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclass(frozen=True, slots=True)
class FileIdentity:
    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def same_file(self, other: FileIdentity) -> bool:
        return (self.dev, self.ino) == (other.dev, other.ino)


@dataclass(frozen=True, slots=True)
class CheckedPath:
    requested: str
    relative: str  # canonical and resolved: no symlink, no "." or ".." component
    root: Path
    identity: FileIdentity | None  # None: the file does not exist (yet)

    @property
    def absolute(self) -> Path:
        return self.root / self.relative


@dataclass(frozen=True, slots=True)
class CheckedRead:
    data: bytes
    identity: FileIdentity


class Sandbox:
    def __init__(
        self,
        root: Path,
        exclude: Sequence[str] = (),
        max_file_bytes: int = MIB,
        include: Sequence[str] = (),
    ) -> None:
        self.root = Path(os.path.realpath(root))
        self._root_str = str(self.root)
        self._root_prefix = self._root_str.rstrip("/") + "/"
        self.rules = ExcludeRules(exclude)
        self.include = IncludeRules(include)
        self.max_file_bytes = max_file_bytes

    def check(self, path: str, for_write: bool = False) -> Path:
        """The resolved absolute path, or SandboxViolation. `for_write` states the caller's
        intent; the rules are the same today (a missing file or parent is fine either way)."""
        return self.inspect(path, for_write=for_write).absolute

    def inspect(self, path: str, *, for_write: bool = False) -> CheckedPath:
        # Plain strings, not pathlib, on this path: it runs for every file of every patch.
        relative = normalize_relative(path)
        self._not_excluded(path, relative)
        real_relative = self._real_relative(path, relative)
        if real_relative != relative:
            self._not_excluded(path, real_relative)
        resolved = f"{self._root_str}/{real_relative}"
        try:
            st = os.lstat(resolved)
        except FileNotFoundError:
            return CheckedPath(path, real_relative, self.root, None)
        except NotADirectoryError as exc:
            raise SandboxViolation(path, "not_a_directory", "a parent is not a directory") from exc
        except OSError as exc:
            raise SandboxViolation(path, "unreadable", os.strerror(exc.errno or 0)) from exc
        if stat.S_ISLNK(st.st_mode):
            raise SandboxViolation(path, "symlink", "the file is a symlink; patch its target")
        if not stat.S_ISREG(st.st_mode):
            raise SandboxViolation(path, "not_a_file", "not a regular file")
        if st.st_size > self.max_file_bytes:
            raise SandboxViolation(
                path, "too_large", f"{st.st_size} bytes, over max_file_bytes={self.max_file_bytes}"
            )
        return CheckedPath(path, real_relative, self.root, FileIdentity.of(st))

    def _real_relative(self, path: str, relative: str) -> str:
        """`relative` with its directories resolved (symlinks followed), or SandboxViolation
        when they lead outside the root. The root is real already, so when every directory
        below it on the way is a plain one (the usual case) that is `relative` itself, found
        with one lstat per level; anything else (a symlink, a missing level) goes to
        realpath."""
        directory, _, name = relative.rpartition("/")
        current = self._root_str
        for part in directory.split("/") if directory else ():
            current = f"{current}/{part}"
            try:
                plain = stat.S_ISDIR(os.lstat(current).st_mode)
            except OSError:
                plain = False
            if not plain:
                break
        else:
            return relative
        try:
            parent = os.path.realpath(f"{self._root_str}/{directory}")
        except OSError as exc:  # a symlink on the way was swapped while realpath walked it
            raise SandboxViolation(
                path, "changed_since_check", "the path changed while it was checked; send again"
            ) from exc
        if parent == self._root_str:
            return name
        if not parent.startswith(self._root_prefix):
            raise SandboxViolation(path, "symlink_escape", "a symlink leads outside the workspace")
        return f"{parent[len(self._root_prefix) :]}/{name}"

    def read(self, path: str, checked: CheckedPath | None = None) -> bytes | None:
        """The current bytes (None when absent), read without following a swapped-in symlink;
        binary or oversized files are violations. `checked`: this path's inspection, just
        made (the file read must still be the one inspected)."""
        if checked is None:
            checked = self.inspect(path)
        if checked.identity is None:
            return None
        got = read_file_checked(
            self.root, checked.relative, max_bytes=self.max_file_bytes, expected=checked.identity
        )
        if got is None:
            raise SandboxViolation(path, "changed_since_check", "the file disappeared")
        if is_binary(got.data):
            raise SandboxViolation(path, "binary", "binary file (not UTF-8 text, or NUL bytes)")
        return got.data

    def check_content(self, path: str, data: bytes) -> None:
        if len(data) > self.max_file_bytes:
            raise SandboxViolation(
                path, "too_large", f"new content of {len(data)} bytes, over {self.max_file_bytes}"
            )
        if is_binary(data):
            raise SandboxViolation(path, "binary", "new content is not UTF-8 text")

    def _not_excluded(self, path: str, relative: str) -> None:
        pattern = self.rules.excluded_by(relative)
        if pattern is not None:
            raise SandboxViolation(path, "excluded", f"excluded by {pattern!r}")
        if not self.include.includes(relative):
            shown = ", ".join(self.include.patterns[:8])
            raise SandboxViolation(
                path,
                "excluded",
                f"not in the workspace's include ({shown}); the operator can add a pattern "
                "to [[workspace]] include in the config",
            )


def read_file_checked(
    root: Path, relative: str, *, max_bytes: int, expected: FileIdentity | None = None
) -> CheckedRead | None:
    """Read `relative` (canonical, resolved) under `root` through directory descriptors with
    O_NOFOLLOW on every component, then check the opened file is the one that was checked:
    same (st_dev, st_ino) as `expected`. A symlink or another file swapped in after the check
    is a SandboxViolation("changed_since_check"). None when absent (and nothing expected)."""
    try:
        with open_parent(root, relative) as (dir_fd, name):
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if expected is not None:
            raise SandboxViolation(
                relative, "changed_since_check", "the file disappeared"
            ) from None
        return None
    except OSError as exc:  # UnsafePathError, or ELOOP on the final component
        if isinstance(exc, UnsafePathError) or exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SandboxViolation(
                relative, "changed_since_check", "a symlink appeared on the path since the check"
            ) from exc
        raise SandboxViolation(relative, "unreadable", os.strerror(exc.errno or 0)) from exc
    try:
        st = os.fstat(fd)
        identity = FileIdentity.of(st)
        if not stat.S_ISREG(st.st_mode):
            raise SandboxViolation(relative, "not_a_file", "not a regular file")
        if expected is not None and not identity.same_file(expected):
            raise SandboxViolation(
                relative, "changed_since_check", "another file was put in place since the check"
            )
        os.set_blocking(fd, True)
        data = _read_up_to(fd, max_bytes + 1, st.st_size)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise SandboxViolation(relative, "too_large", f"over max_file_bytes={max_bytes}")
    return CheckedRead(data, identity)


def _read_up_to(fd: int, limit: int, size_hint: int) -> bytes:
    """Up to `limit` bytes (the file may grow or shrink while it is read)."""
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        chunk = os.read(fd, min(limit - total, max(size_hint + 1, 65536)))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
