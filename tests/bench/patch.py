"""Patch apply latency: a 1-file and a 10-file unified diff (~300-line files, one hunk each
changing two lines in the middle), each applied N times with fresh bytes every run, three ways
on the same disk in the same run:

1. the floor: the same new bytes written with temp + fsync + rename + directory fsync per file,
   plus one small INSERT committed in SQLite (WAL, synchronous=FULL); no parsing, no matching;
2. `git apply` of the same patch in a git-initialised directory (a subprocess; it never fsyncs);
3. ours: PatchFlow.submit (no tests): parse, plan, sandbox, backup blobs, journal, atomic write,
   durable events (durability "full").

    .venv/bin/python tests/bench/patch.py [--runs N] [--lines L] [--dir DIR] [--cprofile]

Runs of the three methods are interleaved (rotating order) so drift in the machine hits all of
them alike. Then a second, instrumented pass of ours attributes its time to phases (exclusive
time per phase, fsync and SQLite commit counts), so we know what to optimise. Targets (issue):
ours <= 1.5x the floor and faster than `git apply` at the median. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import difflib
import io
import os
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import actors.patches.flow as patch_flow_module
from actors.patches.flow import PatchFlow
from adapters.config import WorkspaceConfig
from adapters.ledger.records import command_from_body
from adapters.workspace import dirfd
from eventstore import SQLiteEventStore

REPO = Path(__file__).resolve().parents[2]
WARMUP = 5
METHODS = ("floor", "git apply", "ours")


# --- the workload --------------------------------------------------------------------------------
def file_lines(index: int, n_lines: int) -> list[str]:
    """Python-looking text, distinct per file (so every hunk's context is unique)."""
    lines = [f'"""Module {index} of the benchmark workspace."""', "", "import os", ""]
    i = 0
    while len(lines) < n_lines:
        lines += [
            f"def handler_{index}_{i}(request, value):",
            f"    result = value * {i % 7} + {i}  # step {i}",
            "    if result > os.cpu_count():",
            f"        return {{'ok': True, 'id': {i}, 'module': {index}}}",
            "    return None",
            "",
        ]
        i += 1
    return lines[:n_lines]


def revision(base: list[str], rev: int) -> bytes:
    """The file at revision `rev`: two lines in the middle carry the revision number."""
    lines = list(base)
    mid = len(lines) // 2
    lines[mid] = f"    threshold = {rev}  # revision {rev} of this line"
    lines[mid + 1] = f"    label = 'rev-{rev}'"
    return ("\n".join(lines) + "\n").encode()


def unified(path: str, before: bytes, after: bytes) -> str:
    return "".join(
        difflib.unified_diff(
            before.decode().splitlines(keepends=True),
            after.decode().splitlines(keepends=True),
            f"a/{path}",
            f"b/{path}",
            n=3,
        )
    )


@dataclass
class Workload:
    paths: list[str]
    bases: list[list[str]]

    def contents(self, rev: int) -> list[bytes]:
        return [revision(base, rev) for base in self.bases]

    def patch(self, rev: int) -> str:
        """The diff taking every file from revision rev-1 to rev."""
        old, new = self.contents(rev - 1), self.contents(rev)
        return "".join(unified(p, a, b) for p, a, b in zip(self.paths, old, new, strict=True))


def make_workload(n_files: int, n_lines: int) -> Workload:
    paths = [f"src/pkg/module_{i:02d}.py" for i in range(n_files)]
    return Workload(paths, [file_lines(i, n_lines) for i in range(n_files)])


def populate(root: Path, work: Workload, rev: int) -> None:
    for path, content in zip(work.paths, work.contents(rev), strict=True):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def check_files(root: Path, work: Workload, rev: int, who: str) -> None:
    for path, content in zip(work.paths, work.contents(rev), strict=True):
        if (root / path).read_bytes() != content:
            raise SystemExit(f"{who}: {path} does not hold revision {rev}")


# --- the three methods ---------------------------------------------------------------------------
class Floor:
    """Durable writes and one durable SQLite commit, nothing else."""

    def __init__(self, base: Path, work: Workload) -> None:
        self.root = base / "floor"
        populate(self.root, work, 0)
        self.conn = sqlite3.connect(base / "floor.db", isolation_level=None)
        assert self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)")

    def apply(self, paths: list[str], contents: list[bytes], record: bytes = b"x" * 64) -> None:
        """The files, then `record` (about what the patch's own durable event would hold)."""
        for path, content in zip(paths, contents, strict=True):
            target = self.root / path
            temp = target.with_name(f".{target.name}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, content)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, target)
            dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO t (v) VALUES (?)", (record,))
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class GitApply:
    def __init__(self, base: Path, work: Workload) -> None:
        self.root = base / "git"
        populate(self.root, work, 0)
        subprocess.run(["git", "init", "-q"], cwd=self.root, check=True)

    def apply(self, patch: str) -> None:
        subprocess.run(["git", "apply", "-"], cwd=self.root, input=patch.encode(), check=True)


class Ours:
    def __init__(self, base: Path, work: Workload) -> None:
        self.root = base / "ours"
        populate(self.root, work, 0)
        state = base / "state"
        state.mkdir()
        self.store = SQLiteEventStore(state / "events.db", durability="full")
        workspace = WorkspaceConfig(name="bench", path=self.root, test_command=None)
        self.flow = PatchFlow(workspace, self.store, state / "journal")
        self.flow.load()

    def apply(self, patch: str) -> None:
        body = {"patch": patch, "format": "unified", "run_tests": False}
        outcome = self.flow.submit(command_from_body(body, "bench"))
        if outcome.status != "applied":
            raise SystemExit(f"ours: patch not applied: {outcome.status} {outcome.error}")

    def close(self) -> None:
        self.store.close()


# --- measuring -----------------------------------------------------------------------------------
def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Result:
    n_files: int
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def median(self, method: str) -> float:
        return statistics.median(self.times[method])

    def p99(self, method: str) -> float:
        return quantile(self.times[method], 0.99)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(base: Path, n_files: int, n_lines: int, runs: int) -> tuple[Result, Workload, Ours]:
    work = make_workload(n_files, n_lines)
    floor, git, ours = Floor(base, work), GitApply(base, work), Ours(base, work)
    result = Result(n_files)
    for rev in range(1, WARMUP + runs + 1):
        patch, contents = work.patch(rev), work.contents(rev)
        steps: dict[str, Callable[[], object]] = {
            "floor": lambda c=contents: floor.apply(work.paths, c),
            "git apply": lambda p=patch: git.apply(p),
            "ours": lambda p=patch: ours.apply(p),
        }
        shift = rev % len(METHODS)
        for method in METHODS[shift:] + METHODS[:shift]:
            elapsed = timed(steps[method])
            if rev > WARMUP:
                result.times[method].append(elapsed)
        for root, who in ((floor.root, "floor"), (git.root, "git apply"), (ours.root, "ours")):
            check_files(root, work, rev, who)
    floor.close()
    return result, work, ours


# --- where our time goes -------------------------------------------------------------------------
class PhaseClock:
    """Exclusive time per phase: a wrapped call's time minus the wrapped calls inside it."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []  # [label, started, time of wrapped children]
        self.run: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.runs: list[dict[str, float]] = []
        self.total_calls: dict[str, int] = defaultdict(int)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str, label: str | Callable[..., str]) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            tag = label(*args, **kwargs) if callable(label) else label
            frame = [tag, time.perf_counter(), 0.0]
            self.stack.append(frame)
            try:
                return original(*args, **kwargs)
            finally:
                self.stack.pop()
                elapsed = time.perf_counter() - frame[1]
                self.run[tag] += elapsed - frame[2]
                self.calls[tag] += 1
                if self.stack:
                    self.stack[-1][2] += elapsed

        had = name in vars(owner) if hasattr(owner, "__dict__") else True
        setattr(owner, name, wrapper)
        self._undo.append(
            (lambda: setattr(owner, name, original)) if had else (lambda: delattr(owner, name))
        )

    def inside(self, label: str) -> bool:
        return any(frame[0] == label for frame in self.stack)

    def end_run(self) -> None:
        self.runs.append(dict(self.run))
        for tag, n in self.calls.items():
            self.total_calls[tag] += n
        self.run.clear()
        self.calls.clear()

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


SUBMIT = "submit: glue (uuid, json body, sha256, fold, outcome)"
TXN = "txn: glue (open_parent, read_at, stat, rename, unlink)"


def instrument(clock: PhaseClock, ours: Ours) -> None:
    flow, store, txns = ours.flow, ours.store, ours.flow.transactions

    def event_label(stream: str, events: Any, *_: Any, **__: Any) -> str:
        return f"sqlite commit: {' + '.join(str(e.type) for e in events)}"

    def blob_label(*_: Any, **__: Any) -> str:
        if clock.inside(TXN):
            return "sqlite commit: blob (txn backups before+after)"
        return "sqlite commit: blob (body, diff)"

    clock.wrap(flow, "submit", SUBMIT)
    clock.wrap(patch_flow_module, "parse_body", "parse_body")
    clock.wrap(patch_flow_module, "plan", "plan (sandbox, read, match, splice)")
    clock.wrap(patch_flow_module, "diff_file", "diff_file (the answer's diff + line counts)")
    clock.wrap(patch_flow_module, "files_json", "files_json (sha256 per file)")
    clock.wrap(store, "append", event_label)
    clock.wrap(store, "put_blob", blob_label)
    if hasattr(store, "put_blobs"):  # a batched variant, if the store grows one
        clock.wrap(store, "put_blobs", blob_label)
    clock.wrap(txns, "apply", TXN)
    clock.wrap(txns.journals, "write", "txn: journal write (write, rename)")
    clock.wrap(txns.journals, "clear", "txn: journal clear (unlink)")
    clock.wrap(dirfd, "write_temp", "txn: temp write (open, write, fchmod)")
    clock.wrap(os, "fsync", "os.fsync (temps, journal, dirs)")


def breakdown(ours: Ours, work: Workload, first_rev: int, runs: int) -> PhaseClock:
    clock = PhaseClock()
    instrument(clock, ours)
    try:
        for rev in range(first_rev, first_rev + runs):
            ours.apply(work.patch(rev))
            clock.end_run()
            check_files(ours.root, work, rev, "ours (instrumented)")
    finally:
        clock.restore()
    return clock


def print_breakdown(clock: PhaseClock, n_files: int) -> None:
    runs = len(clock.runs)
    labels = sorted({tag for run in clock.runs for tag in run})
    means = {tag: sum(run.get(tag, 0.0) for run in clock.runs) / runs for tag in labels}
    total = sum(means.values())
    print(f"\nWhere ours goes, {n_files}-file patch ({runs} instrumented runs; exclusive time)")
    print(f"  {'phase':<58} {'calls':>6} {'mean ms':>8} {'med ms':>8} {'share':>6}")
    for tag in sorted(labels, key=lambda t: -means[t]):
        med = statistics.median(run.get(tag, 0.0) for run in clock.runs)
        calls = clock.total_calls[tag] / runs
        print(
            f"  {tag:<58} {calls:>6.1f} {means[tag] * 1e3:>8.3f} {med * 1e3:>8.3f} "
            f"{means[tag] / total:>6.1%}"
        )
    commits = sum(clock.total_calls[t] / runs for t in labels if t.startswith("sqlite commit"))
    fsyncs = clock.total_calls["os.fsync (temps, journal, dirs)"] / runs
    print(f"  {'total (instrumented)':<58} {'':>6} {total * 1e3:>8.3f}")
    print(
        f"  per patch: {commits:.0f} SQLite commit requests (each fsyncs the WAL if it wrote a "
        f"page), {fsyncs:.0f} os.fsync calls; the floor does 1 commit + {2 * n_files} fsyncs"
    )


def print_cprofile(ours: Ours, work: Workload, first_rev: int, runs: int) -> None:
    profiler = cProfile.Profile()
    for rev in range(first_rev, first_rev + runs):
        patch = work.patch(rev)
        profiler.enable()
        ours.apply(patch)
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    print(f"\ncProfile of ours, {len(work.paths)}-file patch, {runs} runs, by tottime:")
    print("\n".join(out.getvalue().splitlines()[4:]))


# --- reporting -----------------------------------------------------------------------------------
def print_table(results: list[Result], runs: int) -> None:
    print(f"\nPatch apply latency, ms ({runs} runs each after {WARMUP} warm-up, interleaved)")
    head = f"  {'files':>5}  {'method':<10} {'median':>8} {'p99':>8}"
    print(head + f"  {'ours/this (median)':>19} {'ours/this (p99)':>16}")
    for result in results:
        ours_med, ours_p99 = result.median("ours"), result.p99("ours")
        for method in METHODS:
            med, p99 = result.median(method), result.p99(method)
            ratio = "" if method == "ours" else f"{ours_med / med:>18.2f}x {ours_p99 / p99:>15.2f}x"
            print(
                f"  {result.n_files:>5}  {method:<10} {med * 1e3:>8.2f} {p99 * 1e3:>8.2f}  {ratio}"
            )
    print("\nTargets: ours <= 1.5x floor and < git apply, at the median")
    for result in results:
        to_floor = result.median("ours") / result.median("floor")
        to_git = result.median("ours") / result.median("git apply")
        print(
            f"  {result.n_files:>2} file(s): ours/floor {to_floor:.2f}x "
            f"({'met' if to_floor <= 1.5 else 'NOT met'}), ours/git apply {to_git:.2f}x "
            f"({'met' if to_git < 1.0 else 'NOT met'})"
        )


def filesystem_of(path: Path) -> str:
    best, fstype, device = "", "?", "?"
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            dev, mount, kind = line.split()[:3]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, fstype, device = mount, kind, dev
    return f"{device} ({fstype}, mounted on {best or '?'})"


@contextlib.contextmanager
def scratch(parent: str) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="ghost-bench-patch-", dir=parent)).resolve()
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--lines", type=int, default=300, help="lines per file")
    parser.add_argument("--breakdown-runs", type=int, default=100)
    parser.add_argument("--dir", default="/tmp", help="parent of the scratch directory")
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile top 15")
    args = parser.parse_args()

    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True)
    same_disk = os.stat(args.dir).st_dev == os.stat(REPO).st_dev
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
        f"{git.stdout.strip()}, {os.cpu_count()} cpus"
    )
    print(
        f"scratch under {args.dir}: {filesystem_of(Path(args.dir).resolve())}; "
        f"same device as the repo ({REPO}): {'yes' if same_disk else 'NO'}"
    )

    results = []
    with scratch(args.dir) as root:
        for n_files in (1, 10):
            base = root / f"files-{n_files}"
            base.mkdir()
            result, work, ours = measure(base, n_files, args.lines, args.runs)
            patch = work.patch(1)
            print(
                f"\n{n_files}-file patch: {len(patch)} chars, {patch.count('@@ -')} hunk(s), "
                f"{len(work.contents(0)[0])} bytes per file"
            )
            results.append(result)
            next_rev = WARMUP + args.runs + 1
            try:
                print_breakdown(breakdown(ours, work, next_rev, args.breakdown_runs), n_files)
                if args.cprofile:
                    print_cprofile(ours, work, next_rev + args.breakdown_runs, 50)
            finally:
                ours.close()
    print_table(results, args.runs)


if __name__ == "__main__":
    main()
