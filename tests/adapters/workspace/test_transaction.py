from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters.workspace import dirfd
from adapters.workspace.changes import CallerJournal, FileChange, FileChangedError
from adapters.workspace.transaction import FileTransactions
from eventstore import SQLiteEventStore

ROOT = Path(__file__).resolve().parents[3]
HELPER = Path(__file__).parent / "helpers" / "txn_forever.py"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    with SQLiteEventStore(tmp_path / "events.db") as s:
        yield s


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "a.py").write_bytes(b"a = 1\n")
    (root / "pkg" / "b.py").write_bytes(b"b = 2\r\n")
    os.chmod(root / "a.py", 0o755)
    return root


def txns(ws: Path, store: SQLiteEventStore, reap_later: bool = False) -> FileTransactions:
    return FileTransactions(ws, ws.parent / "state" / "journal", store, reap_later=reap_later)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_applies_every_change_and_keeps_modes(ws: Path, store: SQLiteEventStore) -> None:
    t = txns(ws, store)
    committed = []
    t.apply(
        "p1",
        [
            FileChange("a.py", b"a = 1\n", b"a = 10\n"),
            FileChange("pkg/b.py", b"b = 2\r\n", None),
            FileChange("new/dir/c.py", None, b"c = 3\n"),
        ],
        lambda: committed.append(True),
    )
    assert committed == [True]
    assert snapshot(ws) == {"a.py": b"a = 10\n", "new/dir/c.py": b"c = 3\n"}
    assert os.stat(ws / "a.py").st_mode & 0o777 == 0o755
    assert t.pending() == []
    assert not list(ws.rglob("*.tmp"))


def test_reap_later_keeps_old_files_under_a_second_name_until_reaped(
    ws: Path, store: SQLiteEventStore
) -> None:
    t = txns(ws, store, reap_later=True)
    changes = [
        FileChange("a.py", b"a = 1\n", b"a = 10\n"),
        FileChange("pkg/b.py", b"b = 2\r\n", None),
    ]
    t.apply("p1", changes, lambda: None)
    assert snapshot(ws) == {
        "a.py": b"a = 10\n",
        ".a.py.ghost-p1.old.tmp": b"a = 1\n",  # the replaced inode, not yet freed
        "pkg/.b.py.ghost-p1.old.tmp": b"b = 2\r\n",  # the deletion, renamed aside
    }
    t.reap()
    assert snapshot(ws) == {"a.py": b"a = 10\n"}
    # The next transaction reaps whatever its caller did not.
    t.apply("p2", [FileChange("a.py", b"a = 10\n", b"a = 2\n")], lambda: None)
    t.apply("p3", [FileChange("a.py", b"a = 2\n", b"a = 3\n")], lambda: None)
    assert snapshot(ws) == {"a.py": b"a = 3\n", ".a.py.ghost-p3.old.tmp": b"a = 2\n"}
    t.reap()
    assert snapshot(ws) == {"a.py": b"a = 3\n"}


def test_discard_leftovers_removes_what_a_dead_process_left(
    ws: Path, store: SQLiteEventStore
) -> None:
    changes = [
        FileChange("a.py", b"a = 1\n", b"a = 10\n"),
        FileChange("pkg/b.py", b"b = 2\r\n", None),
    ]
    txns(ws, store, reap_later=True).apply("p1", changes, lambda: None)  # never reaped
    later = txns(ws, store)  # the next process
    later.discard_leftovers("p1", ["a.py", "pkg/b.py", "gone/c.py"])
    later.discard_leftovers("p1", ["a.py"])  # idempotent
    assert snapshot(ws) == {"a.py": b"a = 10\n"}


def apply_recorded(
    t: FileTransactions,
    changes: list[FileChange],
    record: Callable[[], object] | None,
    txn_id: str = "p1",
) -> None:
    """An apply journaled by the caller (`CallerJournal`), with its `record` if any."""
    t.apply(txn_id, changes, lambda: None, CallerJournal(record))


def test_record_runs_before_any_rename_while_the_contents_are_staged(
    ws: Path, store: SQLiteEventStore
) -> None:
    t = txns(ws, store)
    seen: list[dict[str, bytes]] = []
    changes = [
        FileChange("a.py", b"a = 1\n", b"a = 10\n"),
        FileChange("pkg/b.py", b"b = 2\r\n", None),
    ]
    apply_recorded(t, changes, lambda: seen.append(snapshot(ws)))
    assert seen == [{"a.py": b"a = 1\n", "pkg/b.py": b"b = 2\r\n"}]  # unnamed temps: unseen
    assert snapshot(ws) == {"a.py": b"a = 10\n"}
    assert os.stat(ws / "a.py").st_mode & 0o777 == 0o755
    # An add may make directories: recorded first, then staged.
    made: list[bool] = []
    apply_recorded(
        t, [FileChange("new/c.py", None, b"c\n")], lambda: made.append((ws / "new").exists()), "p2"
    )
    assert made == [False]
    assert snapshot(ws) == {"a.py": b"a = 10\n", "new/c.py": b"c\n"}


def test_a_failing_record_changes_nothing(ws: Path, store: SQLiteEventStore) -> None:
    before = snapshot(ws)

    def refuse() -> None:
        raise RuntimeError("the store is locked")

    with pytest.raises(RuntimeError):
        apply_recorded(txns(ws, store), [FileChange("a.py", b"a = 1\n", b"x\n")], refuse)
    assert snapshot(ws) == before


def test_a_file_changed_during_the_record_is_refused_after_it(
    ws: Path, store: SQLiteEventStore
) -> None:
    recorded = []
    with pytest.raises(FileChangedError):
        apply_recorded(
            txns(ws, store),
            [FileChange("a.py", b"stale\n", b"x\n")],
            lambda: recorded.append(True),
        )
    assert recorded == [True]
    assert snapshot(ws) == {"a.py": b"a = 1\n", "pkg/b.py": b"b = 2\r\n"}


@pytest.mark.parametrize("broken", ["create_unnamed", "link_unnamed"])
def test_without_unnamed_temps_named_ones_do(
    ws: Path, store: SQLiteEventStore, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    def unsupported(*args: object) -> None:
        raise OSError(95, "not here")

    monkeypatch.setattr(dirfd, broken, unsupported)
    apply_recorded(txns(ws, store), [FileChange("a.py", b"a = 1\n", b"a = 10\n")], lambda: None)
    assert snapshot(ws) == {"a.py": b"a = 10\n", "pkg/b.py": b"b = 2\r\n"}


@pytest.mark.parametrize("record", [False, True])
def test_a_full_disk_leaves_no_temp(
    ws: Path, store: SQLiteEventStore, monkeypatch: pytest.MonkeyPatch, record: bool
) -> None:
    """The write fails after the temp's open (named or not): nothing is left behind."""

    def no_space(fd: int, content: bytes, mode: int) -> int:
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dirfd, "_fill", no_space)
    before = snapshot(ws)
    changes = [
        FileChange("a.py", b"a = 1\n", b"a = 10\n"),
        FileChange("new/c.py", None, b"c\n"),
    ]
    for batch in ([changes[0]], changes):  # an update (overlapped), then with an add
        with pytest.raises(OSError, match="No space"):
            apply_recorded(txns(ws, store), batch, (lambda: None) if record else None)
        assert snapshot(ws) == before


_DIE_IN_RECORD = """
import os, sys, time
from pathlib import Path
from adapters.workspace.changes import CallerJournal, FileChange
from adapters.workspace.transaction import FileTransactions
from eventstore import SQLiteEventStore
root, state = Path(sys.argv[1]), Path(sys.argv[2])
t = FileTransactions(root, state / "journal", SQLiteEventStore(state / "events.db"))
def die():
    time.sleep(0.3)  # the staging thread has written and fsynced its temps by now
    os._exit(9)
t.apply("p1", [FileChange("a.py", b"a = 1\\n", b"a = 10\\n")], lambda: None, CallerJournal(die))
"""


def test_a_crash_during_the_record_leaves_no_temp(ws: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    died = subprocess.run(
        [sys.executable, "-c", _DIE_IN_RECORD, str(ws), str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert died.returncode == 9, died.stderr
    assert snapshot(ws) == {"a.py": b"a = 1\n", "pkg/b.py": b"b = 2\r\n"}


def test_backups_are_blobs(ws: Path, store: SQLiteEventStore) -> None:
    txns(ws, store).apply("p1", [FileChange("a.py", b"a = 1\n", b"x\n")], lambda: None)
    assert store.get_blob(__import__("hashlib").sha256(b"a = 1\n").hexdigest()) == b"a = 1\n"


def test_a_file_changed_since_the_check_aborts_everything(
    ws: Path, store: SQLiteEventStore
) -> None:
    before = snapshot(ws)
    with pytest.raises(FileChangedError, match=r"pkg/b\.py changed on disk"):
        txns(ws, store).apply(
            "p1",
            [
                FileChange("a.py", b"a = 1\n", b"a = 10\n"),
                FileChange("pkg/b.py", b"stale\n", b"b = 20\n"),
            ],
            lambda: None,
        )
    assert snapshot(ws) == before
    assert txns(ws, store).pending() == []


def test_a_failing_commit_restores_the_before_side(ws: Path, store: SQLiteEventStore) -> None:
    before = snapshot(ws)

    def commit() -> None:
        raise RuntimeError("store is full")

    with pytest.raises(RuntimeError, match="store is full"):
        txns(ws, store).apply(
            "p1",
            [FileChange("a.py", b"a = 1\n", b"z\n"), FileChange("n.py", None, b"n\n")],
            commit,
        )
    assert snapshot(ws) == before


def test_symlinked_directory_swapped_in_is_refused(
    ws: Path, store: SQLiteEventStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.py").write_bytes(b"b = 2\r\n")
    (ws / "pkg" / "b.py").unlink()
    (ws / "pkg").rmdir()
    (ws / "pkg").symlink_to(outside)  # swapped after the sandbox looked
    with pytest.raises(dirfd.UnsafePathError):
        txns(ws, store).apply("p1", [FileChange("pkg/b.py", b"b = 2\r\n", b"evil\n")], lambda: None)
    assert (outside / "b.py").read_bytes() == b"b = 2\r\n"


def test_symlink_in_place_of_the_file_is_refused(
    ws: Path, store: SQLiteEventStore, tmp_path: Path
) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"secret\n")
    (ws / "link.py").symlink_to(target)
    with pytest.raises(dirfd.UnsafePathError):
        txns(ws, store).apply("p1", [FileChange("link.py", b"secret\n", b"x\n")], lambda: None)
    assert target.read_bytes() == b"secret\n"


@pytest.mark.parametrize(
    "bad", ["../x", "/etc/passwd", "a/../../x", "", "a//b/./c", "a/./b", "a\x00b"]
)
def test_non_plain_paths_are_refused(ws: Path, store: SQLiteEventStore, bad: str) -> None:
    with pytest.raises((dirfd.UnsafePathError, ValueError)):
        txns(ws, store).apply("p1", [FileChange(bad, None, b"x")], lambda: None)


def test_recover_rolls_back_uncommitted_and_forward_committed(
    ws: Path, store: SQLiteEventStore
) -> None:
    t = txns(ws, store)
    changes = [FileChange("a.py", b"a = 1\n", b"a = 10\n"), FileChange("z.py", None, b"z\n")]

    def die() -> None:
        raise KeyboardInterrupt  # stands in for a crash right at the commit point

    # Simulate a crash after the renames: write the journal and files by hand.
    t.journals.write("p2", changes)
    (ws / "a.py").write_bytes(b"a = 10\n")
    for change in changes:
        if change.after is not None:
            store.put_blob(change.after)
        if change.before is not None:
            store.put_blob(change.before)
    [recovery] = t.recover(committed=lambda txn: False)
    assert recovery.outcome == "rolled_back"
    assert snapshot(ws)["a.py"] == b"a = 1\n"
    assert "z.py" not in snapshot(ws)

    t.journals.write("p3", changes)
    [recovery] = t.recover(committed=lambda txn: True)
    assert recovery.outcome == "applied"
    assert snapshot(ws)["a.py"] == b"a = 10\n"
    assert snapshot(ws)["z.py"] == b"z\n"
    assert t.recover(committed=lambda txn: True) == []
    with pytest.raises(KeyboardInterrupt):
        t.apply("p4", [FileChange("a.py", b"a = 10\n", b"q\n")], die)
    assert snapshot(ws)["a.py"] == b"a = 10\n"


def _expected_after_recovery(store: SQLiteEventStore) -> dict[str, bytes]:
    expected: dict[str, bytes | None] = {}
    for event in store.read_all(types=["Committed"]):
        for path, content in event.data["files"].items():
            expected[path] = None if content is None else content.encode()
    return {p: c for p, c in expected.items() if c is not None}


def run_crash_trials(tmp_path: Path, trials: int, seed: int | None) -> int:
    rng = random.Random(seed)
    root, state = tmp_path / "ws", tmp_path / "state"
    root.mkdir()
    state.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    recovered = 0
    for _ in range(trials):
        child = subprocess.Popen([sys.executable, str(HELPER), str(root), str(state)], env=env)
        time.sleep(rng.uniform(0.4, 1.2))
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        with SQLiteEventStore(state / "events.db") as store:
            t = FileTransactions(root, state / "journal", store)
            done = t.recover(committed=lambda txn, s=store: s.stream_version(f"txn-{txn}") > 0)
            recovered += len(done)
            assert t.pending() == []
            assert store.verify().ok
            on_disk = {k: v for k, v in snapshot(root).items() if not k.endswith(".tmp")}
            assert on_disk == _expected_after_recovery(store)
            assert not [k for k in snapshot(root) if k.endswith(".tmp")]
    return recovered


def test_sigkill_during_transactions_leaves_all_or_nothing(tmp_path: Path) -> None:
    run_crash_trials(tmp_path, trials=6, seed=7)


@pytest.mark.slow
def test_sigkill_many_trials(tmp_path: Path) -> None:
    run_crash_trials(tmp_path, trials=60, seed=None)


def test_recovery_never_overwrites_a_file_edited_while_the_node_was_down(
    ws: Path, store: SQLiteEventStore
) -> None:
    t = txns(ws, store)
    changes = [FileChange("a.py", b"a = 1\n", b"a = 10\n"), FileChange("z.py", None, b"z\n")]
    for change in changes:
        for content in (change.before, change.after):
            if content is not None:
                store.put_blob(content)
    t.journals.write("p9", changes)  # a crash right after the journal was written
    (ws / "a.py").write_bytes(b"a = 'typed by the developer later'\n")
    [recovery] = t.recover(committed=lambda txn: False)
    assert recovery.kept == ("a.py",)
    assert (ws / "a.py").read_bytes() == b"a = 'typed by the developer later'\n"
    assert t.pending() == []
