"""The node's state directory: permissions, the single-instance lock, node.json, the run marker,
the token.

Layout of `<state>/`:
- `lock`       flock'ed for the node's lifetime; holds the holder's pid (for the error message).
               Never deleted: deleting a lock file lets two processes lock two different inodes.
- `run`        `{"pid", "started_at"}`, written at start, removed at clean stop. Found at the next
               start (under the lock, so its writer is dead) it means the previous run ended
               uncleanly (SIGKILL, power loss, OOM): `open()` reports it as `PreviousRun`.
- `node.json`  `{"pid", "host", "port", "url", "started_at"}` once the node serves (SPEC §3);
               removed at clean stop, and at the next start when stale.
- `token`      the API token, mode 0600, generated on first run unless GHOST_TOKEN is given.
- `signatures` the HMAC signatures accepted and not yet expired (digests + expiry), journaled
               before each answer so that the next run refuses their replay, whatever the clock
               did in between (adapters/web/auth.py SignatureJournal). Compacted at each start.
- `logs/`      log files.

Permissions, decided: the directory must be 0700 because it holds the token. When it exists with
looser permissions and belongs to us, `open()` tightens it to 0700 and logs a warning (the fix is
unambiguous and safe); when it belongs to another user it refuses (`StateDirError`): another user
could read or replace the token. Same for the token file (0600).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from adapters.durable import PRIVATE, atomic_write, fsync_dir

__all__ = [
    "PreviousRun",
    "StateDir",
    "StateDirError",
    "StateDirLocked",
    "Token",
    "default_log_file",
]

log = logging.getLogger(__name__)

DIR_MODE = 0o700
SECRET_FILE_MODE = PRIVATE


def default_log_file(state_dir: Path) -> Path:
    """Where the node logs when its config names no [log] file (`ghost logs` reads it)."""
    return state_dir / "logs" / "ghost-node.log"


class StateDirError(Exception):
    """The state directory cannot be used (ownership, permissions, I/O)."""


class StateDirLocked(StateDirError):
    """Another process holds the state directory's lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"state directory {path} is in use by {holder}: "
            "a node is already running on it (stop it, or use another --state-dir)"
        )


@dataclass(frozen=True)
class PreviousRun:
    """The previous run of a node on this directory, which did not stop cleanly."""

    pid: int | None
    started_at: str | None


@dataclass(frozen=True)
class Token:
    value: str
    source: Literal["env", "file", "generated"]

    def __repr__(self) -> str:  # never print the secret by accident
        return f"Token(source={self.source!r})"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StateDir:
    """Use: `sd = StateDir(path); previous = sd.open(); ...; sd.close()` (or `with`)."""

    def __init__(
        self,
        path: Path,
        *,
        pid: int | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = path.absolute()
        self._pid = pid if pid is not None else os.getpid()
        self._clock = clock
        self._lock_fd: int | None = None
        self.started_at: str | None = None
        self.previous_run: PreviousRun | None = None

    # -- paths
    @property
    def lock_path(self) -> Path:
        return self.path / "lock"

    @property
    def run_path(self) -> Path:
        return self.path / "run"

    @property
    def node_json_path(self) -> Path:
        return self.path / "node.json"

    @property
    def token_path(self) -> Path:
        return self.path / "token"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def events_db(self) -> Path:
        return self.path / "events.db"

    @property
    def sessions_path(self) -> Path:
        return self.path / "sessions"

    @property
    def signatures_path(self) -> Path:
        return self.path / "signatures"

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None

    # -- lifecycle
    def open(self) -> PreviousRun | None:
        """Create/check the directory, take the lock, record this run.

        Returns the previous run when it ended uncleanly, else None. Raises StateDirLocked when
        another process holds the lock, StateDirError for ownership/permission problems."""
        if self._lock_fd is not None:
            raise StateDirError(f"state directory {self.path} is already open")
        self._ensure_dir(self.path)
        self._lock()
        try:
            self._ensure_dir(self.logs_dir)
            self._ensure_gitignore()
            self.previous_run = self._read_previous_run()
            # A node.json left by a killed node would point clients at a dead port.
            with contextlib.suppress(FileNotFoundError):
                self.node_json_path.unlink()
            self.started_at = self._clock().isoformat()
            run = {"pid": self._pid, "started_at": self.started_at}
            atomic_write(self.run_path, _json_bytes(run))
        except BaseException:
            self._unlock()
            raise
        return self.previous_run

    def close(self) -> None:
        """Clean stop: remove node.json and the run marker, release the lock. Idempotent."""
        if self._lock_fd is None:
            return
        try:
            for p in (self.node_json_path, self.run_path):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            with contextlib.suppress(OSError):
                fsync_dir(self.path)
        finally:
            self._unlock()

    def __enter__(self) -> StateDir:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- node.json
    def write_node_json(self, host: str, port: int, url: str) -> dict[str, Any]:
        """Publish where the node serves (the real port when it was started with --port 0)."""
        self._require_open()
        info: dict[str, Any] = {
            "pid": self._pid,
            "host": host,
            "port": port,
            "url": url,
            "started_at": self.started_at,
        }
        # 0644 would do (no secret inside), but the directory is 0700 anyway.
        atomic_write(self.node_json_path, _json_bytes(info), mode=0o600)
        return info

    def read_node_json(self) -> dict[str, Any] | None:
        """node.json as a dict, or None if absent or unreadable (a client's view)."""
        try:
            data = json.loads(self.node_json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # -- token
    def token(self, env_token: str | None = None) -> Token:
        """The API token: `env_token` (GHOST_TOKEN, read by the caller) wins and is not written
        to disk; else `<state>/token`, generated on first use with mode 0600."""
        if env_token:
            return Token(env_token, "env")
        self._ensure_dir(self.path)
        path = self.token_path
        try:
            st = path.lstat()
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISREG(st.st_mode):
                raise StateDirError(f"{path} is not a regular file")
            self._check_owner(path, st)
            if stat.S_IMODE(st.st_mode) & 0o077:
                log.warning(
                    "token file %s had mode %o; tightened to 0600",
                    path,
                    stat.S_IMODE(st.st_mode),
                )
                os.chmod(path, SECRET_FILE_MODE)
            value = path.read_text(encoding="utf-8").strip()
            if value:
                return Token(value, "file")
            # Empty: a crash between create and write on some old version, or a user's edit.
            log.warning("token file %s was empty; generating a new token", path)
        value = secrets.token_urlsafe(32)
        atomic_write(path, (value + "\n").encode("ascii"), mode=SECRET_FILE_MODE)
        return Token(value, "generated")

    def rotate_token(self) -> Token:
        """A new random token in `<state>/token` (0600, replaced atomically): the old one is
        refused from the moment a running node takes the new one (POST /token/rotate)."""
        if not self.path.is_dir():
            raise StateDirError(f"no state directory at {self.path}")
        value = secrets.token_urlsafe(32)
        atomic_write(self.token_path, (value + "\n").encode("ascii"), mode=SECRET_FILE_MODE)
        return Token(value, "file")

    def read_token(self, env_token: str | None = None) -> Token | None:
        """The token as a client (the `ghost` CLI) finds it: never creates or fixes anything."""
        if env_token:
            return Token(env_token, "env")
        try:
            value = self.token_path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return Token(value, "file") if value else None

    # -- internals
    def _ensure_gitignore(self) -> None:
        # The token and the store must never reach a `git add -A` of the workspace that holds
        # this directory: it ignores itself, whatever the project's own .gitignore says.
        path = self.path / ".gitignore"
        if path.exists():
            return
        try:
            atomic_write(path, b"*\n", mode=0o644)
        except OSError as exc:
            raise StateDirError(f"cannot write {path}: {exc}") from exc

    def _require_open(self) -> None:
        if self._lock_fd is None:
            raise StateDirError(f"state directory {self.path} is not open")

    def _ensure_dir(self, path: Path) -> None:
        try:
            # exist_ok=True would raise FileExistsError for a file in the way: check it below.
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=DIR_MODE, parents=True)
            st = path.lstat()
        except OSError as exc:
            raise StateDirError(f"cannot create state directory {path}: {exc}") from exc
        if stat.S_ISLNK(st.st_mode):
            # A symlinked state dir is allowed (people put state on another disk); check the
            # target's ownership and mode instead.
            st = path.stat()
        if not stat.S_ISDIR(st.st_mode):
            raise StateDirError(f"{path} exists and is not a directory")
        self._check_owner(path, st)
        mode = stat.S_IMODE(st.st_mode)
        if mode != DIR_MODE:
            log.warning("state directory %s had mode %o; tightened to 0700", path, mode)
            try:
                os.chmod(path, DIR_MODE)
            except OSError as exc:
                raise StateDirError(f"cannot chmod 0700 {path}: {exc}") from exc

    def _check_owner(self, path: Path, st: os.stat_result) -> None:
        uid = os.getuid()
        if st.st_uid != uid:
            raise StateDirError(
                f"{path} belongs to uid {st.st_uid}, not to this user (uid {uid}): "
                "another user could read or replace the token"
            )

    def _lock(self) -> None:
        # os.open fds are non-inheritable (PEP 446): children (tests, tunnels, services) must
        # not inherit the lock, or a leftover child would keep the directory locked.
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, SECRET_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StateDirLocked(self.path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self._pid}\n".encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        # Leave the pid in the file: harmless (the lock, not the file, is the truth) and
        # truncating would race with the next holder writing its own pid.
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def _read_previous_run(self) -> PreviousRun | None:
        try:
            text = self.run_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return PreviousRun(None, None)
        pid = data.get("pid")
        started = data.get("started_at")
        return PreviousRun(
            pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            started if isinstance(started, str) else None,
        )


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _json_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, sort_keys=True) + "\n").encode("utf-8")
