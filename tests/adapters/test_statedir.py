"""adapters/statedir.py: mode, lock (in and across processes), node.json, run marker, token."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.durable import atomic_write
from adapters.statedir import (
    PreviousRun,
    StateDir,
    StateDirError,
    StateDirLocked,
)

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_open_creates_dir_0700_with_logs(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "a" / ".ghost")
    assert sd.open() is None
    try:
        assert mode(sd.path) == 0o700
        assert sd.logs_dir.is_dir()
        assert mode(sd.logs_dir) == 0o700
        assert sd.locked
        run = json.loads(sd.run_path.read_text())
        assert run["pid"] == os.getpid()
        assert sd.lock_path.read_text().strip() == str(os.getpid())
    finally:
        sd.close()
    assert not sd.run_path.exists()
    assert not sd.locked
    sd.close()  # idempotent


def test_loose_mode_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "st"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    with caplog.at_level(logging.WARNING), StateDir(path):
        assert mode(path) == 0o700
    assert "tightened to 0700" in caplog.text


def test_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "st").write_text("x")
    with pytest.raises(StateDirError, match="not a directory"):
        StateDir(tmp_path / "st").open()


def test_second_open_in_process_is_locked(tmp_path: Path) -> None:
    with StateDir(tmp_path / "st"):
        other = StateDir(tmp_path / "st", pid=4242)
        with pytest.raises(StateDirLocked) as info:
            other.open()
        assert info.value.pid == os.getpid()
        assert str(os.getpid()) in str(info.value)
        assert not other.locked
    # released: the next one gets it
    with StateDir(tmp_path / "st"):
        pass


HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from adapters.statedir import StateDir
    sd = StateDir(Path(sys.argv[2]))
    sd.open()
    sd.write_node_json("127.0.0.1", 5051, "http://127.0.0.1:5051/")
    print("locked", flush=True)
    if sys.argv[3] == "clean":
        sys.stdin.readline()
        sd.close()
    else:
        time.sleep(60)
    """
)


def start_holder(state: Path, how: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ROOT), str(state), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_across_processes_and_unclean_stop(tmp_path: Path) -> None:
    state = tmp_path / "st"
    proc = start_holder(state, "kill")
    try:
        with pytest.raises(StateDirLocked) as info:
            StateDir(state).open()
        assert info.value.pid == proc.pid
        assert f"process {proc.pid}" in str(info.value)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # SIGKILL: the kernel released the lock; run marker and node.json are left behind
    assert (state / "node.json").exists()
    sd = StateDir(state)
    previous = sd.open()
    try:
        assert previous is not None
        assert previous.pid == proc.pid
        assert previous.started_at is not None
        assert not sd.node_json_path.exists()  # stale one removed
    finally:
        sd.close()
    # after a clean stop: nothing to report
    with StateDir(state) as again:
        assert again.previous_run is None


def test_clean_stop_in_another_process(tmp_path: Path) -> None:
    state = tmp_path / "st"
    proc = start_holder(state, "clean")
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=10) == 0
    assert not (state / "node.json").exists()
    assert not (state / "run").exists()
    assert StateDir(state).open() is None


def test_corrupt_run_marker_is_still_an_unclean_stop(tmp_path: Path) -> None:
    state = tmp_path / "st"
    state.mkdir(mode=0o700)
    (state / "run").write_text("{not json")
    with StateDir(state) as sd:
        assert sd.previous_run == PreviousRun(None, None)


def test_node_json(tmp_path: Path) -> None:
    t = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    sd = StateDir(tmp_path / "st", pid=99, clock=lambda: t)
    with pytest.raises(StateDirError):
        sd.write_node_json("127.0.0.1", 1, "x")  # not open yet
    with sd:
        info = sd.write_node_json("127.0.0.1", 40123, "http://127.0.0.1:40123/")
        on_disk = json.loads(sd.node_json_path.read_text())
        assert on_disk == info
        assert on_disk == {
            "pid": 99,
            "host": "127.0.0.1",
            "port": 40123,
            "url": "http://127.0.0.1:40123/",
            "started_at": "2024-05-01T12:00:00+00:00",
        }
        assert sd.read_node_json() == on_disk
        # no temp files left behind by the atomic write
        assert not [p for p in sd.path.iterdir() if p.name.endswith(".tmp")]
    assert not sd.node_json_path.exists()
    assert sd.read_node_json() is None


def test_token_generated_once_0600(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "st")
    with sd:
        first = sd.token()
        assert first.source == "generated"
        assert len(first.value) >= 40
        assert mode(sd.token_path) == 0o600
        second = sd.token()
        assert second.source == "file"
        assert second.value == first.value
        assert first.value not in repr(first)
    assert StateDir(tmp_path / "st").read_token() == second


def test_env_token_wins_and_is_not_written(tmp_path: Path) -> None:
    with StateDir(tmp_path / "st") as sd:
        token = sd.token("from-env")
        assert (token.value, token.source) == ("from-env", "env")
        assert not sd.token_path.exists()
        assert sd.read_token() is None
        assert sd.read_token("from-env") == token


def test_token_file_mode_is_fixed_and_empty_file_regenerated(tmp_path: Path) -> None:
    with StateDir(tmp_path / "st") as sd:
        sd.token_path.write_text("  abc \n")
        os.chmod(sd.token_path, 0o644)
        assert sd.token().value == "abc"
        assert mode(sd.token_path) == 0o600
        sd.token_path.write_text("")
        regenerated = sd.token()
        assert regenerated.source == "generated"
        assert regenerated.value


def test_token_symlink_refused(tmp_path: Path) -> None:
    with StateDir(tmp_path / "st") as sd:
        (tmp_path / "elsewhere").write_text("tok")
        sd.token_path.symlink_to(tmp_path / "elsewhere")
        with pytest.raises(StateDirError, match="not a regular file"):
            sd.token()


def test_atomic_write_replaces(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two", mode=0o640)
    assert target.read_bytes() == b"two"
    assert mode(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
