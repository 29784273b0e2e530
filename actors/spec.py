"""How a supervisor is told what to run: child specs, restart types, strategies, liveness."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from actors.handle import DEFAULT_BUFFER, ChildHandle

if TYPE_CHECKING:
    from actors.base import GhostActor


class Restart(enum.StrEnum):
    """When a child is restarted (Erlang/OTP's restart types)."""

    PERMANENT = "permanent"  # always, whether it failed or exited normally
    TRANSIENT = "transient"  # only after a failure
    TEMPORARY = "temporary"  # never


class Strategy(enum.StrEnum):
    ONE_FOR_ONE = "one_for_one"  # restart only the child that failed
    ONE_FOR_ALL = "one_for_all"  # stop all children and restart them all


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child of a supervisor.

    `factory` returns a new, *un-started* GhostActor instance each time it is called (a class,
    a functools.partial or a lambda); the supervisor binds it and launches it. Building the
    instance with arguments this way keeps every incarnation's configuration in one place.

    `handle` is created with the spec and stays the same across restarts of the child and of
    its supervisor (when the supervisor's own factory reuses the same specs): hand it to
    whoever must talk to the child.
    """

    name: str
    factory: Callable[[], GhostActor]
    restart: Restart = Restart.PERMANENT
    buffer_size: int = DEFAULT_BUFFER
    handle: ChildHandle = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"child name must be non-empty and without '/': {self.name!r}")
        object.__setattr__(self, "handle", ChildHandle(self.name, self.buffer_size))


@dataclass(frozen=True, slots=True)
class Liveness:
    """How a supervisor finds children that stopped answering.

    Every `interval_s` each running child is pinged; one that has not answered `timeout_s`
    after the ping (or whose setup() runs longer than `start_timeout_s`) is declared hung.
    `interval_s=None` turns pinging off (then only reported failures are noticed).

    A child supervisor may be busy up to its stop_timeout_s per child it stops; keep the
    parent's `timeout_s` above that so it is not mistaken for hung.
    """

    interval_s: float | None = 5.0
    timeout_s: float = 10.0
    start_timeout_s: float = 30.0
