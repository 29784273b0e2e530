"""The store as the workspace's history (docs/SPEC.md §7, time travel): a point in it (a
position, a time, or a patch: the state just after it), the files as they were there, and
their contents from the store's blobs (`ghost cat`, `ghost checkout`, `ghost diff`).

A file's content is in the store when a patch wrote it or found it (both sides of every
change are kept as blobs). A change the watcher saw (an editor's save) records only its
sha256, so such a content is named as missing, with why."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.progress import Progress

from eventstore import SQLiteEventStore
from eventstore.catalogue import patch_stream
from replay import locate, reading
from replay.context import EXIT_OK, EXIT_PROBLEM, open_store
from replay.locate import UsageError
from replay.output import printable
from replay.snapshots import SnapshotDir
from replay.state import FileState, NodeProjection

Point = int | datetime


def resolve_point(store: SQLiteEventStore, text: str) -> Point:
    """`text` as a point of the history: digits are a position, an ISO date or time is a
    time (local without a timezone), anything else a patch id or unique prefix (the state
    just after that patch's last event)."""
    if text.isdigit():
        return int(text)
    try:
        return reading.parse_until(text)
    except ValueError:
        pass
    pid = locate.patch_id(store, text)
    if pid is None:
        raise UsageError(f"{text!r} is no position, time or patch id")
    return store.read_stream(patch_stream(pid))[-1].position


def state_at(store: SQLiteEventStore, point: Point | None) -> NodeProjection:
    return reading.replay(store, point, snapshots=SnapshotDir.beside(store.path))


@dataclass(frozen=True, slots=True)
class Version:
    """A file at a point: what ghost knows of it, and its content when the store has it."""

    workspace: str
    path: str
    state: FileState
    content: bytes | None
    missing: str = ""  # why the content is not in the store

    @property
    def changed_by(self) -> str:
        return self.state.source


def versions(
    store: SQLiteEventStore, state: NodeProjection, workspace: str | None, path: str | None
) -> Iterator[Version]:
    for ws, files in sorted(state.files.items()):
        if workspace is not None and ws != workspace:
            continue
        for rel, known in sorted(files.items()):
            if path is not None and rel != path:
                continue
            if store.has_blob(known.sha256):
                yield Version(ws, rel, known, store.get_blob(known.sha256))
            else:
                why = (
                    f"its content at position {known.position} was written outside any patch "
                    f"({known.source}); the store keeps what patches write and find"
                )
                yield Version(ws, rel, known, None, why)


def _workspace(args: argparse.Namespace, state: NodeProjection) -> str | None:
    if args.workspace is not None:
        if args.workspace not in state.files:
            raise UsageError(f"no workspace {args.workspace!r} (known: {sorted(state.files)})")
        return str(args.workspace)
    return next(iter(state.files)) if len(state.files) == 1 else None


def cmd_cat(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        point = resolve_point(store, args.until) if args.until else None
        state = state_at(store, point)
        found = list(versions(store, state, _workspace(args, state), args.path))
    if len(found) > 1:
        names = ", ".join(sorted(v.workspace for v in found))
        raise UsageError(f"{args.path} is in several workspaces ({names}): say --workspace")
    if not found:
        print(
            f"ghost: {printable(args.path)} did not exist at position {state.position}",
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    version = found[0]
    if version.content is None:
        print(f"ghost: {printable(args.path)}: {version.missing}", file=sys.stderr)
        return EXIT_PROBLEM
    sys.stdout.buffer.write(version.content)
    sys.stdout.flush()
    return EXIT_OK


def cmd_checkout(args: argparse.Namespace) -> int:
    target = Path(args.to).resolve()
    with open_store(args) as store:
        workspaces = reading.workspace_paths(store)
        for name, root in workspaces.items():
            if target == root.resolve() or root.resolve() in target.parents:
                raise UsageError(f"--to {target} is inside workspace {name} ({root}); never there")
        point = resolve_point(store, args.until) if args.until else None
        state = state_at(store, point)
        found = list(versions(store, state, _workspace(args, state), None))
    several = len({v.workspace for v in found}) > 1
    written, lacking = 0, []
    # A bar where the checkout is long enough to want one (a person watching, many files).
    bar = Progress(transient=True) if sys.stderr.isatty() and len(found) > 500 else None
    task = bar.add_task("checking out", total=len(found)) if bar is not None else None
    if bar is not None:
        bar.start()
    for version in found:
        if bar is not None and task is not None:
            bar.advance(task)
        if version.content is None:
            lacking.append(version)
            continue
        rel = Path(version.workspace, version.path) if several else Path(version.path)
        out = target / rel
        if target not in out.resolve().parents:
            lacking.append(version)  # a recorded path that would leave DIR: never written
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(version.content)
        written += 1
    if bar is not None:
        bar.stop()
    print(f"wrote {written} file(s) as of position {state.position} under {target}")
    for version in lacking:
        print(f"  not written: {printable(version.path)}: {version.missing}", file=sys.stderr)
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        before_state = state_at(store, resolve_point(store, args.from_))
        after_state = state_at(store, resolve_point(store, args.to) if args.to else None)
        workspace = args.workspace
        before = {
            (v.workspace, v.path): v for v in versions(store, before_state, workspace, args.path)
        }
        after = {
            (v.workspace, v.path): v for v in versions(store, after_state, workspace, args.path)
        }
    problems = 0
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old is not None and new is not None and old.state.sha256 == new.state.sha256:
            continue
        name = key[1]
        texts = []
        for side, version in (("from", old), ("to", new)):
            if version is not None and version.content is None:
                print(f"ghost: {printable(name)} ({side}): {version.missing}", file=sys.stderr)
                problems += 1
            texts.append(b"" if version is None or version.content is None else version.content)
        if any(v is not None and v.content is None for v in (old, new)):
            continue
        lines = difflib.unified_diff(
            texts[0].decode("utf-8", "replace").splitlines(keepends=True),
            texts[1].decode("utf-8", "replace").splitlines(keepends=True),
            "/dev/null" if old is None else f"a/{name}",
            "/dev/null" if new is None else f"b/{name}",
        )
        sys.stdout.write(printable("".join(lines), lines=True))
    sys.stdout.flush()
    return EXIT_PROBLEM if problems else EXIT_OK


def files_json(state: NodeProjection) -> Mapping[str, Mapping[str, Mapping[str, object]]]:
    """`ghost replay --json`'s files (SPEC §7): per workspace, each file with its sha256, who
    last changed it (patch:<id>, external, rescan) and the position of that change."""
    return {
        ws: {
            rel: {"sha256": f.sha256, "changed_by": f.source, "position": f.position}
            for rel, f in sorted(files.items())
        }
        for ws, files in sorted(state.files.items())
    }


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    cat = sub.add_parser("cat", help="a file as it was at a point of the history")
    cat.add_argument("path")
    cat.add_argument("--until", help="a position, a time, or a patch id (default: now)")
    cat.add_argument("--workspace")
    cat.set_defaults(run=cmd_cat)
    checkout = sub.add_parser("checkout", help="every file as it was at a point, into DIR")
    checkout.add_argument("--until", help="a position, a time, or a patch id (default: now)")
    checkout.add_argument("--to", required=True, help="a directory outside the workspaces")
    checkout.add_argument("--workspace")
    checkout.set_defaults(run=cmd_checkout)
    diff = sub.add_parser("diff", help="what changed between two points of the history")
    diff.add_argument("--from", dest="from_", required=True, help="a position, time or patch id")
    diff.add_argument("--to", help="a position, time or patch id (default: now)")
    diff.add_argument("--workspace")
    diff.add_argument("path", nargs="?")
    diff.set_defaults(run=cmd_diff)
