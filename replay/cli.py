"""ghost: the operator CLI (SPEC §7).

`ghost [--state-dir DIR | --config FILE] COMMAND ...`. Implemented so far: `events`, `verify`
(the hash chain) and `service install`; the replay, audit and rollback commands come with the
projections. Exit codes: 0 ok, 1 the thing checked is not ok, 2 usage or config error."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Literal

from adapters.config import CliOverrides, Config, ConfigError, load_config
from adapters.systemd import ServiceSpec, install_service, launchd_plist, systemd_unit
from eventstore import RecordedEvent, SQLiteEventStore, StoreError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def _event_json(event: RecordedEvent) -> dict[str, object]:
    return {
        "position": event.position,
        "event_id": event.event_id,
        "stream": event.stream,
        "version": event.version,
        "type": event.type,
        "recorded_at": event.recorded_at.isoformat(),
        "data": event.data,
        "meta": event.meta,
    }


class UsageError(Exception):
    """Bad arguments or config: exit 2."""


def _config(args: argparse.Namespace) -> Config:
    try:
        return load_config(args.config, CliOverrides(state_dir=args.state_dir))
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def _open(args: argparse.Namespace) -> SQLiteEventStore:
    """Read-only: the CLI never competes with the node's writer for reading commands."""
    db = _config(args).node.state_dir / "events.db"
    if not db.exists():
        raise UsageError(f"no event store at {db} (has ghost-node run here? see --state-dir)")
    return SQLiteEventStore(db, readonly=True)


def cmd_events(args: argparse.Namespace) -> int:
    with _open(args) as store:
        events = store.read_all(
            after=args.after,
            limit=args.limit,
            types=[args.type] if args.type else None,
            streams=[args.stream] if args.stream else None,
        )
    for event in events:
        if args.json:
            print(json.dumps(_event_json(event), default=repr))
        else:
            print(
                f"{event.position:>8}  {event.recorded_at:%Y-%m-%d %H:%M:%S}  "
                f"{event.type:<22} {event.stream}"
            )
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    with _open(args) as store:
        report = store.verify()
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "first_bad_position": report.first_bad_position,
                    "problem": report.problem,
                }
            )
        )
    elif report.ok:
        print(f"hash chain ok: {report.checked} events")
    else:
        print(f"hash chain broken at position {report.first_bad_position}: {report.problem}")
    return EXIT_OK if report.ok else EXIT_PROBLEM


def cmd_service_install(args: argparse.Namespace) -> int:
    config = _config(args)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghost", description="ghost-runner operator CLI")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--state-dir", type=Path, help="the node's state directory (./.ghost)")
    where.add_argument("--config", type=Path, help="the node's config (its state_dir is used)")
    sub = parser.add_subparsers(dest="command", required=True)
    events = sub.add_parser("events", help="list events")
    events.add_argument("--after", type=int, default=0)
    events.add_argument("--limit", type=int, default=None)
    events.add_argument("--type")
    events.add_argument("--stream")
    events.add_argument("--json", action="store_true")
    events.set_defaults(run=cmd_events)
    verify = sub.add_parser("verify", help="check the event store's hash chain")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(run=cmd_verify)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(f"ghost: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"ghost: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except StoreError as exc:
        print(f"ghost: {exc}", file=sys.stderr)
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
