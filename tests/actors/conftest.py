"""Fixtures of the supervision tests (helpers live in support.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from actors.recorder import ListRecorder
from actors.spec import ChildSpec
from actors.supervisor import Supervisor
from tests.actors.support import FAST, NO_PING, wait_until


@pytest.fixture
def recorder() -> ListRecorder:
    return ListRecorder()


@pytest.fixture
def start_supervisor(recorder: ListRecorder) -> Iterator[Callable[..., Supervisor]]:
    """Builds and launches a Supervisor (recorder and fast backoff by default), waits until
    its children run, and stops whatever is left at the end of the test."""

    def start(name: str, children: list[ChildSpec], wait: bool = True, **kwargs: Any) -> Supervisor:
        kwargs.setdefault("recorder", recorder)
        kwargs.setdefault("backoff", FAST)
        kwargs.setdefault("liveness", NO_PING)
        supervisor = Supervisor(name, children, **kwargs)
        supervisor.launch()
        if wait:
            for spec in children:
                wait_until(lambda s=spec: s.handle.state == "running", what=f"{spec.name} running")
        return supervisor

    yield start
    pykka.ActorRegistry.stop_all(timeout=5)


@pytest.fixture
def released() -> Iterator[list[threading.Event]]:
    """Events that hung workers wait on; all set at the end so no thread stays stuck."""
    events: list[threading.Event] = []
    yield events
    for event in events:
        event.set()
