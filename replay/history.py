"""`ghost replay`: the state rebuilt from events alone, up to a position or a time, and with
--verify the hash chain and the workspaces checked against the events."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.progress import Progress

from adapters.ledger.projection import PatchView
from eventstore import VerifyReport
from replay import reading, timetravel
from replay.context import EXIT_OK, EXIT_PROBLEM, open_store
from replay.output import table, to_json
from replay.snapshots import SnapshotDir
from replay.state import NodeProjection


def cmd_replay(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        until = timetravel.resolve_point(store, args.until) if args.until else None
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
        # SPEC §7's keys (position, patches, files), and `state`, the counts, for scripts
        # that read it already.
        out: dict[str, Any] = {
            "position": summary["position"],
            "patches": [_patch_json(v) for v in projection.patches.values()],
            "files": timetravel.files_json(projection),
            "state": summary,
        }
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
        _print_state(projection, summary)
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


_PATCH_KEYS = ("patch_id", "status", "workspace", "author", "received_at", "files")


def _patch_json(view: PatchView) -> dict[str, Any]:
    """A patch as SPEC §7's replay lists it: the audit row's identity fields."""
    row = reading.audit_row(view)
    return {key: row[key] for key in _PATCH_KEYS}


def _print_state(projection: NodeProjection, summary: dict[str, Any]) -> None:
    """The state as tables: the patches, then per workspace the files ghost knows (who last
    changed each, at which position), then one line per kind of actor."""
    print(f"state at position {summary['position']}")
    table(
        f"patches ({len(projection.patches)})",
        ["patch", "status", "received", "author", "files"],
        [
            (
                v.patch_id,
                v.public_status,
                "-" if v.received_at is None else f"{v.received_at.astimezone():%Y-%m-%d %H:%M:%S}",
                v.author or "-",
                ", ".join(str(f.get("path")) for f in v.files[:3])
                + (" ..." if len(v.files) > 3 else ""),
            )
            for v in projection.patches.values()
        ],
    )
    for ws, files in sorted(timetravel.files_json(projection).items()):
        table(
            f"files of {ws} ({len(files)})",
            ["path", "sha256", "changed by", "at"],
            [
                (rel, str(f["sha256"])[:12], f["changed_by"], f["position"])
                for rel, f in files.items()
            ],
        )
    actors = ", ".join(f"{n} {a['state']}" for n, a in summary["actors"].items()) or "-"
    print(f"actors: {actors}")
    tunnels = ", ".join(f"{n} {'up' if t['up'] else 'down'}" for n, t in summary["tunnels"].items())
    print(f"tunnels: {tunnels or '-'}")
    notes = summary["notifications"]
    print(f"notifications: {notes.get('sent', 0)} sent, {notes.get('failed', 0)} failed")
    print(
        f"runs: {summary['runs']} ({summary['unclean_runs']} unclean); paused: {summary['paused']}"
    )


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
