"""ChaosActor: fault injection for a real ghost-node process (`ghost-node --chaos MODE`).

Tests and operators use it to watch supervision work end to end: a child that crashes over and
over is restarted with growing backoff (visible as ActorFailed / ActorRestarting events) until
the root supervisor gives up and the process exits 70. It does nothing unless asked for.

Modes: `crash[:DELAY_S]` raises while handling a tell DELAY_S after each start; `crash-on-start`
raises in setup(); `hang[:DELAY_S]` blocks its thread DELAY_S after each start (found by the
supervisor's liveness pings).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

from actors.base import GhostActor
from actors.scheduler import Scheduler

MODES = ("crash", "crash-on-start", "hang")
HANG_S = 60.0


@dataclass(frozen=True, slots=True)
class ChaosMode:
    kind: str
    delay_s: float = 0.2

    @classmethod
    def parse(cls, text: str) -> ChaosMode:
        kind, _, delay = text.partition(":")
        if kind not in MODES:
            raise ValueError(f"chaos mode must be one of {', '.join(MODES)}, not {kind!r}")
        try:
            return cls(kind, float(delay) if delay else 0.2)
        except ValueError as exc:
            raise ValueError(f"chaos delay must be a number of seconds: {delay!r}") from exc


@dataclass(frozen=True, slots=True)
class _Strike:
    pass


class InjectedFailure(RuntimeError):
    """The failure ChaosActor injects (a distinct type, so events show it was deliberate)."""


class ChaosActor(GhostActor):
    def __init__(self, mode: ChaosMode, name: str = "chaos") -> None:
        super().__init__(name)
        self.mode = mode
        self._scheduler: Scheduler | None = None

    def setup(self) -> None:
        if self.mode.kind == "crash-on-start":
            raise InjectedFailure("chaos: injected failure in setup()")
        self._scheduler = Scheduler(f"{self.name}-timer")
        self._scheduler.call_later(self.mode.delay_s, partial(self.actor_ref.tell, _Strike()))

    def teardown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()

    def receive(self, message: Any) -> Any:
        if isinstance(message, _Strike):
            if self.mode.kind == "hang":
                # Bounded, so an abandoned incarnation's thread ends eventually (Python cannot
                # kill it); long enough for any liveness deadline to notice.
                threading.Event().wait(HANG_S)
                return None
            raise InjectedFailure("chaos: injected failure while handling a message")
        return super().receive(message)
