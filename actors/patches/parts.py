"""What recovery.py and rollback.py use of a PatchFlow, as a Protocol, so that neither imports
flow.py (which imports them): the flow's workspace, store, sandbox, ledger and transactions,
its one way to record an event, and its rollback steps."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from actors.patches.ledger import PatchLedger
from adapters.config import WorkspaceConfig
from adapters.ledger.projection import PatchView
from adapters.patching import Sandbox
from adapters.workspace.changes import FileChange
from adapters.workspace.transaction import FileTransactions
from eventstore.catalogue import EventType
from eventstore.protocol import EventStore

# Told before our own writes, so the watcher reports them as `patch:<id>`, not `external`.
AnnounceWrites = Callable[[Mapping[str, str | None], str], None]


class FlowParts(Protocol):
    workspace: WorkspaceConfig
    store: EventStore
    sandbox: Sandbox
    ledger: PatchLedger
    transactions: FileTransactions
    expect_writes: AnnounceWrites | None

    def record(
        self,
        pid: str,
        kind: EventType,
        data: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
        blobs: Sequence[bytes] = (),
        durable: bool = True,
        defer: bool = False,
    ) -> None: ...

    def rollback_changes(
        self, view: PatchView
    ) -> tuple[list[FileChange], list[dict[str, Any]]]: ...

    def roll_back(
        self,
        pid: str,
        changes: list[FileChange],
        reason: str,
        by: str,
        overwritten: list[dict[str, Any]] | None = None,
    ) -> None: ...
