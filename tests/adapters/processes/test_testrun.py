from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

from adapters.processes.testrun import TestRun, run_tests


def test_passing_command(tmp_path: Path, fakes: Any) -> None:
    (tmp_path / "ok.py").write_text("print('3 passed')\n")
    run = run_tests([fakes.python, "ok.py"], tmp_path, timeout_s=10)
    assert run.status == "passed"
    assert run.exit_code == 0
    assert run.signal is None
    assert run.output_tail == "3 passed\n"
    assert run.output == b"3 passed\n"
    assert 0 < run.duration_s < 10


def test_failing_command_keeps_stdout_and_stderr_in_order(tmp_path: Path) -> None:
    run = run_tests("echo one; echo two >&2; echo three; exit 1", tmp_path, timeout_s=10)
    assert run.status == "failed"
    assert run.exit_code == 1
    assert run.message == "exit code 1"
    assert run.output == b"one\ntwo\nthree\n"


def test_timeout_kills_grandchildren_that_ignore_sigterm(tmp_path: Path, fakes: Any) -> None:
    script = shlex.join(fakes.service("spawn", "--children", "2", "--ignore-term"))
    began = time.monotonic()
    run = run_tests(script, tmp_path, timeout_s=1.0, grace_s=0.3)

    assert run.status == "timeout"
    assert "timed out after 1 s" in run.message
    assert 1.0 <= time.monotonic() - began < 5
    kids = fakes.pids_of(run.output.decode())
    assert len(kids) == 2
    assert fakes.alive(kids) == []


def test_processes_left_behind_by_a_finished_run_are_killed(tmp_path: Path, fakes: Any) -> None:
    script = shlex.join(fakes.service("spawn", "--children", "1", "--leader-exits"))
    run = run_tests(script, tmp_path, timeout_s=10, grace_s=0.3)
    assert run.status == "passed"
    assert fakes.alive(fakes.pids_of(run.output.decode())) == []


def test_command_not_found_is_an_error(tmp_path: Path) -> None:
    run = run_tests(["pytest-that-does-not-exist", "-q"], tmp_path, timeout_s=10)
    assert run.status == "error"
    assert run.exit_code is None
    assert "cannot start 'pytest-that-does-not-exist'" in run.message
    assert run.output_tail == run.message


def test_shell_command_not_found_is_a_failure_with_the_shells_message(tmp_path: Path) -> None:
    run = run_tests("no-such-tool-xyz --run", tmp_path, timeout_s=10)
    assert run.status == "failed"
    assert run.exit_code == 127
    assert "no-such-tool-xyz" in run.output_tail


def test_output_is_capped_and_the_tail_is_the_end(tmp_path: Path, fakes: Any) -> None:
    run = run_tests(
        fakes.service("flood", "--bytes", "300000"), tmp_path, timeout_s=10, output_limit=50_000
    )
    assert run.status == "passed"
    assert len(run.output) == 50_000
    assert run.output_truncated
    assert len(run.output_tail) == 4096
    assert run.output_tail.endswith("\n")
    assert run.output_tail.rstrip().split("\n")[-1].startswith("line ")


def test_testrun_is_not_collected_as_a_test_class() -> None:
    assert TestRun.__test__ is False
