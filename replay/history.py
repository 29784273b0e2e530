"""`ghost replay`: the state rebuilt from events alone, up to a position or a time, and with
--verify the hash chain and the workspaces checked against the events."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.progress import Progress

from eventstore import VerifyReport
from replay import reading
from replay.context import EXIT_OK, EXIT_PROBLEM, open_store
from replay.locate import UsageError
from replay.output import to_json
from replay.snapshots import SnapshotDir


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        until = reading.parse_until(args.until) if args.until else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    with open_store(args) as store:
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
