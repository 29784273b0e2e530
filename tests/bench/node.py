"""ghost-node process figures: time from exec to READY=1 (sd_notify), and idle RSS with every
actor running, next to a bare twisted.web server process measured in the same run (with
Twisted's TLS support loaded, as by default, and without it, as ghost-node runs).

READY is timed on fresh state directories (a first start: the store is created and migrated).
The idle RSS is taken on a first start and again on a restart over the same state directory,
the usual case for a resident node.

    .venv/bin/python tests/bench/node.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
BARE_TWISTED = """
import sys
if "--no-tls" in sys.argv:  # as ghost-node does (actors/node.py, _without_tls)
    for name in ("OpenSSL", "service_identity"):
        sys.modules.setdefault(name, None)
from twisted.internet import reactor
from twisted.web import resource, server
class Hello(resource.Resource):
    isLeaf = True
    def render_GET(self, request):
        return b"ok"
reactor.listenTCP(0, server.Site(Hello()), interface="127.0.0.1")
print("listening", flush=True)
reactor.run()
"""


def time_to_ready(tmp: Path) -> float:
    sock_path = tmp / "notify.sock"
    sock_path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    ws = Path(tempfile.mkdtemp(dir=tmp))
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bin" / "ghost-node"), "--port", "0"],
        cwd=ws,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while b"READY=1" not in sock.recv(4096):
            pass
        return time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        sock.close()


def time_to_listen(cwd: Path) -> float:
    """A bare twisted.web server (no TLS, as the node): exec until it prints `listening`."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE_TWISTED, "--no-tls"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def idle_rss(argv: list[str], cwd: Path, settle_s: float) -> float:
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle_s)
        return psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        readies = [time_to_ready(tmp) for _ in range(args.runs)]
        ws = tmp / "ws"
        ws.mkdir()
        argv = [sys.executable, str(ROOT / "bin" / "ghost-node"), "--port", "0"]
        node = idle_rss(argv, ws, 5)
        restarted = idle_rss(argv, ws, 5)
        bare = idle_rss([sys.executable, "-c", BARE_TWISTED], ws, 3)
        bare_plain = idle_rss([sys.executable, "-c", BARE_TWISTED, "--no-tls"], ws, 3)
        listens = [time_to_listen(ws) for _ in range(args.runs)]
    print(f"{'measure':<44} {'ours':>10}  reference")
    print(
        f"{'time to READY=1, median of ' + str(args.runs):<44} "
        f"{statistics.median(readies) * 1000:>8.0f}ms  (max {max(readies) * 1000:.0f} ms); "
        f"bare twisted.web listening {statistics.median(listens) * 1000:.0f} ms "
        f"(x{statistics.median(readies) / statistics.median(listens):.2f})"
    )
    print(
        f"{'idle RSS, every actor running, first start':<44} {node:>8.1f}MB  "
        f"bare twisted.web server {bare:.1f} MB (x{node / bare:.2f}); "
        f"without TLS {bare_plain:.1f} MB (x{node / bare_plain:.2f})"
    )
    print(
        f"{'idle RSS, every actor running, restart':<44} {restarted:>8.1f}MB  "
        f"bare twisted.web server {bare:.1f} MB (x{restarted / bare:.2f}); "
        f"without TLS {bare_plain:.1f} MB (x{restarted / bare_plain:.2f})"
    )


if __name__ == "__main__":
    main()
