from __future__ import annotations

import http.server
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).parent
PY = sys.executable
FAKE_TUNNEL = str(HERE / "fake_tunnel.py")
FAKE_SERVICE = str(HERE / "fake_service.py")


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test must leave no extra thread and no child (running or zombie) behind."""
    threads = threading.active_count()
    yield
    deadline = time.monotonic() + 3
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= threads, [t.name for t in threading.enumerate()]
    children = [(p.pid, p.status()) for p in psutil.Process().children(recursive=True)]
    assert not children, f"children left behind: {children}"


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = b'{"status": "ok"}' if self.path == "/health" else b"not found"
        self.send_response(self.status if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.ThreadingHTTPServer]:
    """A local HTTP server answering GET /health with 200; set
    `server.RequestHandlerClass.status` to answer something else."""
    handler = type("Handler", (_Health,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = False  # so server_close() joins request threads
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


class Fakes:
    """Helpers for the tests (a fixture: test modules cannot import each other here)."""

    python = PY
    tunnel_script = FAKE_TUNNEL

    @staticmethod
    def service(*args: str) -> list[str]:
        return [PY, FAKE_SERVICE, *args]

    @staticmethod
    def tunnel(*args: str) -> list[str]:
        return [PY, FAKE_TUNNEL, *args]

    @staticmethod
    def pids_of(output: str) -> list[int]:
        for line in output.splitlines():
            if line.startswith("pids="):
                return [int(p) for p in line[5:].split(",")]
        raise AssertionError(f"no pids line in {output!r}")

    @staticmethod
    def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.02)

    @staticmethod
    def alive(pids: list[int]) -> list[int]:
        """Those of `pids` still running (zombies count as dead)."""
        out = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.NoSuchProcess:
                continue
        return out


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()
