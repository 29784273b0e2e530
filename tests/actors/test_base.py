"""GhostActor on its own: Ping, failures without a supervisor, BaseException containment."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.base import GhostActor
from actors.errors import ChildUnavailableError
from actors.handle import ChildHandle
from actors.messages import Ping, Pong, Stop
from actors.states import ActorState
from tests.actors.support import wait_until


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=5)


class Echo(GhostActor):
    def receive(self, message: Any) -> Any:
        if message == "exit":
            sys.exit(1)
        return message


class BadSetup(GhostActor):
    def setup(self) -> None:
        raise SystemExit("setup called sys.exit")


def test_ping_is_answered_with_the_name_and_generation() -> None:
    ref = Echo.start(name="echo")
    assert ref.ask(Ping(nonce=7), timeout=2) == Pong("echo", 0, 7)
    assert ref.ask("hello", timeout=2) == "hello"


def test_stop_message_stops_the_actor() -> None:
    ref = Echo.start()
    ref.tell(Stop())
    wait_until(lambda: not ref.is_alive())


def test_a_base_exception_stops_only_the_actor_that_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bystander = Echo.start(name="bystander")
    victim = Echo.start(name="victim")
    victim.tell("exit")
    wait_until(lambda: not victim.is_alive())
    assert bystander.ask("still alive", timeout=2) == "still alive"
    # Logged by the failing actor's thread as it ends, possibly just after is_alive() flips.
    wait_until(lambda: any("ActorExitError" in r.getMessage() for r in caplog.records))


def test_a_base_exception_in_setup_stops_the_actor_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    ref = BadSetup.start(name="bad")
    wait_until(lambda: not ref.is_alive())
    expected = "unsupervised actor bad failed: ActorExitError: SystemExit in setup"
    wait_until(lambda: any(expected in r.getMessage() for r in caplog.records))


def test_handle_buffers_before_the_first_start_and_only_its_owner_updates_it() -> None:
    handle = ChildHandle("w", buffer_size=3)
    handle.tell(1)
    owner, intruder = object(), object()
    handle.claim(owner)
    handle.update(intruder, ActorState.FATAL)
    assert handle.state is ActorState.STARTING
    ref = Echo.start()
    handle.update(owner, ActorState.RUNNING, ref)
    assert handle.buffered == 0
    assert handle.ask("x", timeout=2) == "x"
    handle.update(owner, ActorState.STOPPED)
    with pytest.raises(ChildUnavailableError, match="stopped"):
        handle.ask("x")
    with pytest.raises(ChildUnavailableError, match="not coming back"):
        handle.tell("x")
