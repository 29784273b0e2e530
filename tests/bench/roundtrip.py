"""The 1-file POST /webhook round trip beside its two references, interleaved in one run:

- `git apply` of the same patch (a subprocess; it never fsyncs);
- a bare twisted.web POST of the same body answered with a small JSON (what HTTP alone costs);
- the durable floor: what any crash-safe writer of that patch must do at least -- the new
  content to a temp file, fsync, rename over the file, fsync of the directory, and one
  SQLite commit with synchronous=FULL in WAL mode (a row holding the patch's record).

Each round runs one of each on the same kind of file, in an order that rotates from round to
round and after the same pause, so that a host whose speed swings from minute to minute (and
a CPU that slows down when idle) affects all three alike. Medians and the ratios are
printed.

    .venv/bin/python tests/bench/roundtrip.py [--runs 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_api import UNIFIED, post  # noqa: E402
from patch import Floor, Workload  # noqa: E402

from tests.adapters.web.support import write_workspace  # noqa: E402
from tests.node_process import NodeProcess  # noqa: E402

# A bare twisted.web resource that reads the JSON body and answers a patch-sized JSON: what
# HTTP costs on this host, with nothing behind it.
BARE_HTTP = """
import json, sys
for name in ("OpenSSL", "service_identity"):
    sys.modules.setdefault(name, None)
from twisted.internet import reactor
from twisted.web import resource, server
class Echo(resource.Resource):
    isLeaf = True
    def render_POST(self, request):
        json.loads(request.content.read())
        request.setHeader("Content-Type", "application/json")
        answer = {"patch_id": "0" * 16, "status": "applied", "diff": "-a\\n+b\\n"}
        return json.dumps(answer).encode()
port = reactor.listenTCP(0, server.Site(Echo()), interface="127.0.0.1")
print(port.getHost().port, flush=True)
reactor.run()
"""
JSON = {"Content-Type": "application/json"}
BEFORE = "def f():\n    return 1\n# end\n"
AFTER = "def f():\n    return 2\n# end\n"


def _bare(conn: http.client.HTTPConnection, body: dict[str, object]) -> None:
    conn.request("POST", "/webhook", body=json.dumps(body), headers=JSON)
    response = conn.getresponse()
    response.read()
    assert response.status == 200


def _check(answer: dict[str, object]) -> None:
    assert answer["status"] == "applied", answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    scratch = tmp / "git"
    scratch.mkdir()
    (scratch / "p.diff").write_text(UNIFIED)
    ws = write_workspace(tmp / "ws", {"one.py": BEFORE})
    node = NodeProcess(ws, env={"GHOST_HTTP_RATE": "0"})
    # the patch benchmark's floor (tests/bench/patch.py), on the same 3-line file
    work = Workload(["one.py"], [BEFORE.splitlines()])
    floor = Floor(tmp, work)
    record = (UNIFIED * 4).encode()  # about what PatchApplying holds: changes, both sides, diff
    times: dict[str, list[float]] = {"node": [], "git apply": [], "floor": [], "bare http": []}
    bare = subprocess.Popen([sys.executable, "-c", BARE_HTTP], stdout=subprocess.PIPE, text=True)
    assert bare.stdout is not None
    bare_conn = http.client.HTTPConnection("127.0.0.1", int(bare.stdout.readline()), timeout=30)
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    body = {"format": "unified", "patch": UNIFIED, "run_tests": False}
    try:
        for _ in range(5):  # warm up all three
            (ws / "one.py").write_text(BEFORE)
            time.sleep(0.02)
            post(conn, node.token, body)
        steps: dict[str, Callable[[], object]] = {
            "node": lambda: _check(post(conn, node.token, body)),
            "git apply": lambda: subprocess.run(
                ["git", "apply", "p.diff"], cwd=scratch, check=True
            ),
            "floor": lambda: floor.apply(work.paths, [AFTER.encode()], record),
            "bare http": lambda: _bare(bare_conn, body),
        }
        names = list(steps)
        n = len(names)
        for i in range(args.runs):
            (ws / "one.py").write_text(BEFORE)
            (scratch / "one.py").write_text(BEFORE)
            time.sleep(0.05)  # settled on disk (and seen by the watcher) before the round
            # Rotating order, and the same pause before each: none of the three always
            # runs first on an idle CPU, or always right after another on a warm one.
            for name in names[i % n :] + names[: i % n]:
                time.sleep(0.01)
                began = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - began)
    finally:
        conn.close()
        node.stop()
        bare.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"1-file POST /webhook round trip, medians of {args.runs} interleaved rounds")
    for name, ms in medians.items():
        p90 = sorted(times[name])[int(len(times[name]) * 0.9)] * 1000
        print(f"  {name:10} {ms:7.2f} ms   (p90 {p90:6.2f} ms)")
    print(f"  node / git apply: x{medians['node'] / medians['git apply']:.2f} (target <= 2.0)")
    print(f"  node / floor:     x{medians['node'] / medians['floor']:.2f} (target <= 2.5)")
    above = medians["node"] - medians["bare http"]
    print(
        f"  node minus bare HTTP: {above:.2f} ms = x{above / medians['floor']:.2f} the floor "
        f"(floor + bare HTTP = x{(medians['floor'] + medians['bare http']) / medians['floor']:.2f})"
    )


if __name__ == "__main__":
    main()
