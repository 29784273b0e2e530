"""Body size counted while it arrives (413 without buffering it all), per-client rate limits
(429 + Retry-After), and the node staying healthy after both."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from adapters.web.limits import RateLimiter
from tests.adapters.web.support import metric, write_workspace
from tests.node_process import NodeProcess

MIB = 1024 * 1024


def _read_response(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_announced_huge_body_is_refused_before_it_is_sent(node: NodeProcess) -> None:
    with socket.create_connection(("127.0.0.1", node.port)) as sock:
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + node.token.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(100 * MIB).encode()
            + b"\r\n\r\n"
        )
        head = _read_response(sock)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b'"too_large"' in head or b"413" in head


def test_chunked_body_is_cut_off_near_the_limit(node: NodeProcess) -> None:
    """No Content-Length: the server counts as chunks arrive and closes the connection soon
    after 5 MiB, however much the client still wanted to send."""
    sent = 0
    with socket.create_connection(("127.0.0.1", node.port)) as sock:
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + node.token.encode()
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"a" * 64 * 1024)
        sock.settimeout(5)
        try:
            while sent < 50 * MIB:
                sock.sendall(chunk)
                sent += 64 * 1024
        except OSError:
            pass  # reset or broken pipe: the server hung up, as it should
        head = _read_response(sock, 2)
    assert sent < 20 * MIB, f"the server read {sent} bytes"
    assert head == b"" or head.startswith(b"HTTP/1.1 413")
    assert node.client().get("/health").status in (200, 503)


def test_refusals_are_counted(node: NodeProcess) -> None:
    text = node.client().get("/metrics").raw.decode()
    assert metric(text, "ghost_http_refused_total", status="413") >= 1


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    root = write_workspace(tmp_path_factory.mktemp("limited"), {"a.py": "a = 1\n"})
    running = NodeProcess(root, env={"GHOST_HTTP_RATE": "5,10"})
    yield running
    assert running.stop() == 0


def test_rate_limit_answers_429_with_retry_after(limited: NodeProcess) -> None:
    api = limited.client()
    statuses = [api.get("/patches").status for _ in range(30)]
    assert 429 in statuses
    assert statuses[:10].count(200) == 10
    reply = api.get("/patches")
    assert reply.status == 429
    assert int(reply.headers["retry-after"]) >= 1
    assert reply.error["code"] == "rate_limited"
    time.sleep(1.2)
    assert api.get("/patches").status == 200  # tokens come back


def test_rate_limit_applies_before_auth(limited: NodeProcess) -> None:
    time.sleep(2.2)  # refill
    anon = limited.client(token="wrong")
    statuses = {anon.get("/patches").status for _ in range(30)}
    assert statuses == {401, 429}


def test_token_bucket_unit() -> None:
    now = [0.0]
    bucket = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take("ip") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take("ip")
    assert 0 < wait <= 0.5
    now[0] += 0.5
    assert bucket.take("ip") == 0.0
    assert bucket.take("other") == 0.0  # per client
    assert RateLimiter(rate=0, burst=1).take("ip") == 0.0  # off
