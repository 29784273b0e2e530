"""ServiceActor under a real Supervisor: fake services are real subprocesses, events go to a
real SQLiteEventStore."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest

from actors.backoff import BackoffPolicy
from actors.edge import edge_checks, service_specs
from actors.healthchecks import HealthStatus
from actors.recorder import StoreRecorder
from actors.service import GetService, ServiceActor
from actors.spec import ChildSpec
from actors.supervisor import Supervisor
from adapters.config import CommandLine, Config, ServiceConfig
from adapters.processes import CrashLoopDetector
from eventstore import RecordedEvent, SQLiteEventStore
from tests.actors.support import wait_until

FAKE_SERVICE = str(Path(__file__).parents[1] / "adapters" / "processes" / "fake_service.py")
STREAM = "service-api"
GROWING = BackoffPolicy(min_s=0.05, max_s=1.0, jitter=0.0)


def fake(*args: str) -> CommandLine:
    return CommandLine((sys.executable, FAKE_SERVICE, *args))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    with SQLiteEventStore(tmp_path / "events.db") as s:
        yield s


@pytest.fixture
def run(
    store: SQLiteEventStore, start_supervisor: Callable[..., Supervisor]
) -> Iterator[Callable[..., Supervisor]]:
    """Starts a service actor; at the end stops it and checks nothing is left behind."""
    baseline = threading.active_count()
    started: list[Supervisor] = []

    def start(config: ServiceConfig, **kw: Any) -> Supervisor:
        kw = {"check_interval_s": 0.1, "poll_s": 0.02, "grace_s": 1.0, **kw}
        recorder = StoreRecorder(store)
        spec = ChildSpec("service.api", partial(ServiceActor, config, recorder, None, **kw))
        sup = start_supervisor(
            "edge", [spec], recorder=recorder, backoff=GROWING, max_restarts=20, wait=False
        )
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.actor_ref.stop(timeout=10)
    wait_until(lambda: threading.active_count() <= baseline, what="threads to end")


def events(
    store: SQLiteEventStore, stream: str = STREAM, type: str | None = None
) -> list[RecordedEvent]:
    return [e for e in store.read_stream(stream) if type is None or e.type == type]


def status(sup: Supervisor) -> dict[str, Any]:
    result: dict[str, Any] = sup.handle("service.api").ask(GetService(), timeout=5)
    return result


def no_children() -> bool:
    return not psutil.Process().children(recursive=True)


def test_crashes_are_recorded_restarted_with_growing_backoff_then_parked(
    run: Callable[..., Supervisor], store: SQLiteEventStore
) -> None:
    config = ServiceConfig(name="api", command=fake("crash", "--after", "0.05", "--code", "3"))
    detector = CrashLoopDetector(max_exits=4, window_s=60)
    sup = run(config, crash_loop=detector, cooldown_s=0.5)

    wait_until(lambda: len(events(store, type="ServiceExited")) >= 4, timeout=15, what="4 exits")
    exits = events(store, type="ServiceExited")
    for exited in exits:
        assert exited.data["exit_code"] == 3
        assert exited.data["signal"] is None
        assert exited.data["stderr_tail"] == ["fatal: fake crash with code 3"]
        assert exited.data["uptime_s"] > 0
        assert exited.data["expected"] is False
        assert exited.data["pid"] > 0
    assert [e.data["crash_loop"] for e in exits[:4]] == [False, False, False, True]
    started = events(store, type="ServiceStarted")
    assert started[0].data["name"] == "api"
    assert started[0].data["pid"] == exits[0].data["pid"]

    # The fourth exit parks the actor instead of spending the supervisor's restart budget.
    wait_until(lambda: status(sup)["state"] == "crash-looping", what="parked")
    wait_until(lambda: events(store, "actor-service.api", "ActorRestarting"), what="restarts")
    delays = [e.data["delay_s"] for e in events(store, "actor-service.api", "ActorRestarting")]
    assert delays[:3] == [0.05, 0.1, 0.2]
    # After the cool-down it fails for real and the supervisor starts it again.
    wait_until(lambda: len(events(store, type="ServiceStarted")) >= 5, timeout=10, what="retry")
    failures = events(store, "actor-service.api", "ActorFailed")
    assert "retrying after 0.5 s" in failures[3].data["message"]


def test_a_port_held_by_another_process_is_reported_and_left_alone(
    run: Callable[..., Supervisor], store: SQLiteEventStore
) -> None:
    owner = subprocess.Popen(
        [sys.executable, FAKE_SERVICE, "serve", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        port = int(owner.stdout.readline().strip().removeprefix("port="))
        config = ServiceConfig(name="api", command=fake("serve", "--port", str(port)), port=port)
        sup = run(config)
        wait_until(lambda: events(store, type="ServiceStartFailed"), what="ServiceStartFailed")
        failed = events(store, type="ServiceStartFailed")[0].data
        assert failed["reason"] == "port_in_use"
        assert failed["port"] == port
        assert failed["owner"]["pid"] == owner.pid
        assert FAKE_SERVICE in failed["owner"]["command"]
        assert f"pid {owner.pid}" in failed["message"]
        sup.actor_ref.stop(timeout=10)
        assert owner.poll() is None  # never killed
        assert not events(store, type="ServiceStarted")
    finally:
        owner.terminate()
        owner.wait(5)
        assert owner.stdout is not None
        owner.stdout.close()
    wait_until(no_children, what="no children")


def test_healthy_service_then_memory_limit_restart_then_clean_stop(
    run: Callable[..., Supervisor], store: SQLiteEventStore
) -> None:
    port = free_port()
    config = ServiceConfig(
        name="api",
        command=fake("serve", "--port", str(port), "--allocate-mb", "80"),
        port=port,
        health_url=f"http://127.0.0.1:{port}/",
        max_rss_mb=40,
    )
    sup = run(config)
    wait_until(lambda: events(store, type="ServiceExited"), timeout=10, what="memory restart")
    exited = events(store, type="ServiceExited")[0].data
    assert exited["reason"].startswith("restarting: rss")
    assert "max_rss_mb 40" in exited["reason"]
    assert exited["signal"] == 15
    assert exited["expected"] is False
    wait_until(lambda: sup.handle("service.api").restarts >= 1, what="restart")
    sup.actor_ref.stop(timeout=10)
    wait_until(no_children, what="no children")


def test_status_health_and_clean_stop(
    run: Callable[..., Supervisor], store: SQLiteEventStore
) -> None:
    port = free_port()
    config = ServiceConfig(name="api", command=fake("serve", "--port", str(port)), port=port)
    sup = run(config)
    wait_until(lambda: sup.handle("service.api").state == "running", what="running")
    wait_until(lambda: status(sup)["state"] == "running", what="healthy")
    now = status(sup)
    assert now["health"]["ok"] is True
    assert now["health"]["reason"] == f"port {port} open"
    assert now["pid"] > 0
    assert now["rss_bytes"] > 0
    sup.actor_ref.stop(timeout=10)
    wait_until(lambda: events(store, type="ServiceExited"), what="ServiceExited")  # async
    [exited] = events(store, type="ServiceExited")
    assert exited.data["expected"] is True
    assert exited.data["reason"] == "stopped"
    assert exited.data["signal"] == 15
    assert not psutil.pid_exists(now["pid"])
    wait_until(no_children, what="no children")


def test_built_from_the_config_with_a_health_check(
    store: SQLiteEventStore, start_supervisor: Callable[..., Supervisor]
) -> None:
    port = free_port()
    svc = ServiceConfig(name="api", command=fake("serve", "--port", str(port)), port=port)
    [spec] = service_specs(Config(services=(svc,)), StoreRecorder(store), env={"PATH": "/bin"})
    [check] = edge_checks([], [spec])
    sup = start_supervisor("edge", [spec], recorder=StoreRecorder(store))
    wait_until(lambda: check.start().result(2.0).status == HealthStatus.OK, what="healthy")
    sup.actor_ref.stop(timeout=10)
    result = check.start().result(1.0)
    assert result.status == HealthStatus.DEGRADED
    assert "stopped" in result.detail
    wait_until(no_children, what="no children")
