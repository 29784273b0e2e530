"""Running a workspace's test command (SPEC §5): timeout, captured output, nothing left behind."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from adapters.processes.group import Command, ProcessGroup, ProcessStartError

TestStatus = Literal["passed", "failed", "timeout", "error"]

OUTPUT_LIMIT = 10 * 1024 * 1024
TAIL_BYTES = 4 * 1024


@dataclass(frozen=True, slots=True)
class TestRun:
    __test__ = False  # not a pytest test class, despite the name

    status: TestStatus
    exit_code: int | None
    duration_s: float
    output_tail: str  # last ~4 KB of stdout+stderr, for events, Slack and error answers
    output: bytes  # full stdout+stderr up to the limit, for the blob store
    output_truncated: bool = False
    signal: int | None = None
    message: str = ""  # one line for people: "exit code 1", "timed out after 300 s"...

    def scrubbed(self, scrub: Callable[[str], str]) -> TestRun:
        """The run with `scrub` (the node's secret redaction) applied to its output, before it
        is recorded: a test that prints its environment or reads a secret must not put it in
        the store, Slack or an answer."""
        full = self.output.decode("utf-8", "surrogateescape")
        return replace(
            self,
            output_tail=scrub(self.output_tail),
            output=scrub(full).encode("utf-8", "surrogateescape"),
            message=scrub(self.message),
        )


def run_tests(
    command: Command,
    cwd: str | os.PathLike[str],
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    *,
    grace_s: float = 2.0,
    output_limit: int = OUTPUT_LIMIT,
    tail_bytes: int = TAIL_BYTES,
) -> TestRun:
    """Run `command` in `cwd`; blocks up to `timeout_s` plus the kill grace. `env` None means
    the node's environment without its secrets. On timeout every process the command started
    is killed, including grandchildren that ignore SIGTERM."""
    started = time.monotonic()
    try:
        group = ProcessGroup.start(
            command,
            cwd=cwd,
            env=env,
            merge_stderr=True,
            tail_bytes=tail_bytes,
            keep_bytes=output_limit,
        )
    except ProcessStartError as e:
        return TestRun("error", None, time.monotonic() - started, str(e), b"", message=str(e))

    exited = group.wait(timeout_s)
    # Even after a normal exit: a server or watcher a test left behind must not outlive it.
    final = group.terminate(grace_s)
    duration = time.monotonic() - started
    out = group.captures["stdout"]

    def result(status: TestStatus, message: str) -> TestRun:
        return TestRun(
            status,
            final.exit_code,
            duration,
            out.tail_text(),
            out.full(),
            out.truncated,
            final.signal,
            message,
        )

    if exited is None:
        return result("timeout", f"timed out after {timeout_s:g} s; all its processes killed")
    if final.exit_code == 0:
        return result("passed", "exit code 0")
    return result("failed", final.describe())
