"""The tests of a workspace: after an apply (recorded in the patch's stream, a failure rolled
back when due) and on request between patches (`run_tests`, in `tests-<workspace>`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from actors.patches.changes import sha256
from adapters.config import WorkspaceConfig
from adapters.ledger.records import FlowError, PatchCommand
from adapters.processes import TestRun, clean_env, run_tests
from adapters.processes.confine import bubblewrap
from adapters.processes.group import Command
from eventstore.catalogue import EventType, tests_stream
from eventstore.events import NewEvent
from eventstore.protocol import EventStore

TestRunner = Callable[[WorkspaceConfig], TestRun]


def default_test_runner(
    workspace: WorkspaceConfig,
    *,
    env: Mapping[str, str] | None = None,
    scrub: Callable[[str], str] | None = None,
    hidden: Sequence[Path] = (),
) -> TestRun:
    """The workspace's test command with `env` (default: ours minus GHOST_* and SLACK_*; the
    node passes every configured secret variable's name too) and its output scrubbed of the
    node's secret values; with `test_sandbox = "bwrap"` confined, `hidden` (the state
    directory) out of its sight."""
    assert workspace.test_command is not None
    command: Command = workspace.test_command.popen_args()
    if workspace.test_sandbox == "bwrap":
        command = bubblewrap(command, workspace.path, hidden)
    run = run_tests(
        command,
        cwd=workspace.path,
        timeout_s=workspace.test_timeout_s,
        env=clean_env() if env is None else env,  # no ghost secrets in the tests' environment
    )
    return run if scrub is None else run.scrubbed(scrub)


def skipped_because(workspace: WorkspaceConfig, command: PatchCommand) -> str | None:
    """Why an applied patch's tests will not run (None: they will)."""
    if workspace.test_command is None:
        return workspace.tests_absent_reason
    if not command.run_tests:
        return "not requested (run_tests: false)"
    return None


def rolls_back(workspace: WorkspaceConfig, command: PatchCommand) -> bool:
    """Whether failed tests roll this patch back (its own choice, else the workspace's)."""
    if command.rollback_on_failure is None:
        return workspace.rollback_on_test_failure
    return bool(command.rollback_on_failure)


def finished_data(run: TestRun) -> dict[str, Any]:
    """TestsFinished's data for a run (its whole output goes in as a blob)."""
    return {
        "status": run.status,
        "exit_code": run.exit_code,
        "duration_s": round(run.duration_s, 3),
        "output_tail": run.output_tail,
        "output_blob": sha256(run.output),
        "message": run.message,
    }


# TestsFinished of tests a crash cut short: their result cannot be trusted.
CUT_SHORT: Mapping[str, Any] = {
    "status": "error",
    "exit_code": None,
    "duration_s": 0.0,
    "output_tail": "",
    "output_blob": None,
    "message": "the node stopped while the tests ran; they did not finish",
}


def run_between_patches(
    workspace: WorkspaceConfig,
    store: EventStore,
    runner: TestRunner,
    run_id: str,
    by: str,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The webhook's `run_tests`: the workspace's tests as they are, recorded in
    `tests-<workspace>`. Changes nothing."""
    test_command = workspace.test_command
    if test_command is None:
        raise FlowError(
            "invalid",
            f"workspace {workspace.name} has no test command "
            f"({workspace.tests_absent_reason}; set test_command in ghost.toml)",
        )
    stream = tests_stream(workspace.name)
    started = {"run_id": run_id, "command": str(test_command.args), "by": by}
    store.append(stream, [NewEvent(EventType.TESTS_STARTED, started, meta or {})])
    run = runner(workspace)
    finished = {"run_id": run_id, **finished_data(run)}
    [position] = store.append(
        stream, [NewEvent(EventType.TESTS_FINISHED, finished, meta or {})], blobs=[run.output]
    )
    tests = {k: v for k, v in finished.items() if k not in ("run_id", "output_blob")}
    return {"run_id": run_id, "status": run.status, "tests": tests, "position": position}
