"""Every benchmark, one after the other, in one run: the figures in BENCHMARKS.md come from
one invocation of this script on a quiet machine, so they are comparable with each other.

    .venv/bin/python tests/bench/run_all.py [--only patch,replay] [--log PATH]

Each benchmark runs as its own process with the arguments BENCHMARKS.md names; its output is
printed and appended to the log (default tests/artifacts/benchmarks.log), under a header with
the commit, the time and how long it took. Exit status 1 if any benchmark failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (name, arguments), in the order of BENCHMARKS.md.
BENCHMARKS: list[tuple[str, list[str]]] = [
    ("eventstore", []),
    ("supervision", []),
    ("node", ["--runs", "3"]),
    ("patch", ["--cprofile"]),
    ("patch_matching", ["--repeat", "201"]),
    ("watcher", ["--node"]),
    ("replay", []),
    ("http_api", []),
    ("roundtrip", ["--runs", "100"]),
]


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True)
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="comma-separated names, e.g. patch,replay")
    parser.add_argument("--log", type=Path, default=ROOT / "tests" / "artifacts" / "benchmarks.log")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    chosen = [(n, a) for n, a in BENCHMARKS if wanted is None or n in wanted]
    if wanted is not None and len(chosen) != len(wanted):
        known = ", ".join(n for n, _ in BENCHMARKS)
        parser.error(f"unknown benchmark in {args.only!r}; known: {known}")
    args.log.parent.mkdir(parents=True, exist_ok=True)
    failed = []
    with args.log.open("a") as log:
        for name, extra in chosen:
            command = [sys.executable, str(ROOT / "tests" / "bench" / f"{name}.py"), *extra]
            began = time.monotonic()
            header = (
                f"\n===== {name}: {' '.join(['tests/bench/' + name + '.py', *extra])} "
                f"(commit {commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC) =====\n"
            )
            print(header, flush=True)
            log.write(header)
            run = subprocess.run(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            took = f"----- {name}: exit {run.returncode}, {time.monotonic() - began:.0f} s -----\n"
            print(run.stdout + took, flush=True)
            log.write(run.stdout + took)
            log.flush()
            if run.returncode != 0:
                failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
