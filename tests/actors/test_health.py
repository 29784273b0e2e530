"""HealthActor: snapshot, transitions recorded once, watchdog only while healthy."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pykka
import pytest

from actors.backoff import BackoffPolicy
from actors.health import HealthActor, HealthSnapshot, default_checks
from actors.healthchecks import CallableCheck, CheckResult, Done, HealthStatus, PendingCheck
from actors.messages import AddCheck, CheckNow, GetHealth
from actors.recorder import ListRecorder
from actors.spec import ChildSpec
from actors.supervisor import Supervisor
from tests.actors.support import NO_PING, Control, wait_until, worker_spec


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=5)


class Pings:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def snapshot(ref: pykka.ActorRef[HealthActor]) -> HealthSnapshot:
    result: HealthSnapshot = ref.ask(GetHealth(), timeout=5)
    return result


def test_a_hung_actor_stops_the_watchdog_until_it_answers_again(
    recorder: ListRecorder, released: list[threading.Event]
) -> None:
    busy, idle = worker_spec("busy", Control()), worker_spec("idle", Control())
    # Liveness pinging off: the supervisor must not replace the hung actor under the test.
    Supervisor("root", [busy, idle], liveness=NO_PING).launch()
    wait_until(lambda: busy.handle.state == "running" and idle.handle.state == "running")
    pings = Pings()
    health = HealthActor(
        default_checks([busy.handle, idle.handle], store_check=lambda: True),
        interval_s=0.02,
        deadline_s=0.05,
        recorder=recorder,
        watchdog_ping=pings,
    ).launch()
    wait_until(lambda: pings.count >= 3)
    assert snapshot(health).status is HealthStatus.OK

    stuck = threading.Event()
    released.append(stuck)
    busy.handle.tell(("hang", stuck))
    wait_until(lambda: snapshot(health).status is HealthStatus.DOWN)
    hung = snapshot(health)
    assert hung.actors["busy"] == {"state": "hung", "restarts": 0}
    assert hung.actors["idle"] == {"state": "running", "restarts": 0}
    frozen = pings.count
    time.sleep(0.15)  # several rounds while hung: no watchdog ping at all
    assert pings.count == frozen

    stuck.set()
    wait_until(lambda: snapshot(health).status is HealthStatus.OK)
    wait_until(lambda: pings.count >= frozen + 3)

    changes = recorder.events("actor-health", "HealthChanged")
    assert [(e.data["from"], e.data["to"]) for e in changes] == [
        (None, "ok"),
        ("ok", "down"),
        ("down", "ok"),
    ]
    assert changes[1].data["problems"] == ["actors: busy hung"]


def test_snapshot_reports_process_and_restarting_actors_as_degraded(
    recorder: ListRecorder,
) -> None:
    spec = worker_spec("w", Control())
    Supervisor("root", [spec], backoff=BackoffPolicy(min_s=0.5, max_s=0.5)).launch()
    wait_until(lambda: spec.handle.state == "running")
    health = HealthActor(default_checks([spec.handle]), interval_s=60, recorder=recorder).launch()
    first = snapshot(health)
    assert first.status is HealthStatus.OK
    process = first.checks["process"].data
    assert process["rss_bytes"] > 1_000_000
    assert process["threads"] >= 3
    spec.handle.tell("crash")
    wait_until(lambda: spec.handle.state == "backoff")
    degraded: HealthSnapshot = health.ask(CheckNow(), timeout=5)
    assert degraded.status is HealthStatus.DEGRADED
    assert degraded.actors["w"] == {"state": "backoff", "restarts": 1}
    assert degraded.as_dict()["actors"]["w"]["state"] == "backoff"


def test_a_store_check_that_hangs_is_down_within_the_deadline(
    released: list[threading.Event],
) -> None:
    gate = threading.Event()
    released.append(gate)
    started: list[float] = []

    def store_check() -> bool:
        started.append(time.monotonic())
        return gate.wait()

    pings = Pings()
    health = HealthActor(
        [CallableCheck("store", store_check)],
        interval_s=0.02,
        deadline_s=0.05,
        watchdog_ping=pings,
    ).launch()
    began = time.monotonic()
    result: HealthSnapshot = health.ask(CheckNow(), timeout=5)
    assert time.monotonic() - began < 0.5
    assert result.status is HealthStatus.DOWN
    assert "no answer within" in result.checks["store"].detail or "still going" in (
        result.checks["store"].detail
    )
    time.sleep(0.1)
    assert len(started) == 1  # never a second run while the first is stuck
    assert pings.count == 0
    gate.set()
    wait_until(lambda: snapshot(health).status is HealthStatus.OK)
    wait_until(lambda: pings.count > 0)


def test_failing_and_crashing_checks_are_down() -> None:
    def refuses() -> None:
        raise OSError("database is locked")

    class Broken:
        name = "broken"

        def start(self) -> PendingCheck:
            raise RuntimeError("bug in a check")

        def close(self) -> None:
            pass

    health = HealthActor(
        [CallableCheck("store", refuses), CallableCheck("false", lambda: False), Broken()],
        interval_s=60,
    ).launch()
    result = snapshot(health)
    assert result.status is HealthStatus.DOWN
    assert result.checks["store"].detail == "OSError: database is locked"
    assert result.checks["false"].detail == "returned False"
    assert result.checks["broken"].detail == "check crashed: RuntimeError: bug in a check"


def test_checks_are_pluggable(recorder: ListRecorder) -> None:
    class Tunnel:
        name = "tunnel"

        def start(self) -> PendingCheck:
            return Done(CheckResult("tunnel", HealthStatus.DEGRADED, "no public url yet"))

        def close(self) -> None:
            pass

    pings = Pings()
    health = HealthActor([], interval_s=0.02, recorder=recorder, watchdog_ping=pings).launch()
    wait_until(lambda: snapshot(health).status is HealthStatus.OK)
    health.tell(AddCheck(Tunnel()))
    wait_until(lambda: snapshot(health).status is HealthStatus.DEGRADED)
    count = pings.count
    wait_until(lambda: pings.count > count)  # degraded still feeds the watchdog
    assert snapshot(health).problems == ["tunnel: no public url yet"]


def test_health_actor_can_be_supervised(recorder: ListRecorder) -> None:
    child = worker_spec("w", Control())
    health_spec = ChildSpec("health", lambda: HealthActor([], interval_s=0.05))
    Supervisor("root", [child, health_spec], recorder=recorder).launch()
    wait_until(lambda: health_spec.handle.state == "running")
    result: HealthSnapshot = health_spec.handle.ask(GetHealth(), timeout=5)
    assert result.status is HealthStatus.OK
