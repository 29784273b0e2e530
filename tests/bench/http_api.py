"""HTTP figures of ghost-node, measured over loopback against a real node process:

- GET /health requests/s and p99, idle and while patches stream in (50 patches/s), next to a
  bare twisted.web resource measured in the same run with the same client: saturated (N closed
  loop client threads, so the latency there is mostly queueing behind the other threads), and
  paced (one client at a fixed rate, the latency a health probe sees);
- POST /webhook patches/s end to end (dry run, and applied with synchronous=FULL);
- one 1-file patch through POST /webhook end to end vs `git apply` of the same patch.

    .venv/bin/python tests/bench/http_api.py [--seconds 5] [--threads 8] [--probe-rate 100]

(Not named http.py: a script's directory comes first on sys.path, and a tests/bench/http.py
shadowed the standard library's http package for every script in tests/bench.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.adapters.web.support import write_workspace  # noqa: E402
from tests.node_process import NodeProcess  # noqa: E402

BARE = """
from twisted.internet import reactor
from twisted.web import resource, server
class Hello(resource.Resource):
    isLeaf = True
    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        return b'{"status":"ok"}'
port = reactor.listenTCP(0, server.Site(Hello()), interface="127.0.0.1")
print(port.getHost().port, flush=True)
reactor.run()
"""


def load(
    port: int, path: str, seconds: float, threads: int, headers: dict[str, str]
) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of GETs on keep-alive connections."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds

    def worker(out: list[float]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.perf_counter() < stop:
            began = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status in (200, 503), response.status
            out.append(time.perf_counter() - began)
        conn.close()

    workers = [threading.Thread(target=worker, args=(lat,)) for lat in latencies]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    flat = sorted(x for lat in latencies for x in lat)
    p99 = flat[int(len(flat) * 0.99) - 1]
    return len(flat) / seconds, statistics.median(flat) * 1000, p99 * 1000


def paced(
    port: int, path: str, seconds: float, rate: float, headers: dict[str, str]
) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of one keep-alive client sending a GET every 1/rate s."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    began = time.perf_counter()
    i = 0
    while time.perf_counter() - began < seconds:
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status in (200, 503), response.status
        latencies.append(time.perf_counter() - start)
        i += 1
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - began
    conn.close()
    flat = sorted(latencies)
    p99 = flat[max(0, int(len(flat) * 0.99) - 1)]
    return len(flat) / elapsed, statistics.median(flat) * 1000, p99 * 1000


def post(
    conn: http.client.HTTPConnection, token: str, body: dict[str, object]
) -> dict[str, object]:
    conn.request(
        "POST",
        "/webhook",
        body=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    data = json.loads(response.read())
    assert response.status == 200, data
    return data  # type: ignore[no-any-return]


def add_patch(i: int) -> str:
    return f"*** Begin Patch\n*** Add File: gen/f{i}.py\n+x = {i}\n*** End Patch\n"


def patches_per_s(node: NodeProcess, count: int, dry_run: bool, offset: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    began = time.perf_counter()
    for i in range(count):
        post(conn, node.token, {"patch": add_patch(offset + i), "dry_run": dry_run})
    conn.close()
    return count / (time.perf_counter() - began)


def stream_patches(
    node: NodeProcess, rate: float, stop: threading.Event, offset: int, achieved: list[float]
) -> None:
    """Applied patches at `rate`/s until `stop`; the rate actually reached goes in `achieved`."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    i = 0
    began = time.perf_counter()
    while not stop.is_set():
        post(conn, node.token, {"patch": add_patch(offset + i)})
        i += 1
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    achieved.append(i / (time.perf_counter() - began))
    conn.close()


UNIFIED = """--- a/one.py
+++ b/one.py
@@ -1,3 +1,3 @@
 def f():
-    return 1
+    return 2
 # end
"""


def single_patch(node: NodeProcess, runs: int) -> tuple[float, float]:
    """Median ms: POST /webhook (unified, 1 file) end to end, and `git apply` of the same."""
    ws = node.workspace
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    ours, git = [], []
    scratch = Path(tempfile.mkdtemp())
    (scratch / "p.diff").write_text(UNIFIED)
    for _ in range(runs):
        (ws / "one.py").write_text("def f():\n    return 1\n# end\n")
        time.sleep(0.05)  # the write is settled on disk before the patch reads it
        began = time.perf_counter()
        post(conn, node.token, {"format": "unified", "patch": UNIFIED, "run_tests": False})
        ours.append(time.perf_counter() - began)
        (scratch / "one.py").write_text("def f():\n    return 1\n# end\n")
        began = time.perf_counter()
        subprocess.run(["git", "apply", "p.diff"], cwd=scratch, check=True)
        git.append(time.perf_counter() - began)
    conn.close()
    shutil.rmtree(scratch)
    return statistics.median(ours) * 1000, statistics.median(git) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--probe-rate", type=float, default=100.0, help="paced GETs per second")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    tmp = Path(tempfile.mkdtemp())
    bare = subprocess.Popen([sys.executable, "-c", BARE], stdout=subprocess.PIPE, text=True)
    node = NodeProcess(write_workspace(tmp / "ws", {"one.py": "x\n"}), env={"GHOST_HTTP_RATE": "0"})
    try:
        assert bare.stdout is not None
        bare_port = int(bare.stdout.readline())
        auth = {"Authorization": f"Bearer {node.token}"}

        def fmt(r: tuple[float, float, float]) -> str:
            return f"{r[0]:8.0f} req/s   p50 {r[1]:6.2f} ms   p99 {r[2]:6.2f} ms"

        rows.append(
            ("bare twisted.web resource", fmt(load(bare_port, "/", args.seconds, args.threads, {})))
        )
        rows.append(
            (
                "GET /health (open), idle",
                fmt(load(node.port, "/health", args.seconds, args.threads, {})),
            )
        )
        rows.append(
            (
                "GET /health (auth), idle",
                fmt(load(node.port, "/health", args.seconds, args.threads, auth)),
            )
        )
        rate = args.probe_rate
        rows.append(
            (
                f"bare twisted.web, paced {rate:g}/s",
                fmt(paced(bare_port, "/", args.seconds, rate, {})),
            )
        )
        rows.append(
            (
                f"GET /health (auth), paced {rate:g}/s, idle",
                fmt(paced(node.port, "/health", args.seconds, rate, auth)),
            )
        )
        for label, measure in (
            (
                "GET /health (auth), 50 patches/s",
                lambda: load(node.port, "/health", args.seconds, args.threads, auth),
            ),
            (
                f"GET /health (auth), paced {rate:g}/s, 50 patches/s",
                lambda: paced(node.port, "/health", args.seconds, rate, auth),
            ),
        ):
            stop = threading.Event()
            achieved: list[float] = []
            streamer = threading.Thread(
                target=stream_patches,
                args=(node, 50.0, stop, 100_000 + len(rows) * 10_000, achieved),
            )
            streamer.start()
            try:
                result = measure()
            finally:
                stop.set()
                streamer.join()
            rows.append((label, fmt(result) + f"   (patches reached {achieved[0]:.1f}/s)"))
        rows.append(
            ("POST /webhook dry run", f"{patches_per_s(node, 300, True, 0):8.0f} patches/s")
        )
        rows.append(
            (
                "POST /webhook applied (FULL)",
                f"{patches_per_s(node, 300, False, 1000):8.0f} patches/s",
            )
        )
        ours, git = single_patch(node, 60)
        rows.append(("1-file patch: POST /webhook e2e", f"{ours:8.2f} ms (median)"))
        rows.append(("1-file patch: git apply", f"{git:8.2f} ms (median)"))
    finally:
        node.stop()
        bare.terminate()
        bare.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print(
        f"ghost-node HTTP, {args.threads} client threads, {args.seconds:g} s per load run, "
        f"{os.cpu_count()} CPUs"
    )
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
