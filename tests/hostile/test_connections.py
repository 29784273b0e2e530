"""Connections (hole 9 of the hostile-input issue): slow heads that outlived the idle timeout
by the thousand, one client holding every SSE slot, X-Forwarded-For rotation from loopback
minting fresh rate buckets, and Host names that a DNS-rebinding page would send."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.adapters.web.support import Client
from tests.hostile.conftest import good_patch
from tests.node_process import NodeProcess

pytestmark = pytest.mark.timeout(120)


@contextmanager
def sockets(node: NodeProcess, n: int, source: str) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        for _ in range(n):
            opened.append(
                socket.create_connection(("127.0.0.1", node.port), 5, source_address=(source, 0))
            )
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def test_a_head_sent_a_byte_at_a_time_is_cut_off(make_node: Callable[..., NodeProcess]) -> None:
    node = make_node()
    with sockets(node, 1, "127.0.0.2") as (sock,):
        started = time.monotonic()
        sock.settimeout(1.5)
        closed = b""
        for byte in b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
                closed = sock.recv(4096)  # times out while the node waits
            except TimeoutError:
                continue
            except OSError:
                break
            if closed:
                break
        elapsed = time.monotonic() - started
    assert b" 408 " in closed.split(b"\r\n")[0], closed[:200]
    assert elapsed < 30  # the head deadline (10 s), not the 75 s idle timeout
    assert node.client().get("/health").status == 200


def test_one_address_cannot_take_every_connection(make_node: Callable[..., NodeProcess]) -> None:
    node = make_node()
    with sockets(node, 256, "127.0.0.3") as held:
        time.sleep(0.5)
        with sockets(node, 1, "127.0.0.3") as (extra,):
            answer = _read_all(extra, 5)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        other = Client(node.port, token=node.token)
        assert other.get("/health").status == 200  # another address is served
        assert len(held) == 256
    good_patch(node)


def test_one_client_cannot_take_every_live_stream(make_node: Callable[..., NodeProcess]) -> None:
    node = make_node()
    head = (
        b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        b"Authorization: Bearer " + node.token.encode() + b"\r\n\r\n"
    )
    with sockets(node, 33, "127.0.0.4") as streams:
        for sock in streams[:32]:
            sock.sendall(head)
            sock.settimeout(5)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        streams[32].sendall(head)
        refused = _read_all(streams[32], 3)
        assert refused.startswith(b"HTTP/1.1 429"), refused[:200]
        with sockets(node, 1, "127.0.0.5") as (other,):
            other.sendall(head)
            other.settimeout(5)
            assert other.recv(4096).startswith(b"HTTP/1.1 200")


def test_forwarded_for_from_an_untrusted_peer_mints_no_buckets(
    make_node: Callable[..., NodeProcess],
) -> None:
    node = make_node(env={"GHOST_HTTP_RATE": "1,3"})  # no [[tunnel]]: no trusted proxy
    api = node.client()
    statuses = [
        api.get("/patches", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status for i in range(8)
    ]
    assert statuses.count(200) <= 4, statuses
    assert 429 in statuses


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "evil.example"}, 403),
        ({"Host": "evil.example:5051"}, 403),
        ({"Host": "127.0.0.1.nip.io"}, 403),
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Host": "localhost:5051"}, 200),
        ({"Host": "[::1]:5051"}, 200),
        ({"Origin": "http://127.0.0.1:5051"}, 200),
    ],
)
def test_host_and_origin_are_checked(
    make_node: Callable[..., NodeProcess], headers: dict[str, str], status: int
) -> None:
    node = make_node()
    reply = node.client().get("/patches", headers=headers)
    assert reply.status == status, reply.raw[:300]
    if status == 403:
        assert reply.json["error"]["details"]["reason"] in ("bad_host", "bad_origin")


def test_a_tunnels_public_host_is_allowed(make_node: Callable[..., NodeProcess]) -> None:
    from tests.hostile.conftest import CONFIG

    tunnel = (
        '\n[[tunnel]]\nname = "t"\ncommand = ["sleep", "3600"]\n'
        'url_pattern = "https://[a-z0-9-]+\\\\.trycloudflare\\\\.com"\n'
    )
    node = make_node(CONFIG + tunnel)
    api = node.client()
    assert api.get("/patches", headers={"Host": "abc-def.trycloudflare.com"}).status == 200
    assert api.get("/patches", headers={"Host": "abc.trycloudflare.com.evil"}).status == 403
