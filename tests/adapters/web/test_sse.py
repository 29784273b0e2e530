"""GET /events as a live SSE stream: events arrive live, a reconnect with Last-Event-ID resumes
without gaps or duplicates, and hundreds of clients coming and going leave nothing behind."""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from typing import Any

from tests.adapters.web.support import Client, metric
from tests.node_process import NodeProcess


class Stream:
    def __init__(
        self, node: NodeProcess, headers: dict[str, str] | None = None, query: str = ""
    ) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
        self.conn.request(
            "GET",
            f"/events{query}",
            headers={
                "Authorization": f"Bearer {node.token}",
                "Accept": "text/event-stream",
                **(headers or {}),
            },
        )
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("content-type", "").startswith("text/event-stream")

    def next_event(self) -> dict[str, Any]:
        """The next `id:`/`data:` frame (comments and retry lines skipped)."""
        event_id: str | None = None
        data: str | None = None
        while True:
            line = self.response.readline().decode()
            if line == "":
                raise EOFError("stream closed")
            line = line.rstrip("\n")
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data is not None:
                body = json.loads(data)
                assert str(body["position"]) == event_id
                return body  # type: ignore[no-any-return]

    def close(self) -> None:
        self.conn.close()


def last_position(api: Client) -> int:
    return int(api.get("/health").json["position"])


def add(api: Client) -> str:
    path = f"sse/{uuid.uuid4().hex[:8]}.py"
    patch = f"*** Begin Patch\n*** Add File: {path}\n+v = 1\n*** End Patch\n"
    reply = api.post("/webhook", {"workspace": "main", "patch": patch})
    assert reply.status == 200
    return str(reply.json["patch_id"])


def test_live_events_arrive(node: NodeProcess, api: Client) -> None:
    start = api.get("/events?limit=1000").json["next_after"]
    stream = Stream(node, {"Last-Event-ID": str(start)})
    try:
        pid = add(api)
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            event = stream.next_event()
            if event["stream"] == f"patch-{pid}":
                seen.append(event["type"])
                if event["type"] == "PatchApplied":
                    break
        assert seen[0] == "PatchReceived"
        assert seen[-1] == "PatchApplied"
    finally:
        stream.close()


def test_resume_with_last_event_id_has_no_gap_or_duplicate(node: NodeProcess, api: Client) -> None:
    begin = max(0, last_position(api) - 20)
    stream = Stream(node, query=f"?after={begin}")
    got = [stream.next_event()["position"] for _ in range(5)]
    stream.close()
    add(api)
    add(api)  # events appended while disconnected
    resumed = Stream(node, {"Last-Event-ID": str(got[-1])})
    end = last_position(api)
    while got[-1] < end:
        got.append(resumed.next_event()["position"])
    resumed.close()
    assert got == list(range(got[0], end + 1)), "positions must be gapless and unique"


def test_filters_apply_to_the_stream(node: NodeProcess, api: Client) -> None:
    start = last_position(api)
    stream = Stream(node, {"Last-Event-ID": str(start)}, query="?type=PatchApplied")
    pid = add(api)
    event = stream.next_event()
    stream.close()
    assert event["type"] == "PatchApplied"
    assert event["stream"] == f"patch-{pid}"


def _sse_clients(api: Client) -> float:
    return metric(api.get("/metrics").raw.decode(), "ghost_sse_clients")


def test_two_hundred_clients_come_and_go_without_leak(node: NodeProcess, api: Client) -> None:
    base = _sse_clients(api)
    request = (
        b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        b"Authorization: Bearer " + node.token.encode() + b"\r\n\r\n"
    )
    position = str(last_position(api)).encode()
    socks = []
    for i in range(200):
        # from ten loopback addresses: one client may hold only a few streams
        sock = socket.create_connection(
            ("127.0.0.1", node.port), source_address=(f"127.0.0.{2 + i % 10}", 0)
        )
        extra = b"Last-Event-ID: " + position + b"\r\n" if i % 2 else b""
        sock.sendall(request[:-2] + extra + b"\r\n")
        socks.append(sock)
    deadline = time.monotonic() + 10
    while _sse_clients(api) < base + 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sse_clients(api) >= base + 200
    add(api)  # a fan-out with every client connected
    for sock in socks[:100]:
        sock.close()  # polite close
    for sock in socks[100:]:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # abortive close (RST)
    deadline = time.monotonic() + 10
    while _sse_clients(api) > base and time.monotonic() < deadline:
        add(api)  # writes reveal dead connections that the kernel has not reported yet
        time.sleep(0.2)
    assert _sse_clients(api) == base
    assert api.get("/health").status in (200, 503)
