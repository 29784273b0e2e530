"""The actors behind the front doors' interfaces (adapters/operations/ports.py): built by
actors/node.py at wiring time from the supervision tree's handles."""

from __future__ import annotations

from typing import Any

from actors.handle import ChildHandle
from actors.messages import CheckNow, GetHealth
from adapters.operations.ports import Answer


class ActorProbe:
    """An ActorPort over a child's handle: `status` asks it `question` (GetTunnel, GetService,
    GetWatchInfo...), which the actor answers with a dict."""

    def __init__(self, handle: ChildHandle, question: object | None = None) -> None:
        self._handle = handle
        self._question = question

    @property
    def state(self) -> str:
        return str(self._handle.state)

    def status(self) -> Answer:
        if self._question is None:
            raise TypeError(f"{self._handle.name} answers no status question")
        future: Answer = self._handle.ask_future(self._question)
        return future

    def restart(self) -> bool:
        ref = self._handle.ref
        if ref is None:
            return False
        # A stop is a normal exit: the supervisor restarts a permanent child at once.
        ref.stop(block=False)
        return True


class HealthProbe:
    """The HealthPort over the health actor's handle: its HealthSnapshot as a dict."""

    def __init__(self, handle: ChildHandle) -> None:
        self._handle = handle

    def snapshot(self, fresh: bool = False) -> Answer:
        future: Any = self._handle.ask_future(CheckNow() if fresh else GetHealth())
        mapped: Answer = future.map(lambda snap: snap.as_dict())
        return mapped
