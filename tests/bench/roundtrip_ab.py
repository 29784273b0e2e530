"""The 1-file webhook round trip of two nodes side by side: this checkout's and another's
(`git worktree add /tmp/old <commit>`), started together and measured in alternating rounds,
with `git apply` of the same patch in the same rounds. On a host whose speed swings from
minute to minute, that is what tells whether a change made the node faster.

    .venv/bin/python tests/bench/roundtrip_ab.py /tmp/old [--rounds 8] [--per-round 20]
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_api import UNIFIED, post  # noqa: E402

import tests.adapters.web.support as support  # noqa: E402
import tests.node_process as harness  # noqa: E402

ORIGINAL = "def f():\n    return 1\n# end\n"


def node_round(node: harness.NodeProcess, runs: int) -> float:
    """Median ms of `runs` round trips (the file reset and settled before each)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    times = []
    for _ in range(runs):
        (node.workspace / "one.py").write_text(ORIGINAL)
        time.sleep(0.05)
        began = time.perf_counter()
        post(conn, node.token, {"format": "unified", "patch": UNIFIED, "run_tests": False})
        times.append(time.perf_counter() - began)
    conn.close()
    return statistics.median(times) * 1000


def git_round(scratch: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        (scratch / "one.py").write_text(ORIGINAL)
        time.sleep(0.05)
        began = time.perf_counter()
        subprocess.run(["git", "apply", "p.diff"], cwd=scratch, check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("other", type=Path, help="the other checkout (its bin/ghost-node)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    scratch = tmp / "git"
    scratch.mkdir()
    (scratch / "p.diff").write_text(UNIFIED)
    nodes: dict[str, harness.NodeProcess] = {}
    try:
        for label, checkout in (("other", args.other.resolve()), ("this", ROOT)):
            harness.NODE = checkout / "bin" / "ghost-node"  # read when a node starts
            ws = support.write_workspace(tmp / label, {"one.py": "x\n"})
            nodes[label] = harness.NodeProcess(ws, env={"GHOST_HTTP_RATE": "0"})
        rows: dict[str, list[float]] = {"other": [], "this": [], "git apply": []}
        for _ in range(args.rounds):
            for label, node in nodes.items():
                rows[label].append(node_round(node, args.per_round))
            rows["git apply"].append(git_round(scratch, args.per_round))
    finally:
        for node in nodes.values():
            node.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    git = statistics.median(rows["git apply"])
    print(f"1-file round trip, median ms of {args.per_round} per round, {args.rounds} rounds")
    names = {"other": f"node at {args.other}", "this": "node at this checkout"}
    for label, values in rows.items():
        med = statistics.median(values)
        rounds = " ".join(f"{v:6.2f}" for v in values)
        name = names.get(label, label)
        print(f"  {name:<32} {rounds}   median {med:6.2f}   x{med / git:.2f} git")


if __name__ == "__main__":
    main()
