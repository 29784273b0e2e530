from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.processes import tree
from adapters.processes.capture import StreamCapture
from adapters.processes.env import clean_env
from adapters.processes.group import ExitStatus, ProcessGroup, ProcessStartError

Starter = Callable[..., ProcessGroup]


@pytest.fixture
def start() -> Iterator[Starter]:
    """ProcessGroup.start, with every group terminated at teardown even if the test fails."""
    groups: list[ProcessGroup] = []

    def starter(command: list[str], **kw: Any) -> ProcessGroup:
        groups.append(ProcessGroup.start(command, **kw))
        return groups[-1]

    yield starter
    for group in groups:
        group.terminate(grace_s=0.2)


def started_pids(fakes: Any, group: ProcessGroup) -> list[int]:
    out = group.captures["stdout"]
    fakes.wait_for(lambda: "pids=" in out.tail_text())
    pids: list[int] = fakes.pids_of(out.tail_text())
    return pids


def test_terminate_kills_grandchildren(fakes: Any, start: Starter) -> None:
    group = start(fakes.service("spawn", "--children", "3"))
    kids = started_pids(fakes, group)
    assert len(tree.group_members(group.pgid)) == 4

    status = group.terminate(grace_s=2)

    assert status == ExitStatus(None, signal.SIGTERM)
    assert tree.group_members(group.pgid) == []
    assert fakes.alive(kids) == []
    assert group.terminate() is status  # idempotent


def test_sigterm_ignoring_processes_get_sigkill_after_grace(fakes: Any, start: Starter) -> None:
    group = start(fakes.service("spawn", "--children", "2", "--ignore-term"))
    kids = started_pids(fakes, group)

    began = time.monotonic()
    status = group.terminate(grace_s=0.4)
    took = time.monotonic() - began

    assert status.signal == signal.SIGKILL
    assert status.describe() == "killed by SIGKILL"
    assert 0.4 <= took < 3
    assert fakes.alive(kids) == []
    assert tree.group_members(group.pgid) == []


def test_descendant_in_its_own_session_is_killed_too(fakes: Any, start: Starter) -> None:
    group = start(fakes.service("spawn", "--children", "1", "--setsid"))
    kids = started_pids(fakes, group)
    assert os.getpgid(kids[0]) != group.pgid  # it left the group: killpg alone would miss it

    group.terminate(grace_s=1)

    fakes.wait_for(lambda: not fakes.alive(kids), timeout=2)


def test_orphans_of_an_exited_leader_are_killed(fakes: Any, start: Starter) -> None:
    group = start(fakes.service("spawn", "--children", "2", "--ignore-term", "--leader-exits"))
    status = group.wait(timeout=5)
    kids = started_pids(fakes, group)  # the exit can be seen before the reader got the output

    assert status == ExitStatus(0, None)
    assert len(fakes.alive(kids)) == 2  # the leader is gone, its orphans are not
    assert group.terminate(grace_s=0.3) == ExitStatus(0, None)
    assert fakes.alive(kids) == []


def test_wait_times_out_then_reports_exit_code_and_stderr(fakes: Any) -> None:
    with ProcessGroup.start(fakes.service("crash", "--after", "0.3", "--code", "7")) as group:
        assert group.wait(timeout=0.05) is None
        assert group.running
        status = group.wait(timeout=5)
        assert status == ExitStatus(7, None)
        assert status.returncode == 7
        assert not group.running
    assert group.captures["stderr"].last_lines(1) == ["fatal: fake crash with code 7"]
    assert group.captures["stdout"].last_lines(5) == ["starting up"]


def test_string_command_runs_through_the_shell(tmp_path: Path) -> None:
    with ProcessGroup.start("echo $((6 * 7)) > out.txt; exit 3", cwd=tmp_path) as group:
        assert group.wait(5) == ExitStatus(3, None)
    assert (tmp_path / "out.txt").read_text() == "42\n"


def test_output_capture_is_bounded(fakes: Any, start: Starter) -> None:
    lines: list[str] = []
    group = start(
        fakes.service("flood", "--bytes", "2000000"),
        tail_bytes=4096,
        keep_bytes=10_000,
        on_line=lambda stream, line: lines.append(line),
    )
    assert group.wait(10) == ExitStatus(0, None)
    group.terminate()
    out = group.captures["stdout"]

    assert out.total_bytes >= 2_000_000
    assert len(out.tail()) == 4096
    assert len(out.full()) == 10_000
    assert out.truncated
    assert out.full().startswith(b"line 0\nline 1\n")
    assert lines[0] == "line 0"
    assert lines[-1] == out.last_lines(1)[0]
    assert len(lines) == int(lines[-1].split()[1]) + 1  # the callback saw every line


def test_stream_capture_splits_endless_lines_and_survives_a_bad_callback() -> None:
    seen: list[str] = []

    def callback(line: str) -> None:
        seen.append(line)
        if line == "boom":
            raise ValueError("callback bug")

    cap = StreamCapture(tail_bytes=100, max_line_bytes=10, on_line=callback)
    cap.feed(b"boom\nab")
    cap.feed(b"c\r\n" + b"x" * 25)
    cap.close()

    assert seen == ["boom", "abc", "x" * 10, "x" * 10, "x" * 5]
    assert cap.full() == b""
    assert cap.truncated


def test_command_not_found_is_a_clear_start_error(tmp_path: Path) -> None:
    with pytest.raises(ProcessStartError, match="cannot start 'no-such-command-xyz'"):
        ProcessGroup.start(["no-such-command-xyz", "--version"])
    with pytest.raises(ProcessStartError, match="missing"):
        ProcessGroup.start(["true"], cwd=tmp_path / "missing")


def test_clean_env_strips_ghost_and_slack_secrets() -> None:
    base = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "GHOST_TOKEN": "t",
        "GHOST_HMAC_SECRET": "h",
        "ghost_token": "t",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/x",
        "SLACK_SIGNING_SECRET": "s",
        "MY_BOT_TOKEN": "b",
        "NOT_GHOST_X": "kept",
    }
    env = clean_env(base, extra_secret_names=["MY_BOT_TOKEN"])
    assert env == {"PATH": "/usr/bin", "HOME": "/home/me", "NOT_GHOST_X": "kept"}
    assert clean_env(base, secrets_prefixes=()) == base  # nothing named, nothing stripped


def test_child_never_sees_node_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHOST_TOKEN", "secret-token")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret-signing")
    monkeypatch.setenv("VISIBLE_VAR", "visible")
    with ProcessGroup.start(["env"]) as group:  # env=None: the node's env, cleaned
        group.wait(5)
    text = group.captures["stdout"].tail_text()
    assert "VISIBLE_VAR=visible" in text
    assert "secret-token" not in text
    assert "secret-signing" not in text
