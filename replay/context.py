"""What every `ghost` command shares: the exit codes, the config and store of the node it is
about (found by replay/locate.py), a patch named by a unique id prefix, and the offline write
path the wiring gives (actors/operator.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Protocol

from adapters.config import (
    Config,
    WorkspaceConfig,
)
from adapters.ledger.records import PatchOutcome
from eventstore import SQLiteEventStore
from eventstore.protocol import EventStore
from replay import locate
from replay.locate import UsageError

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


def node_config(args: argparse.Namespace) -> Config:
    """The config of the node this command is about (see replay/locate.py)."""
    return locate.operator_config(args.config, args.state_dir, Path.cwd())


def state_dir(args: argparse.Namespace) -> Path:
    return node_config(args).node.state_dir


def open_store(args: argparse.Namespace) -> SQLiteEventStore:
    """Read-only: the CLI never competes with the node's writer for reading commands."""
    db = node_config(args).node.state_dir / "events.db"
    if not db.exists():
        raise UsageError(f"no event store at {db} (has ghost-node run here? see --state-dir)")
    return SQLiteEventStore(db, readonly=True)


def full_patch_id(args: argparse.Namespace, typed: str) -> str:
    """The whole id of the patch `typed` names (a unique prefix will do), checked against the
    store; a command then reports an unknown one in its own words."""
    with open_store(args) as store:
        return locate.patch_id(store, typed) or typed
