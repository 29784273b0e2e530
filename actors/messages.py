"""Messages that actors of the supervision layer exchange.

Small immutable records (frozen, slotted dataclasses): they cross threads, so they must never be
mutated after being sent, and slots keep the per-message cost low in restart storms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Ping:
    """Liveness probe. Every GhostActor answers it (as an ask) with a Pong."""

    nonce: int = 0


@dataclass(frozen=True, slots=True)
class Pong:
    actor: str
    generation: int
    nonce: int = 0


@dataclass(frozen=True, slots=True)
class ChildStarted:
    """Child -> supervisor: setup() finished, the child now serves messages.

    `thread_id` lets the supervisor show where the child's thread is stuck if it ever hangs.
    """

    name: str
    generation: int
    thread_id: int = 0


@dataclass(frozen=True, slots=True)
class ChildFailed:
    """Child -> supervisor: the child died of an exception (or was found dead/hung).

    `pending` holds the messages that were told to the child but not yet handled when it died:
    the supervisor hands them to the next incarnation instead of dropping them.
    """

    name: str
    generation: int
    error_type: str
    message: str
    traceback: str
    phase: str = "receive"  # start | receive | liveness | factory | escalation
    pending: tuple[Any, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class ChildExited:
    """Child -> supervisor: the child stopped on its own without an error (a normal exit)."""

    name: str
    generation: int


@dataclass(frozen=True, slots=True)
class RestartChildren:
    """Timer -> supervisor: the backoff of these children is over, start them again.

    `token` identifies the restart decision, so a timer that fires after the children were
    restarted or stopped some other way is ignored.
    """

    names: tuple[str, ...]
    token: int


@dataclass(frozen=True, slots=True)
class LivenessTick:
    """Timer -> supervisor: time to ping the children and look for hung or dead ones."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Ask an actor to stop after the messages already in its inbox (same as ref.stop())."""

    reason: str = "requested"


@dataclass(frozen=True, slots=True)
class HealthTick:
    """Timer -> HealthActor: run the checks now."""


@dataclass(frozen=True, slots=True)
class GetHealth:
    """Ask the HealthActor for its latest HealthSnapshot (answered without running checks)."""


@dataclass(frozen=True, slots=True)
class CheckNow:
    """Ask the HealthActor to run its checks now and answer with the fresh HealthSnapshot."""


@dataclass(frozen=True, slots=True)
class AddCheck:
    """Tell the HealthActor to run one more check from now on (tunnels, services...)."""

    check: Any  # actors.healthchecks.HealthCheck; Any keeps this module free of imports


@dataclass(frozen=True, slots=True)
class GaveUp:
    """What the root supervisor hands to its on_give_up callback (the daemon exits with 70)."""

    supervisor: str
    reason: str
    error_type: str
    restarts: int
    period_s: float
