"""The `ghost` commands that talk to the running node (SPEC §7): approve, reject, pause, resume,
status, doctor, and rollback while a node runs. replay/cli.py keeps the parser and the offline
commands; `add_commands` registers these on its subparsers.

Each command gets the state directory from cli.py's config resolution, finds the node through
node.json (replay/node_client.py) and leaves the errors to cli.main: NodeNotRunning is a usage
error (exit 2), a NodeError exit 1, or 2 for 400/401 (the request or the token is wrong)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from adapters.ledger.status import PatchStatus
from eventstore import SQLiteEventStore
from replay import reading
from replay.context import EXIT_OK, EXIT_PROBLEM
from replay.doctor import cmd_doctor, service_health
from replay.node_client import NodeClient, NodeError
from replay.output import print_json, printable, table, to_json
from replay.snapshots import SnapshotDir

Command = Callable[[argparse.Namespace, Path], int]


# --- decisions --------------------------------------------------------------------------------
def _patch_path(pid: str, action: str) -> str:
    return f"/patches/{quote(pid, safe='')}/{action}"


def _print_outcome(outcome: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(outcome)
        return
    p = printable
    pid, status = p(outcome.get("patch_id")), p(outcome.get("status"))
    print(f"patch {pid}: {status}")
    if status == PatchStatus.QUEUED:
        message = p(outcome.get("message") or "still in progress")
        print(f"  {message}; `ghost show {pid}` tells more")
    for f in outcome.get("files") or ():
        print(f"  {p(f.get('action'))} {p(f.get('path'))}")
    tests = outcome.get("tests")
    if tests:
        print(f"  tests: {tests.get('status')} (exit {tests.get('exit_code')})")
    error = outcome.get("error")
    if error:
        print(f"  error: {p(error.get('message'))}")
    diff = outcome.get("diff") or ""
    if diff:
        print(p(diff, lines=True), end="" if diff.endswith("\n") else "\n")


def _failed(outcome: dict[str, Any], expected: tuple[str, ...]) -> int:
    return EXIT_OK if outcome.get("status") in (*expected, PatchStatus.QUEUED) else EXIT_PROBLEM


def cmd_approve(args: argparse.Namespace, state_dir: Path) -> int:
    client = NodeClient.connect(state_dir)
    outcome = client.request("POST", _patch_path(args.patch_id, "approve"), {})
    _print_outcome(outcome, args.json)
    # Approved but then refused (does not apply any more) or failed its tests: not ok.
    return _failed(outcome, (PatchStatus.APPLIED,))


def cmd_reject(args: argparse.Namespace, state_dir: Path) -> int:
    client = NodeClient.connect(state_dir)
    body = {"reason": args.reason} if args.reason else {}
    outcome = client.request("POST", _patch_path(args.patch_id, "reject"), body)
    _print_outcome(outcome, args.json)
    return EXIT_OK


def rollback(args: argparse.Namespace, client: NodeClient) -> int:
    """`ghost rollback` while a node runs: through its API, so that its actor does it."""
    body = {"force": bool(args.force), "dry_run": bool(args.dry_run)}
    try:
        outcome = client.request("POST", _patch_path(args.patch_id, "rollback"), body)
    except NodeError as exc:
        if exc.status in (0, 400, 401):
            raise  # cli.main says it (exit 1 or 2)
        if args.json:
            print_json(exc.as_json())
        else:
            print_refusal(exc.message, exc.details)
        return EXIT_PROBLEM
    if args.json or outcome.get("status") == PatchStatus.QUEUED:
        _print_outcome(outcome, args.json)
    else:  # as the offline rollback says it
        print_rolled_back(args.patch_id, args.dry_run, outcome)
    # A dry run answers with the patch's status as it is (applied, failed): that is fine.
    return EXIT_OK if args.dry_run else _failed(outcome, (PatchStatus.ROLLED_BACK,))


def print_refusal(message: str, details: Mapping[str, Any]) -> None:
    """A refused rollback, on stderr: why, then what changed in each file since the patch."""
    print(f"ghost: {printable(message)}", file=sys.stderr)
    for changed in details.get("changed", ()):
        print(f"  changed since: {printable(changed.get('path'))}", file=sys.stderr)
        diff = changed.get("diff") or ""
        if diff:
            print(
                printable(diff, lines=True),
                end="" if diff.endswith("\n") else "\n",
                file=sys.stderr,
            )
    if details.get("changed"):
        print(
            "  `ghost rollback --force` overwrites them; their contents are kept", file=sys.stderr
        )


def print_rolled_back(patch_id: str, dry_run: bool, outcome: Mapping[str, Any]) -> None:
    print(f"{'would roll back' if dry_run else 'rolled back'} patch {printable(patch_id)}")
    print(printable(outcome.get("diff") or "", lines=True), end="")
    for kept in outcome.get("kept") or ():
        path, sha = printable(kept.get("path")), printable(kept.get("sha256"))
        print(f"  your edits to {path} were overwritten; kept: ghost blob {sha} > {path}.mine")


def cmd_pause(args: argparse.Namespace, state_dir: Path) -> int:
    answer = NodeClient.connect(state_dir).request("POST", "/pause", {})
    if args.json:
        print_json(answer)
    else:
        print("paused: new patches are queued until `ghost resume`")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, state_dir: Path) -> int:
    answer = NodeClient.connect(state_dir).request("POST", "/resume", {})
    if args.json:
        print_json(answer)
    elif answer.get("applied") is None:
        print(f"resumed; {answer.get('message', 'the queued patches are still being applied')}")
    else:
        print(f"resumed; {answer['applied']} queued patch(es) applied")
    return EXIT_OK


def cmd_sessions_revoke(args: argparse.Namespace, state_dir: Path) -> int:
    answer = NodeClient.connect(state_dir).request("POST", "/sessions/revoke", {})
    if args.json:
        print_json(answer)
    else:
        print(
            f"{answer.get('revoked', 0)} dashboard session(s) ended; sign in again with the token"
        )
    return EXIT_OK


# --- status -----------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace, state_dir: Path) -> int:
    client = NodeClient.find(state_dir)
    if client is None:
        return _status_offline(args, state_dir)
    health: dict[str, Any] = client.request("GET", "/health", accept=(503,))
    if args.json:
        print_json({"running": True, "url": client.base_url, "pid": client.info.pid, **health})
    else:
        _print_health(client, health)
    return EXIT_OK if health.get("status") == "ok" else EXIT_PROBLEM


def _print_health(client: NodeClient, health: dict[str, Any]) -> None:
    print(
        f"ghost-node {health.get('status')} at {client.base_url} (pid {client.info.pid}): "
        f"version {health.get('version')}, up {_duration(health.get('uptime_s'))}, "
        f"position {health.get('position')}"
    )
    actors = health.get("actors") or {}
    table(
        "actors",
        ["actor", "state", "restarts"],
        [(name, a.get("state"), a.get("restarts")) for name, a in sorted(actors.items())],
    )
    tunnels = health.get("tunnels") or {}
    if tunnels:
        table(
            "tunnels",
            ["tunnel", "state", "url", "availability 24 h"],
            [
                (name, t.get("state"), t.get("url"), t.get("availability"))
                for name, t in sorted(tunnels.items())
            ],
        )
    services = health.get("services") or {}
    if services:
        table(
            "services",
            ["service", "state", "pid", "port", "health"],
            [
                (name, s.get("state"), s.get("pid"), s.get("port"), service_health(s))
                for name, s in sorted(services.items())
            ],
        )


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _status_offline(args: argparse.Namespace, state_dir: Path) -> int:
    db = state_dir / "events.db"
    summary = None
    if db.exists():
        with SQLiteEventStore(db, readonly=True) as store:
            summary = reading.replay(store, snapshots=SnapshotDir.beside(store.path)).summary()
    if args.json:
        print_json({"running": False, "state_dir": str(state_dir), "state": summary})
        return EXIT_PROBLEM
    print(f"ghost-node is not running on {state_dir}; the state from its events:")
    if summary is None:
        print(f"  (no event store at {db}: no node has run here)")
        return EXIT_PROBLEM
    for key in ("position", "patches", "actors", "tunnels", "services", "paused"):
        print(f"  {key}: {to_json(summary[key])}")
    print(f"  runs: {summary['runs']} ({summary['unclean_runs']} unclean)")
    return EXIT_PROBLEM


# --- the parser ---------------------------------------------------------------------------------
def add_commands(
    sub: argparse._SubParsersAction[Any],
    state_dir: Callable[[argparse.Namespace], Path],
) -> None:
    """Register the online commands; `state_dir` resolves --state-dir/--config (cli.py)."""

    def bind(command: Command) -> Callable[[argparse.Namespace], int]:
        return lambda args: command(args, state_dir(args))

    approve = sub.add_parser("approve", help="approve a pending patch (running node)")
    approve.add_argument("patch_id")
    approve.add_argument("--json", action="store_true")
    approve.set_defaults(run=bind(cmd_approve))

    reject = sub.add_parser("reject", help="reject a pending patch (running node)")
    reject.add_argument("patch_id")
    reject.add_argument("--reason", default="")
    reject.add_argument("--json", action="store_true")
    reject.set_defaults(run=bind(cmd_reject))

    for name, command, text in (
        ("pause", cmd_pause, "queue new patches instead of applying them (running node)"),
        ("resume", cmd_resume, "apply what was queued and resume (running node)"),
    ):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(run=bind(command))

    sessions = sub.add_parser("sessions", help="dashboard sign-ins (running node)")
    sessions_sub = sessions.add_subparsers(dest="sessions_command", required=True)
    revoke = sessions_sub.add_parser("revoke", help="end every dashboard session now")
    revoke.add_argument("--json", action="store_true")
    revoke.set_defaults(run=bind(cmd_sessions_revoke))

    status = sub.add_parser("status", help="the node's health (or, offline, its last state)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=bind(cmd_status))

    doctor = sub.add_parser("doctor", help="check the running node end to end")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(run=bind(cmd_doctor))
