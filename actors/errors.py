"""Exceptions raised by the supervision layer."""

from __future__ import annotations

from adapters.operations.ports import Unavailable


class ChildUnavailableError(Unavailable):
    """The child is not serving right now (starting, in backoff, stopped or given up).

    Raised at once by ChildHandle instead of letting an ask wait for an actor that is not there.
    """

    def __init__(self, name: str, state: str, detail: str = "") -> None:
        self.name = name
        self.state = state
        text = f"actor {name!r} is unavailable ({state})"
        super().__init__(f"{text}: {detail}" if detail else text)


class ActorHungError(RuntimeError):
    """Recorded as the error of a child that stopped answering Pings within its deadline."""


class ActorDiedError(RuntimeError):
    """Recorded as the error of a child found dead without having reported why."""


class StartTimeoutError(RuntimeError):
    """Recorded as the error of a child whose setup() did not finish within its deadline."""


class ActorExitError(Exception):
    """A BaseException (SystemExit, ...) raised inside one actor, turned into an ordinary error.

    pykka answers a BaseException in a handler by stopping *every* actor in the process; a
    supervised actor must only take itself down, so GhostActor wraps it in this.
    """


class SupervisorGaveUpError(RuntimeError):
    """A child supervisor exceeded its restart intensity; recorded as its error by the parent."""
