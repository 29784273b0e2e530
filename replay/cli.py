"""ghost: the operator CLI. (Foundation stage: read events and verify the hash chain offline on a
state directory; the rest of SPEC §7 comes with the replay work.)"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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


def _open(state_dir: Path) -> SQLiteEventStore:
    db = state_dir / "events.db"
    if not db.exists():
        raise FileNotFoundError(f"no event store at {db}")
    return SQLiteEventStore(db)


def cmd_events(args: argparse.Namespace) -> int:
    with _open(args.state_dir) as store:
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
    with _open(args.state_dir) as store:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghost", description="ghost-runner operator CLI")
    parser.add_argument("--state-dir", type=Path, default=Path(".ghost"))
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except FileNotFoundError as exc:
        print(f"ghost: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"ghost: {exc}", file=sys.stderr)
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
