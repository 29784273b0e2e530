"""`ghost`, wired: the operator CLI (replay/cli.py) given the node's write path for the one
command that changes files while no node runs, an offline rollback. (replay never imports
actors; this module is where the two meet, as actors/node.py is for ghost-node.)"""

from __future__ import annotations

import sys
from pathlib import Path

from actors.patches.flow import PatchFlow
from adapters.config import WorkspaceConfig
from adapters.ledger.records import PatchOutcome
from eventstore.protocol import EventStore
from replay import cli


def rollback_offline(
    workspace: WorkspaceConfig,
    store: EventStore,
    journal_dir: Path,
    patch_id: str,
    *,
    force: bool,
    dry_run: bool,
) -> PatchOutcome:
    """The patch rolled back by a PatchFlow of its own: loading it first settles whatever a
    crash of the last node left in the workspace, as a node's start would."""
    flow = PatchFlow(workspace, store, journal_dir)
    try:
        flow.load()
        return flow.rollback(patch_id, by="ghost-cli", force=force, dry_run=dry_run)
    finally:
        flow.close()


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, offline_rollback=rollback_offline)


if __name__ == "__main__":
    sys.exit(main())
