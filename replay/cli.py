"""ghost: the operator CLI (SPEC §7).

`ghost [--state-dir DIR | --config FILE] COMMAND ...`. Read-only commands open the event store
read-only, so they work offline and beside a running node. `rollback` goes through the running
node's API when there is one; offline it takes the state directory's lock first, so it can never
race a node (which holds it). approve, reject, pause, resume, status and doctor talk to the
running node (replay/online.py, over replay/node_client.py).
Exit codes: 0 ok, 1 the thing checked is not ok, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import NoReturn

from adapters.ledger.status import PUBLIC_STATUSES
from eventstore import StoreError
from replay import online, timetravel
from replay.changes import cmd_init, cmd_rollback, cmd_service_install, cmd_token
from replay.context import EXIT_PROBLEM, EXIT_USAGE, OfflineRollback, full_patch_id, state_dir
from replay.history import cmd_replay
from replay.inspect import (
    cmd_audit,
    cmd_blob,
    cmd_events,
    cmd_export,
    cmd_logs,
    cmd_patches,
    cmd_show,
    cmd_verify,
)
from replay.locate import UsageError
from replay.node_client import NodeError, NodeNotRunning


# --- the parser ---------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, with "did you mean" for a mistyped command or choice (as the config loader
    does for a mistyped key)."""

    def error(self, message: str) -> NoReturn:
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            typed = match.group(1)
            choices = re.findall(r"'([^']*)'", match.group(2))
            close = difflib.get_close_matches(typed, choices, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; one of {', '.join(choices)}"
            message = f"no {typed!r}{hint}"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ghost",
        description="ghost-runner operator CLI (the contract: docs/SPEC.md, section 7)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--state-dir",
        type=Path,
        help="the node's state directory (default: the nearest .ghost/ from here up)",
    )
    where.add_argument("--config", type=Path, help="the node's config (its state_dir is used)")
    sub = parser.add_subparsers(dest="command", required=True)

    events = sub.add_parser("events", help="list events (oldest first)")
    events.add_argument("--after", type=int, default=0)
    events.add_argument("--limit", type=int, default=None)
    events.add_argument("--type")
    events.add_argument("--stream")
    events.add_argument("--follow", action="store_true", help="keep printing new events")
    events.add_argument("--json", action="store_true")
    events.set_defaults(run=cmd_events)

    for name, run, text in (
        ("audit", cmd_audit, "who sent what, when, what it changed, and the outcome"),
        ("patches", cmd_patches, "the patches, newest first, one line each"),
    ):
        listing = sub.add_parser(name, help=text)
        listing.add_argument("--since", help="ISO date or time (local time without a timezone)")
        listing.add_argument("--patch", help="one patch (its id, or a unique prefix)")
        listing.add_argument("--status", choices=[str(s) for s in PUBLIC_STATUSES])
        listing.add_argument("--limit", type=int, help="only the newest N")
        listing.add_argument("--json", action="store_true")
        listing.set_defaults(run=run)

    show = sub.add_parser("show", help="one patch with its diff and events")
    show.add_argument("patch_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=cmd_show)

    replay_p = sub.add_parser("replay", help="rebuild the state from events alone")
    replay_p.add_argument(
        "--until", help="a position or an ISO time (local time without a timezone)"
    )
    replay_p.add_argument(
        "--verify",
        action="store_true",
        help="check the hash chain and the workspaces against the events",
    )
    replay_p.add_argument("--json", action="store_true")
    replay_p.set_defaults(run=cmd_replay)

    verify = sub.add_parser("verify", help="check the event store's hash chain")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(run=cmd_verify)

    blob = sub.add_parser("blob", help="print a content the store keeps, by its sha256")
    blob.add_argument("sha256")
    blob.set_defaults(run=cmd_blob)

    logs = sub.add_parser("logs", help="the node's log: its last lines, --follow for more")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(run=cmd_logs)

    token = sub.add_parser("token", help="print the node token; --rotate makes a new one")
    token.add_argument("--rotate", action="store_true", help="the old token stops working")
    token.set_defaults(run=cmd_token)

    export = sub.add_parser("export", help="every event as JSON lines")
    export.add_argument("--jsonl", action="store_true", required=True)
    export.set_defaults(run=cmd_export)

    rollback = sub.add_parser("rollback", help="roll a patch back (through the node, or offline)")
    rollback.add_argument("patch_id")
    rollback.add_argument("--dry-run", action="store_true")
    rollback.add_argument("--force", action="store_true", help="even if files changed since")
    rollback.add_argument("--json", action="store_true")
    rollback.set_defaults(run=cmd_rollback)

    online.add_commands(sub, state_dir)
    timetravel.add_commands(sub)

    init = sub.add_parser("init", help="write a starting ghost.toml")
    init.add_argument("--path", default="ghost.toml")
    init.set_defaults(run=cmd_init)

    service = sub.add_parser("service", help="run ghost-node as a service")
    service_sub = service.add_subparsers(dest="service_command", required=True)
    install = service_sub.add_parser("install", help="write a systemd unit or launchd plist")
    manager = install.add_mutually_exclusive_group()
    manager.add_argument("--systemd", action="store_true", help="a systemd unit (default)")
    manager.add_argument("--launchd", action="store_true", help="a launchd plist (macOS)")
    install.add_argument("--user", action="store_true", help="a per-user service")
    install.add_argument("--dest", type=Path, help="write here instead of the standard place")
    install.add_argument("--print", action="store_true", help="print it, write nothing")
    install.set_defaults(run=cmd_service_install)
    return parser


def main(argv: list[str] | None = None, offline_rollback: OfflineRollback | None = None) -> int:
    """`offline_rollback`: the write path a rollback takes while no node runs, given by the
    wiring (actors/operator.py); replay itself never changes files."""
    args = build_parser().parse_args(argv)
    args.offline_rollback = offline_rollback
    try:
        for field in ("patch_id", "patch"):  # `ghost show 4730`: a unique prefix will do
            if getattr(args, field, None):
                setattr(args, field, full_patch_id(args, getattr(args, field)))
        return int(args.run(args))
    except (UsageError, NodeNotRunning) as exc:
        print(f"ghost: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NodeError as exc:  # the node's own message; a refused token or bad request is usage
        print(f"ghost: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if exc.status in (400, 401) else EXIT_PROBLEM
    except StoreError as exc:
        print(f"ghost: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except OSError as exc:
        print(f"ghost: {exc}", file=sys.stderr)
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
