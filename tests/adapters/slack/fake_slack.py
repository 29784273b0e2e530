"""A real HTTP server on 127.0.0.1 that answers like Slack, for the senders and the outbox.

Routes: POST /services/... (incoming webhook: 200 "ok"), POST /api/chat.postMessage
({"ok": true, "ts": ...}), and any other path as a response_url (200 "ok"). Replies can be
scripted, consumed one per request in order: a status, body, headers and delay (a delay longer
than the client's timeout is a hang). Every request is recorded, with whether it was accepted.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str | None = None  # None: the route's normal success answer
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    hold: threading.Event | None = None  # wait for this before answering (crash tests)

    @staticmethod
    def rate_limited(retry_after_s: int) -> Reply:
        return Reply(429, "rate_limited", {"Retry-After": str(retry_after_s)})

    @staticmethod
    def api_error(error: str, status: int = 200) -> Reply:
        return Reply(status, json.dumps({"ok": False, "error": error}))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    payload: dict[str, Any]
    at: float  # time.monotonic() on arrival
    accepted: bool = False

    @property
    def text(self) -> str:
        return str(self.payload.get("text", ""))


class FakeSlack:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.on_request: Any = None  # callable(Received) run before answering, for tests
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def webhook_url(self) -> str:
        return self.url + "/services/T000/B000/XXXXSECRETXXXX"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.accepted]

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._script.popleft() if self._script else Reply()

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length).decode("utf-8")
        received = Received(req.path, dict(req.headers.items()), _decode(raw), time.monotonic())
        with self._lock:
            self.received.append(received)
        if self.on_request is not None:
            self.on_request(received)
        reply = self._next_reply()
        if reply.hold is not None:
            reply.hold.wait(30)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        body = reply.body if reply.body is not None else self._success_body(req.path)
        data = body.encode()
        ok = reply.status == 200 and (body == "ok" or '"ok": true' in body)
        with self._lock:  # before the answer leaves: the client may look right after reading it
            received.accepted = ok
        try:
            req.send_response(reply.status)
            for name, value in reply.headers.items():
                req.send_header(name, value)
            kind = "application/json" if body.startswith("{") else "text/plain"
            req.send_header("Content-Type", f"{kind}; charset=utf-8")
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            req.wfile.write(data)
            req.wfile.flush()
        except OSError:  # the client gave up (timeout) or was killed: it never heard "ok"
            with self._lock:
                received.accepted = False

    @staticmethod
    def _success_body(path: str) -> str:
        if path.startswith("/api/"):
            return json.dumps({"ok": True, "channel": "C1", "ts": f"{time.time():.6f}"})
        return "ok"


def _decode(raw: str) -> dict[str, Any]:
    if raw.startswith("{"):
        decoded: dict[str, Any] = json.loads(raw)
        return decoded
    form = parse_qs(raw)  # chat.postMessage arrives form-encoded, blocks as a JSON string
    out: dict[str, Any] = {k: v[0] for k, v in form.items()}
    if isinstance(out.get("blocks"), str):
        out["blocks"] = json.loads(out["blocks"])
    return out
