"""What the front doors (the web API, Slack, and the operation handlers) need from the node's
actors, as interfaces the actors implement and hand over at wiring time (actors/node.py). So
adapters never import actors: a test can give these anything that behaves the same.

Futures are the actors' answers: `concurrent.futures.Future` from PatchService, and pykka's
for asks (`Answer`, waited for in the reactor's thread pool by twisted_bridge)."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Protocol

from adapters.config import WorkspaceConfig
from adapters.ledger.projection import PatchView
from adapters.ledger.records import Decision, PatchCommand, PatchOutcome


class Unavailable(RuntimeError):
    """The actor is not serving right now (starting, restarting, stopped): asked at once
    instead of waiting for an actor that is not there."""


class Answer(Protocol):
    """An actor's answer to come (a pykka Future)."""

    def get(self, *, timeout: float | None = None) -> Any: ...


class ActorPort(Protocol):
    """One supervised actor as a front door sees it: its supervision state, its own status
    report (a tunnel's URL, a watcher's patterns...), and a restart."""

    @property
    def state(self) -> str: ...

    def status(self) -> Answer:
        """Its status report to come; raises Unavailable while it is not serving."""
        ...

    def restart(self) -> bool:
        """Stop it so its supervisor starts it again; False when it is not running."""
        ...


class HealthPort(Protocol):
    """The health actor: a snapshot ({status, actors, checks}) to come; `fresh` runs the
    checks now instead of answering the last round. Raises Unavailable while it is down."""

    def snapshot(self, fresh: bool = False) -> Answer: ...


class PatchPort(Protocol):
    """The patch actors behind one thread-safe face (actors/patch_actor.PatchService)."""

    @property
    def workspaces(self) -> Mapping[str, WorkspaceConfig]: ...

    def workspace_name(self, requested: str | None) -> str:
        """The workspace meant (the only one when None); FlowError when there is none."""
        ...

    def submit(
        self, command: PatchCommand, meta: Mapping[str, Any] | None = None
    ) -> tuple[str, Future[PatchOutcome]]: ...

    def decide(
        self,
        decision: Decision,
        pid: str,
        by: str,
        *,
        reason: str = "",
        force: bool = False,
        dry_run: bool = False,
    ) -> Future[PatchOutcome]: ...

    def run_tests(
        self, workspace: str, by: str, meta: Mapping[str, Any] | None = None
    ) -> Future[dict[str, Any]]: ...

    def set_paused(self, paused: bool, by: str) -> Future[list[PatchOutcome]]: ...

    def view(self, pid: str) -> PatchView | None: ...
