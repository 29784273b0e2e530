"""A real ghost-node on a loopback port, and a small http.client-based client for it."""

from __future__ import annotations

import http.client
import json
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
