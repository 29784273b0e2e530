"""Whole-node fault and load tests: a real ghost-node process driven over loopback HTTP, a
ledger of every answer it gave, and the checks every fault test ends with.

- `start_node`: `bin/ghost-node --config ... --state-dir ...` (tests/node_process.py), with
  optional environment (Slack, libfaketime) and health rounds every second.
- `Ledger`: every answer (HTTP status, patch id, outcome, position) from any client thread.
- `check_answers`: every acknowledged answer has its events (same patch, same outcome, its
  position stored); `check_patch_files`: the files only patches touch hold exactly what the
  patch events say (so a half-applied patch cannot hide behind a watcher rescan);
  `ghost_verify`: `bin/ghost --state-dir DIR replay --verify --json` exit 0.
- Patch bodies in every format, built from what is on disk now.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.ledger.projection import fold_all
from eventstore import RecordedEvent, SQLiteEventStore, StoreError
from tests.adapters.web.support import Reply
from tests.node_process import NodeProcess

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "bin" / "ghost-node"
GHOST = ROOT / "bin" / "ghost"
TESTS = ROOT / "tests"
FAKE_TUNNEL = TESTS / "adapters" / "processes" / "fake_tunnel.py"

FAST_SUPERVISOR = """
[supervisor]
min_backoff_s = 0.1
max_backoff_s = 1.0
max_restarts = 20
period_s = 60
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the node --------------------------------------------------------------------------------
def start_node(
    base: Path,
    config: Path,
    state_dir: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    wait: bool = True,
) -> NodeProcess:
    """`bin/ghost-node --config CONFIG --state-dir STATE_DIR` in `base`, without rate limits,
    with health rounds every second instead of ten (the node halves the watchdog timeout;
    without NOTIFY_SOCKET no ping is sent anywhere)."""
    return NodeProcess(
        base,
        *("--config", str(config), "--state-dir", str(state_dir)),
        *args,
        env={"GHOST_HTTP_RATE": "0", "WATCHDOG_USEC": "2000000", **(env or {})},
        state_dir=state_dir,
        wait=wait,
    )


def read_events(state_dir: Path, types: Sequence[str] | None = None) -> list[RecordedEvent]:
    try:
        with SQLiteEventStore(state_dir / "events.db", readonly=True) as store:
            return store.read_all(types=list(types) if types else None)
    except StoreError:
        return []


def ghost_verify(state_dir: Path) -> dict[str, Any]:
    """`bin/ghost --state-dir DIR replay --verify --json`; asserts exit 0, returns its JSON."""
    done = subprocess.run(
        [sys.executable, str(GHOST), "--state-dir", str(state_dir), "replay", "--verify", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"ghost replay --verify: {done.stdout[-3000:]}{done.stderr}"
    out: dict[str, Any] = json.loads(done.stdout)
    assert out["verify"]["ok"], out["verify"]
    assert out["verify"]["chain"]["ok"], out["verify"]
    assert out["verify"]["drift"] == []
    return out


def write_config(
    base: Path,
    workspaces: Sequence[Mapping[str, Any]],
    extra: str = "",
    supervisor: str = FAST_SUPERVISOR,
) -> Path:
    """ghost.toml with `[[workspace]]` tables (values as TOML via json.dumps) and `extra`."""
    parts = []
    for ws in workspaces:
        lines = ["[[workspace]]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in ws.items()]
        parts.append("\n".join(lines))
    path = base / "ghost.toml"
    path.write_text("\n\n".join(parts) + "\n" + supervisor + extra)
    return path


# --- the ledger of answers ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Answer:
    action: str  # submit | approve | reject | rollback
    http: int
    patch_id: str | None
    status: str | None  # the outcome's status (applied, dry_run, ...), None for bare errors
    position: int | None
    code: str | None  # the error code for errors
    paths: tuple[str, ...] = ()
    latency_s: float = 0.0


@dataclass
class Ledger:
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self, action: str, reply: Reply, paths: Sequence[str] = (), latency_s: float = 0.0
    ) -> Answer:
        try:
            body = reply.json
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        answer = Answer(
            action,
            reply.status,
            body.get("patch_id"),
            body.get("status"),
            body.get("position"),
            error.get("code") if isinstance(error, dict) else None,
            tuple(paths),
            latency_s,
        )
        with self.lock:
            self.answers.append(answer)
        return answer

    def snapshot(self) -> list[Answer]:
        with self.lock:
            return list(self.answers)

    def by_http(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for a in self.snapshot():
            counts[a.http] = counts.get(a.http, 0) + 1
        return dict(sorted(counts.items()))


# What the store must hold for each acknowledged outcome (an event of that type in the
# patch's stream at or before the answer's position).
_EVIDENCE = {
    "applied": "PatchApplied",
    "dry_run": "PatchDryRun",
    "pending_approval": "PatchPendingApproval",
    "rejected": "PatchRejected",
    "rolled_back": "PatchRolledBack",
    "failed": "TestsFinished",
}


def check_answers(state_dir: Path, answers: Iterable[Answer]) -> dict[str, int]:
    """Every acknowledged answer has its events: the position it named is stored, in its
    patch's stream, and that stream holds the event its status claims. Returns counts."""
    events = read_events(state_dir)
    by_position = {e.position: e for e in events}
    streams: dict[str, list[RecordedEvent]] = {}
    for e in events:
        streams.setdefault(e.stream, []).append(e)
    checked: dict[str, int] = {}
    for a in answers:
        if a.patch_id is None or a.status is None or a.status == "queued":
            continue
        stream = streams.get(f"patch-{a.patch_id}", [])
        assert stream, f"acknowledged {a} but the store has no events for it"
        assert a.position is not None, a
        at = by_position.get(a.position)
        assert at is not None, f"{a}: position {a.position} is not stored"
        assert at.stream == f"patch-{a.patch_id}", f"{a}: position {a.position} is {at.stream}"
        wanted = _EVIDENCE.get(a.status)
        if wanted is not None:
            upto = [e.type for e in stream if e.position <= a.position]
            assert wanted in upto, f"{a}: no {wanted} in {upto}"
        checked[a.status] = checked.get(a.status, 0) + 1
    return checked


def check_patch_files(
    state_dir: Path, root: Path, workspace: str, original: Mapping[str, str], paths: Iterable[str]
) -> dict[str, int]:
    """Files that only patches change must hold exactly what the patch events say (the fold of
    PatchApplied / PatchRolledBack / PatchRecovered in order), and no patch may be left
    `applying`-with-a-journal. Returns the patch views by status."""
    with SQLiteEventStore(state_dir / "events.db", readonly=True) as store:
        events = store.read_all()
    expected: dict[str, str | None] = dict(original)
    statuses: dict[str, int] = {}
    mine = {
        e.stream
        for e in events
        if e.type == "PatchReceived" and e.data.get("workspace") == workspace
    }
    for e in events:
        if e.stream not in mine:
            continue
        changes = e.data.get("changes", ())
        if e.type in ("PatchApplied", "PatchRolledBack"):
            key = "after_sha256"
        elif e.type == "PatchRecovered" and e.data.get("outcome") == "applied":
            key = "after_sha256" if e.data.get("kind") == "apply" else "before_sha256"
        else:
            continue
        for change in changes:
            if change["path"] in expected:
                expected[change["path"]] = change.get(key)
    for view in fold_all(events).values():
        if view.workspace == workspace:
            statuses[view.status] = statuses.get(view.status, 0) + 1
    for path in paths:
        target = root / path
        actual = sha(target.read_bytes()) if target.exists() else None
        assert actual == expected[path], f"{workspace}:{path}: disk differs from the patch events"
    return statuses


def journal_left(state_dir: Path) -> list[str]:
    journal = state_dir / "journal"
    return sorted(str(p.relative_to(journal)) for p in journal.rglob("*.json"))


# --- patch bodies ------------------------------------------------------------------------------
FORMATS = ("v4a", "unified", "search_replace", "files")


def value_line(path: str, n: int) -> str:
    return f"value = {n}  # {path}"


def read_line(root: Path, path: str) -> str:
    return (root / path).read_text().rstrip("\n")


def patch_body(root: Path, paths: Sequence[str], n: int, fmt: str, **extra: Any) -> dict[str, Any]:
    """A body changing the one line of each file in `paths` to `value = n`, in format `fmt`,
    written against what is on disk now."""
    olds = {p: read_line(root, p) for p in paths}
    new = {p: value_line(p, n) for p in paths}
    if fmt == "files":
        files = [{"path": p, "content": new[p] + "\n"} for p in paths]
        return {"format": "files", "files": files, **extra}
    if fmt == "v4a":
        parts = ["*** Begin Patch"]
        for p in paths:
            parts += [f"*** Update File: {p}", "@@", f"-{olds[p]}", f"+{new[p]}"]
        text = "\n".join([*parts, "*** End Patch", ""])
    elif fmt == "unified":
        parts = []
        for p in paths:
            parts += [f"--- a/{p}", f"+++ b/{p}", "@@ -1 +1 @@", f"-{olds[p]}", f"+{new[p]}"]
        text = "\n".join(parts) + "\n"
    elif fmt == "search_replace":
        parts = []
        for p in paths:
            parts += [p, "<<<<<<< SEARCH", olds[p], "=======", new[p], ">>>>>>> REPLACE"]
        text = "\n".join(parts) + "\n"
    else:
        raise ValueError(fmt)
    return {"format": fmt, "patch": text, **extra}


def editor_save(path: Path, content: str, rng: random.Random | None = None) -> None:
    """Save like an editor: a temp file beside the target renamed over it (or, sometimes, an
    in-place write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if rng is not None and rng.random() < 0.3:
        path.write_text(content)
        return
    temp = path.with_name(f".{path.name}.{os.getpid()}.swp")
    temp.write_text(content)
    os.replace(temp, path)


def rss_slope(samples: Sequence[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, bytes per second."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (r - mean_r) for t, r in samples) / var


# --- fault mechanisms ---------------------------------------------------------------------------
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


# libfaketime 0.9.10 and Python 3.11, as found here: without FAKETIME_DONT_FAKE_MONOTONIC=1 it
# fakes CLOCK_MONOTONIC too but not sem_clockwait(), so every timed wait of `threading`
# (Event.wait, Lock.acquire(timeout=)) hangs; with it, only the wall clock moves (what a real
# clock step does), but its clock_nanosleep() turns time.sleep() into EINVAL
# (wolfcw/libfaketime#426). The clock tests therefore run a node that starts no subprocess
# (no test_command, tunnel or service: adapters/processes/group.py is the node's only
# time.sleep() caller), with FAKETIME_DONT_FAKE_MONOTONIC=1.
def faketime_env(offset_file: Path) -> dict[str, str]:
    """LD_PRELOAD libfaketime; the wall clock's offset (e.g. "-3600") is read from
    `offset_file`, again at most once a second, so a test can step it during a run."""
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def try_mount_tmpfs(target: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` on `target`; None on success, else why it is impossible."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(target)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount: {exc}"
    if done.returncode != 0:
        return f"mount -t tmpfs: {done.stderr.strip() or done.returncode}"
    return None


def umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30, check=False)


def fill(directory: Path, leave_bytes: int) -> Path:
    """A ballast file taking all but about `leave_bytes` of the filesystem's free space."""
    ballast = directory / "ballast.bin"
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    chunk = b"\0" * (1 << 20)
    todo = max(0, free - leave_bytes)
    with open(ballast, "wb") as handle:
        while todo > 0:
            piece = chunk[: min(len(chunk), todo)]
            try:
                handle.write(piece)
            except OSError:
                break
            todo -= len(piece)
        handle.flush()
        os.fsync(handle.fileno())
    return ballast
