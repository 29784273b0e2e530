"""A real ghost-node on a loopback port, and a small http.client-based client for it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.web.auth import signature_headers

ROOT = Path(__file__).resolve().parents[3]
NODE = ROOT / "bin" / "ghost-node"
GHOST = ROOT / "bin" / "ghost"
HMAC_SECRET = "test-hmac-secret"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def error(self) -> dict[str, Any]:
        body = self.json
        assert set(body["error"]) == {"code", "message", "details"}, body
        return body["error"]  # type: ignore[no-any-return]


@dataclass
class Client:
    port: int
    token: str | None = None
    timeout: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> Reply:
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        all_headers = {**self.headers, **(headers or {})}
        if auth and self.token and "Authorization" not in all_headers:
            all_headers["Authorization"] = f"Bearer {self.token}"
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            raw = response.read()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, raw)
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)


def signed_headers(
    body: bytes,
    secret: str = HMAC_SECRET,
    at: int | None = None,
    method: str = "POST",
    target: str = "/webhook",
    nonce: str | None = None,
) -> dict[str, str]:
    """The v1 signature headers (SPEC §4) for `method target` with `body`; a fresh nonce
    unless one is given (the same nonce, time and body: a replay)."""
    return signature_headers(secret.encode(), method, target, body, timestamp=at, nonce=nonce)


class Node:
    """`bin/ghost-node --port 0` in `workspace`, ready once /health answers."""

    def __init__(
        self,
        workspace: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> None:
        self.workspace = workspace
        self.state_dir = workspace / ".ghost"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        base.pop("GHOST_HMAC_SECRET", None)
        base.pop("GHOST_HTTP_RATE", None)
        # A file, not a pipe: nobody drains a pipe while the tests run, and a node whose
        # stderr pipe is full blocks in its next log line.
        self.stderr_path = workspace / "ghost-node.stderr"
        self._stderr = self.stderr_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(NODE), "--port", "0", *args],
            cwd=workspace,
            env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        self.port = 0
        self.token = ""
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        node_json = self.state_dir / "node.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.stderr_path.read_text(errors="replace")
                raise AssertionError(f"ghost-node exited {self.proc.returncode}: {err[-3000:]}")
            try:
                info = json.loads(node_json.read_text())
                if info.get("pid") == self.proc.pid:
                    self.port = int(info["port"])
                    self.token = (self.state_dir / "token").read_text().strip()
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise AssertionError("ghost-node did not start serving in time")

    def client(self, **kw: Any) -> Client:
        kw.setdefault("token", self.token)
        return Client(self.port, **kw)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._stderr.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()


def write_workspace(root: Path, files: Mapping[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0.0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0
