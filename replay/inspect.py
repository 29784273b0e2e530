"""The `ghost` commands that read (SPEC §7): events, audit, patches, show, verify, blob, logs,
export. They open the store read-only, so they work offline and beside a running node."""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from datetime import datetime
from typing import Any

from adapters.ledger.status import PatchStatus
from adapters.statedir import default_log_file
from eventstore import RecordedEvent, StoreError
from replay import reading
from replay.context import EXIT_OK, EXIT_PROBLEM, node_config, open_store
from replay.locate import UsageError
from replay.output import print_json, printable, table, to_json


def cmd_events(args: argparse.Namespace) -> int:
    with open_store(args) as store:
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
    with open_store(args) as store:
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
    with open_store(args) as store:
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
        f"  received {_when(view.received_at)}  by {p(view.author or '-')}: "
        f"{p(view.description or '-')}"
    )
    if view.error:
        print(f"  error: {p(view.error.get('message'))}")
    if view.tests:
        print(f"  tests: {view.tests.get('status')} (exit {view.tests.get('exit_code')})")
    for decision in view.decisions:
        at = decision.get("at")
        print(f"  {decision['decision']} by {p(decision.get('by'))} at {_when(at)}")
        for kept in decision.get("overwritten") or ():
            print(f"    overwrote {p(kept['path'])}; kept as blob {p(kept['sha256'])}")
    for event in events:
        print(f"  {event.position:>8}  {_when(event.recorded_at)}  {event.type}")
    if diff:
        print(printable(diff, lines=True), end="" if diff.endswith("\n") else "\n")
    return EXIT_OK


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = reading.parse_until(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if not isinstance(parsed, datetime):
        raise UsageError("--since takes an ISO date or time")
    return parsed


def _selected(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The patches the command asks for, oldest first: --patch, --since, --status, the newest
    --limit of them."""
    with open_store(args) as store:
        rows = reading.audit_rows(store, since=_since(args.since), patch=args.patch)
    if args.status:
        rows = [r for r in rows if r["status"] == args.status]
    if args.limit is not None:
        rows = rows[-args.limit :] if args.limit > 0 else []
    return rows


# How `ghost audit` groups patches: what changed files, what only showed a diff, what was
# refused. A patch waiting (queued, pending approval) is a change to come.
_AUDIT_GROUPS = (
    ("changes", lambda s: s not in (PatchStatus.DRY_RUN, PatchStatus.REJECTED)),
    ("dry runs", lambda s: s == PatchStatus.DRY_RUN),
    ("rejected", lambda s: s == PatchStatus.REJECTED),
)


def cmd_audit(args: argparse.Namespace) -> int:
    rows = _selected(args)
    if args.patch and not rows:
        print(f"ghost: no patch {args.patch}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        for row in rows:
            print_json(row)
        return EXIT_OK
    for title, wanted in _AUDIT_GROUPS:
        group = [r for r in rows if wanted(r["status"])]
        if not group:
            continue
        table(
            f"{title} ({len(group)})",
            ["patch", "received", "author", "workspace", "files", "+/-", "tests", "outcome", "why"],
            [
                (
                    r["patch_id"],
                    _when(r["received_at"]),
                    r["author"],
                    r["workspace"],
                    ", ".join(r["files"][:3]) + (" ..." if len(r["files"]) > 3 else ""),
                    f"+{r['added']}/-{r['removed']}",
                    r["tests"] or "-",
                    r["status"],
                    r["reason"],
                )
                for r in group
            ],
        )
    if not rows:
        print("no patches")
    return EXIT_OK


def cmd_patches(args: argparse.Namespace) -> int:
    """The patches, newest first, one line each (as `git log --oneline`)."""
    rows = list(reversed(_selected(args)))
    if args.json:
        print_json({"patches": rows})
        return EXIT_OK
    table(
        "patches",
        ["patch", "status", "received", "workspace", "files", "why"],
        [
            (
                r["patch_id"],
                r["status"],
                _when(r["received_at"]),
                r["workspace"],
                ", ".join(r["files"][:3]) + (" ..." if len(r["files"]) > 3 else ""),
                r["reason"],
            )
            for r in rows
        ],
    )
    return EXIT_OK


def _when(at: datetime | None) -> str:
    """A recorded time in this machine's local time, as `date` shows it."""
    return "-" if at is None else f"{at.astimezone():%Y-%m-%d %H:%M:%S}"


def cmd_blob(args: argparse.Namespace) -> int:
    """A content the store keeps (a file as a patch found or left it, a rollback's overwritten
    edits, test output), byte for byte on stdout."""
    with open_store(args) as store:
        if not store.has_blob(args.sha256):
            print(f"ghost: the store holds no blob {args.sha256}", file=sys.stderr)
            return EXIT_PROBLEM
        content = store.get_blob(args.sha256)
    sys.stdout.buffer.write(content)
    sys.stdout.flush()
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    """The node's log (its [log] file, else `<state>/logs/ghost-node.log`): the last lines,
    then, with --follow, what it writes next (across its rotations)."""
    config = node_config(args)
    path = config.log.file or default_log_file(config.node.state_dir)
    if not path.exists():
        raise UsageError(f"no log at {path} (the node logs there once it has run)")
    with path.open("rb") as log:
        for line in collections.deque(log, maxlen=max(0, args.lines)):
            sys.stdout.write(printable(line.decode("utf-8", "replace"), lines=True))
        sys.stdout.flush()
        position, inode = log.tell(), os.fstat(log.fileno()).st_ino
    try:
        while args.follow:
            time.sleep(0.5)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # between a rotation's rename and the new file
            if st.st_ino != inode or st.st_size < position:
                position, inode = 0, st.st_ino  # rotated: read the new file from its start
            if st.st_size > position:
                with path.open("rb") as log:
                    log.seek(position)
                    chunk = log.read()
                    position = log.tell()
                sys.stdout.write(printable(chunk.decode("utf-8", "replace"), lines=True))
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        for event in store.iter_all():
            sys.stdout.write(to_json(event.as_dict()) + "\n")
    return EXIT_OK
