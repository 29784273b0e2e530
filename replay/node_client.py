"""The `ghost` CLI's way to the running node: find it through `<state_dir>/node.json`, take the
token from `<state_dir>/token` (GHOST_TOKEN overrides it), and talk JSON over HTTP with urllib.

A node "is running" on a state directory when node.json names a live pid AND the directory's
lock is held: node.json alone may be left by a killed node (its pid possibly reused since), and
the lock alone is also held while a node is still starting (no port yet)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.statedir import StateDir

DEFAULT_TIMEOUT_S = 60.0  # above the node's own wait_s (20 s), so that it answers first


class NodeNotRunning(Exception):
    """An online command found no node: a usage error (exit 2)."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(f"no ghost-node is running on {state_dir}; start it with ghost-node")
        self.state_dir = state_dir


class NodeError(Exception):
    """The node answered with an error (`status` its HTTP status, `code`/`message`/`details`
    from its `{"error": ...}` body), or could not be reached (`status` 0, code `unreachable`)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})

    def as_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


@dataclass(frozen=True, slots=True)
class NodeInfo:
    pid: int
    host: str
    port: int
    url: str
    started_at: str | None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content_type: str
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only the existence and permission checks
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    return True


def lock_held(state: StateDir) -> bool:
    """Whether some process holds the state directory's lock. flock has no "test" operation,
    so try a shared lock without waiting and drop it at once: a node starting in that same
    instant would see the directory as in use and exit 2, a window of microseconds."""
    try:
        fd = os.open(state.lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False  # no node ever ran here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def find_node(state_dir: Path) -> NodeInfo | None:
    """The node serving on `state_dir`, or None (see the module docstring)."""
    state = StateDir(state_dir)
    data = state.read_node_json()
    if data is None:
        return None
    try:
        info = NodeInfo(
            pid=int(data["pid"]),
            host=str(data["host"]),
            port=int(data["port"]),
            url=str(data["url"]),
            started_at=None if data.get("started_at") is None else str(data["started_at"]),
        )
    except (KeyError, TypeError, ValueError):
        return None  # a node.json we cannot read is as good as none
    if not pid_alive(info.pid) or not lock_held(state):
        return None
    return info


class NodeClient:
    def __init__(
        self,
        info: NodeInfo,
        token: str,
        token_source: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.info = info
        self._token = token
        self.token_source = token_source  # for the 401 message: where the refused token came from
        self.timeout_s = timeout_s
        # node.json's url may name a wildcard bind (0.0.0.0); the CLI is on the same machine.
        host = "127.0.0.1" if info.host in ("0.0.0.0", "", "::") else info.host
        self.base_url = f"http://{'[' + host + ']' if ':' in host else host}:{info.port}"

    @classmethod
    def find(cls, state_dir: Path, env: Mapping[str, str] | None = None) -> NodeClient | None:
        """A client for the node on `state_dir`, or None when none is running."""
        info = find_node(state_dir)
        if info is None:
            return None
        env = os.environ if env is None else env
        state = StateDir(state_dir)
        token = state.read_token(env.get("GHOST_TOKEN"))
        if token is None:
            # The node writes its token before it serves: a missing one is a config problem.
            raise NodeError(401, "unauthorized", f"no token in {state.token_path} nor GHOST_TOKEN")
        source = "GHOST_TOKEN" if token.source == "env" else str(state.token_path)
        return cls(info, token.value, source)

    @classmethod
    def connect(cls, state_dir: Path, env: Mapping[str, str] | None = None) -> NodeClient:
        client = cls.find(state_dir, env)
        if client is None:
            raise NodeNotRunning(state_dir)
        return client

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        accept: tuple[int, ...] = (),
    ) -> Any:
        """The JSON answer of a 2xx (or of a status in `accept`); NodeError otherwise."""
        reply = self.raw(method, path, body, accept)
        try:
            return reply.json()
        except ValueError as exc:
            raise NodeError(reply.status, "bad_answer", f"{path}: not JSON: {exc}") from None

    def raw(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        accept: tuple[int, ...] = (),
    ) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return Reply(response.status, response.headers.get_content_type(), response.read())
        except urllib.error.HTTPError as exc:
            with contextlib.closing(exc):
                raw = exc.read()
            if exc.code in accept:
                return Reply(exc.code, exc.headers.get_content_type(), raw)
            raise self._error(exc.code, raw) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NodeError(
                0, "unreachable", f"the node at {self.base_url} did not answer: {reason}"
            ) from None

    def _error(self, status: int, raw: bytes) -> NodeError:
        if status == 401:
            return NodeError(401, "unauthorized", f"the token in {self.token_source} was refused")
        try:
            error = json.loads(raw)["error"]
            return NodeError(
                status, str(error["code"]), str(error["message"]), error.get("details") or {}
            )
        except (ValueError, KeyError, TypeError):
            # Not the API's error shape (a proxy in between?): say what came back.
            text = raw[:200].decode("utf-8", "replace")
            return NodeError(status, "http_error", f"HTTP {status}: {text}")
