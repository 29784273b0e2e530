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
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from rich.progress import Progress

from adapters.config import (
    CliOverrides,
    Config,
    ConfigError,
    NodeConfig,
    SupervisorConfig,
    WorkspaceConfig,
    load_config,
)
from adapters.defaults import DEFAULT_STATE_DIR, DEFAULT_WORKSPACE_NAME
from adapters.ledger.records import FlowError, PatchOutcome
from adapters.statedir import StateDir, StateDirError
from adapters.systemd import ServiceSpec, install_service, launchd_plist, systemd_unit
from eventstore import RecordedEvent, SQLiteEventStore, StoreError, VerifyReport
from eventstore.protocol import EventStore
from replay import locate, online, reading
from replay.locate import UsageError
from replay.node_client import NodeClient, NodeError, NodeNotRunning
from replay.output import print_json, printable, table, to_json
from replay.snapshots import SnapshotDir

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


class OfflineRollback(Protocol):
    """Roll a patch back while no node runs (the state directory's lock held): the outcome, or
    FlowError when it cannot be done."""

    def __call__(
        self,
        workspace: WorkspaceConfig,
        store: EventStore,
        journal_dir: Path,
        patch_id: str,
        *,
        force: bool,
        dry_run: bool,
    ) -> PatchOutcome: ...


def _config(args: argparse.Namespace) -> Config:
    """The config of the node this command is about (see replay/locate.py)."""
    return locate.operator_config(args.config, args.state_dir, Path.cwd())


def _state_dir(args: argparse.Namespace) -> Path:
    return _config(args).node.state_dir


def _open(args: argparse.Namespace) -> SQLiteEventStore:
    """Read-only: the CLI never competes with the node's writer for reading commands."""
    db = _config(args).node.state_dir / "events.db"
    if not db.exists():
        raise UsageError(f"no event store at {db} (has ghost-node run here? see --state-dir)")
    return SQLiteEventStore(db, readonly=True)


def _patch_id(args: argparse.Namespace, typed: str) -> str:
    """The whole id of the patch `typed` names (a unique prefix will do), checked against the
    store; a command then reports an unknown one in its own words."""
    with _open(args) as store:
        return locate.patch_id(store, typed) or typed


# --- read-only commands -----------------------------------------------------------------------
def cmd_events(args: argparse.Namespace) -> int:
    with _open(args) as store:
        events = store.read_all(
            after=args.after,
            limit=args.limit,
            types=[args.type] if args.type else None,
            streams=[args.stream] if args.stream else None,
        )
        _print_events(events, args.json)
        if args.follow:
            subscription = store.subscribe(
                after=events[-1].position if events else args.after,
                types=[args.type] if args.type else None,
            )
            try:
                for event in subscription:
                    if not args.stream or event.stream == args.stream:
                        _print_events([event], args.json)
            except KeyboardInterrupt:
                subscription.close()
    return EXIT_OK


def _print_events(events: list[RecordedEvent], as_json: bool) -> None:
    for event in events:
        if as_json:
            print_json(event.as_dict())
        else:
            print(
                f"{event.position:>8}  {event.recorded_at:%Y-%m-%d %H:%M:%S}  "
                f"{event.type:<22} {printable(event.stream)}"
            )
    # Per batch: `--follow` piped into a script must see each event as it comes.
    sys.stdout.flush()


def cmd_verify(args: argparse.Namespace) -> int:
    with _open(args) as store:
        report = store.verify()
    if args.json:
        print_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "first_bad_position": report.first_bad_position,
                "problem": report.problem,
            }
        )
    elif report.ok:
        print(f"hash chain ok: {report.checked} events")
    else:
        print(f"hash chain broken at position {report.first_bad_position}: {report.problem}")
    return EXIT_OK if report.ok else EXIT_PROBLEM


def cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        view, events = reading.patch_view(store, args.patch_id)
        if view is None:
            print(f"ghost: no patch {args.patch_id}", file=sys.stderr)
            return EXIT_PROBLEM
        diff = ""
        if view.diff_blob:
            try:
                diff = store.get_blob(view.diff_blob).decode("utf-8", "replace")
            except StoreError as exc:  # a missing or corrupt blob: show the rest anyway
                print(f"ghost: the diff is unavailable: {exc}", file=sys.stderr)
    row = reading.audit_row(view)
    if args.json:
        print_json(
            {
                **row,
                "diff": diff,
                "changes": list(view.changes),
                "tests": view.tests,
                "events": [e.as_dict() for e in events],
            }
        )
        return EXIT_OK
    p = printable
    print(f"patch {p(view.patch_id)}  [{view.public_status}]  workspace {p(view.workspace)}")
    print(
        f"  received {view.received_at}  by {p(view.author or '-')}: {p(view.description or '-')}"
    )
    if view.error:
        print(f"  error: {p(view.error.get('message'))}")
    if view.tests:
        print(f"  tests: {view.tests.get('status')} (exit {view.tests.get('exit_code')})")
    for decision in view.decisions:
        print(f"  {decision['decision']} by {p(decision.get('by'))} at {decision.get('at')}")
    for event in events:
        print(f"  {event.position:>8}  {event.type}")
    if diff:
        print(printable(diff, lines=True), end="" if diff.endswith("\n") else "\n")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    since: datetime | None = None
    if args.since:
        try:
            parsed = reading.parse_until(args.since)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if not isinstance(parsed, datetime):
            raise UsageError("--since takes an ISO date or time")
        since = parsed
    with _open(args) as store:
        rows = reading.audit_rows(store, since=since, patch=args.patch)
    if args.patch and not rows:
        print(f"ghost: no patch {args.patch}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        for row in rows:
            print_json(row)
        return EXIT_OK
    table(
        "patches",
        ["patch", "received", "author", "workspace", "files", "+/-", "tests", "outcome"],
        [
            (
                r["patch_id"],
                f"{r['received_at']:%Y-%m-%d %H:%M:%S}",
                r["author"],
                r["workspace"],
                ", ".join(r["files"][:3]) + (" ..." if len(r["files"]) > 3 else ""),
                f"+{r['added']}/-{r['removed']}",
                r["tests"] or "-",
                r["status"],
            )
            for r in rows
        ],
    )
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        until = reading.parse_until(args.until) if args.until else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    with _open(args) as store:
        # Verify first: a broken chain is the answer, and its rows may not even decode.
        report = store.verify() if args.verify else None
        if report is not None and not report.ok:
            return _report_broken_chain(report, args.json)
        total = store.last_position()
        # --verify trusts nothing derived: it folds every event itself.
        snapshots = None if args.verify else SnapshotDir.beside(store.path)
        if sys.stderr.isatty() and not args.json and total > 50_000:
            with Progress(transient=True) as bar:
                task = bar.add_task("replaying", total=total)
                projection = reading.replay(
                    store, until, lambda p: bar.update(task, completed=p), snapshots
                )
        else:
            projection = reading.replay(store, until, snapshots=snapshots)
        drift = reading.drift(projection, reading.workspace_paths(store)) if args.verify else []
    summary = projection.summary()
    problems = (report is not None and not report.ok) or bool(drift)
    if args.json:
        out: dict[str, Any] = {"state": summary}
        if args.verify:
            assert report is not None
            out["verify"] = {
                "ok": not problems,
                "chain": {
                    "ok": report.ok,
                    "checked": report.checked,
                    "first_bad_position": report.first_bad_position,
                    "problem": report.problem,
                },
                "drift": [_drift_json(d) for d in drift],
            }
        print(to_json(out))
    else:
        print(f"state at position {summary['position']}:")
        for key in ("patches", "files", "actors", "tunnels", "services", "notifications"):
            print(f"  {key}: {to_json(summary[key])}")
        print(
            f"  runs: {summary['runs']} ({summary['unclean_runs']} unclean); "
            f"paused: {summary['paused']}"
        )
        if args.verify:
            assert report is not None
            if report.ok:
                print(f"hash chain ok: {report.checked} events")
            else:
                print(
                    f"hash chain broken at position {report.first_bad_position}: {report.problem}"
                )
            for d in drift:
                print(
                    f"drift: {d.workspace}:{d.path} expected {d.expected_sha256[:12]} "
                    f"found {(d.actual_sha256 or 'absent')[:12]} "
                    f"(last event {d.last_position}, {d.source})"
                )
            if not drift:
                print("workspaces match the events")
    return EXIT_PROBLEM if problems else EXIT_OK


def _report_broken_chain(report: VerifyReport, as_json: bool) -> int:
    if as_json:
        print(
            to_json(
                {
                    "verify": {
                        "ok": False,
                        "chain": {
                            "ok": False,
                            "checked": report.checked,
                            "first_bad_position": report.first_bad_position,
                            "problem": report.problem,
                        },
                        "drift": [],
                    }
                }
            )
        )
    else:
        print(f"hash chain broken at position {report.first_bad_position}: {report.problem}")
    return EXIT_PROBLEM


def _drift_json(d: reading.Drift) -> dict[str, Any]:
    return {
        "workspace": d.workspace,
        "path": d.path,
        "expected_sha256": d.expected_sha256,
        "actual_sha256": d.actual_sha256,
        "last_position": d.last_position,
        "source": d.source,
    }


def cmd_blob(args: argparse.Namespace) -> int:
    """A content the store keeps (a file as a patch found or left it, a rollback's overwritten
    edits, test output), byte for byte on stdout."""
    with _open(args) as store:
        if not store.has_blob(args.sha256):
            print(f"ghost: the store holds no blob {args.sha256}", file=sys.stderr)
            return EXIT_PROBLEM
        content = store.get_blob(args.sha256)
    sys.stdout.buffer.write(content)
    sys.stdout.flush()
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    with _open(args) as store:
        for event in store.iter_all():
            sys.stdout.write(to_json(event.as_dict()) + "\n")
    return EXIT_OK


# --- commands that change things ------------------------------------------------------------
def cmd_rollback(args: argparse.Namespace) -> int:
    config = _config(args)
    client = NodeClient.find(config.node.state_dir)
    if client is not None:  # a node runs here: it does the rollback, under its own lock
        return online.rollback(args, client)
    rollback: OfflineRollback | None = args.offline_rollback
    if rollback is None:
        raise UsageError("no node runs here, and this ghost has no offline write path; start it")
    state = StateDir(config.node.state_dir)
    try:
        state.open()  # the node's lock: refuses while a node (still starting) holds it
    except StateDirError as exc:
        raise UsageError(f"{exc}; retry once the node serves, or stop it") from exc
    try:
        with SQLiteEventStore(state.events_db, durability=config.node.durability) as store:
            view, _ = reading.patch_view(store, args.patch_id)
            if view is None:
                print(f"ghost: no patch {args.patch_id}", file=sys.stderr)
                return EXIT_PROBLEM
            # Where the node recorded the workspace, never the current directory.
            workspace = locate.recorded_workspace(store, view.workspace, state.path)
            journal = state.path / "journal" / workspace.name
            try:
                outcome = rollback(
                    workspace,
                    store,
                    journal,
                    args.patch_id,
                    force=args.force,
                    dry_run=args.dry_run,
                )
            except FlowError as exc:
                if args.json:
                    print_json(
                        {
                            "error": {
                                "code": exc.error.code,
                                "message": str(exc),
                                "details": dict(exc.error.details),
                            }
                        }
                    )
                else:
                    online.print_refusal(str(exc), exc.error.details)
                return EXIT_PROBLEM
    finally:
        state.close()
    if args.json:
        print_json(outcome.as_json())
    else:
        online.print_rolled_back(outcome.patch_id, args.dry_run, outcome.as_json())
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.exists():
        raise UsageError(f"{path} exists already; not overwriting it")
    path.write_text(config_template(Path.cwd()))
    print(f"wrote {path}; start the node with: ghost-node --config {path}")
    return EXIT_OK


def config_template(workspace: Path) -> str:
    """The config `ghost init` writes: every value is the default (adapters/defaults.py and
    the config's own), written out so that it can be edited."""
    node, sup = NodeConfig(), SupervisorConfig()
    ws = WorkspaceConfig(name=DEFAULT_WORKSPACE_NAME, path=workspace)
    return f"""\
# ghost-node configuration (SPEC §3). Relative paths are relative to this file.
[node]
host = "{node.host}"
port = {node.port}
state_dir = "{DEFAULT_STATE_DIR}"
durability = "{node.durability}"

[[workspace]]
name = "{ws.name}"
path = "{ws.path}"
# test_command = ["pytest", "-q"]
test_timeout_s = {ws.test_timeout_s:g}
rollback_on_test_failure = {str(ws.rollback_on_test_failure).lower()}
approval = "{ws.approval}"

[supervisor]
min_backoff_s = {sup.min_backoff_s:g}
max_backoff_s = {sup.max_backoff_s:g}
max_restarts = {sup.max_restarts}
period_s = {sup.period_s:g}
"""


def cmd_service_install(args: argparse.Namespace) -> int:
    # Before any node has run: the state directory need not exist yet.
    try:
        config = load_config(args.config, CliOverrides(state_dir=args.state_dir))
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    node = Path(__file__).resolve().parent.parent / "bin" / "ghost-node"
    config_path = args.config.resolve() if args.config else None
    spec = ServiceSpec.from_config(config, node, config_path)
    kind: Literal["systemd", "launchd"] = "launchd" if args.launchd else "systemd"
    if args.print:
        print(launchd_plist(spec) if args.launchd else systemd_unit(spec, user=args.user), end="")
        return EXIT_OK
    result = install_service(kind, args.user, spec, dest=args.dest)
    print(f"wrote {result.path}")
    for step in result.next_steps:
        print(f"  next: {step}")
    return EXIT_OK


# --- the parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghost", description="ghost-runner operator CLI")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--state-dir", type=Path, help="the node's state directory (./.ghost)")
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

    audit = sub.add_parser("audit", help="who sent what, when, what it changed, and the outcome")
    audit.add_argument("--since", help="ISO date or time, with a timezone")
    audit.add_argument("--patch", help="one patch id")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(run=cmd_audit)

    show = sub.add_parser("show", help="one patch with its diff and events")
    show.add_argument("patch_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=cmd_show)

    replay_p = sub.add_parser("replay", help="rebuild the state from events alone")
    replay_p.add_argument("--until", help="a position or an ISO time (with a timezone)")
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

    export = sub.add_parser("export", help="every event as JSON lines")
    export.add_argument("--jsonl", action="store_true", required=True)
    export.set_defaults(run=cmd_export)

    rollback = sub.add_parser("rollback", help="roll a patch back (through the node, or offline)")
    rollback.add_argument("patch_id")
    rollback.add_argument("--dry-run", action="store_true")
    rollback.add_argument("--force", action="store_true", help="even if files changed since")
    rollback.add_argument("--json", action="store_true")
    rollback.set_defaults(run=cmd_rollback)

    online.add_commands(sub, _state_dir)

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
                setattr(args, field, _patch_id(args, getattr(args, field)))
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
