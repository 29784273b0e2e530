"""TunnelActor under a real Supervisor: the fake tunnel is a real subprocess forwarding to a
local HTTP server, events go to a real SQLiteEventStore."""

from __future__ import annotations

import http.server
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest

from actors.edge import child_env, edge_checks, tunnel_specs
from actors.errors import ChildUnavailableError
from actors.healthchecks import HealthStatus
from actors.recorder import StoreRecorder
from actors.spec import ChildSpec
from actors.supervisor import Supervisor
from actors.tunnel import GetTunnel, TunnelActor
from adapters.config import CommandLine, Config, SlackConfig, TunnelConfig
from eventstore import RecordedEvent, SQLiteEventStore
from tests.actors.support import wait_until

FAKE_TUNNEL = str(Path(__file__).parents[1] / "adapters" / "processes" / "fake_tunnel.py")
LOOPBACK = r"(?<=url=)http://127\.0\.0\.1:\d+"
STREAM = "tunnel-fake"


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/health" else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[http.server.ThreadingHTTPServer]:
    handler = type("Handler", (Health,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = False  # server_close() joins request threads
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    with SQLiteEventStore(tmp_path / "events.db") as s:
        yield s


@pytest.fixture
def run(
    store: SQLiteEventStore,
    origin: http.server.ThreadingHTTPServer,
    start_supervisor: Callable[..., Supervisor],
) -> Iterator[Callable[..., Supervisor]]:
    """Starts the tunnel actor; at the end stops it and checks nothing is left behind."""
    baseline = threading.active_count()
    started: list[Supervisor] = []

    def start(pattern: str = LOOPBACK, **kw: Any) -> Supervisor:
        config = TunnelConfig(
            name="fake",
            command=CommandLine((sys.executable, FAKE_TUNNEL, str(origin.server_address[1]))),
            url_pattern=pattern,
            check_interval_s=0.2,
        )
        kw = {
            "check_timeout_s": 1.0,
            "startup_s": 0.3,
            "retry_s": 0.05,
            "failure_threshold": 2,
            "poll_s": 0.05,
            "grace_s": 1.0,
            **kw,
        }
        recorder = StoreRecorder(store)
        spec = ChildSpec("tunnel.fake", partial(TunnelActor, config, recorder, None, **kw))
        sup = start_supervisor("edge", [spec], recorder=recorder)
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.actor_ref.stop(timeout=10)
    wait_until(lambda: threading.active_count() <= baseline, what="threads to end")
    assert not psutil.Process().children(recursive=True)


def events(
    store: SQLiteEventStore, stream: str = STREAM, type: str | None = None
) -> list[RecordedEvent]:
    return [e for e in store.read_stream(stream) if type is None or e.type == type]


def status(sup: Supervisor) -> dict[str, Any]:
    result: dict[str, Any] = sup.handle("tunnel.fake").ask(GetTunnel(), timeout=5)
    return result


def test_up_then_killed_then_restarted_and_up_again(
    run: Callable[..., Supervisor], store: SQLiteEventStore
) -> None:
    sup = run()
    wait_until(lambda: events(store, type="TunnelUp"), what="TunnelUp")
    [up] = events(store)
    assert up.data["name"] == "fake"
    assert up.data["url"].startswith("http://127.0.0.1:")
    now = status(sup)
    assert now["state"] == "up"
    assert now["url"] == up.data["url"]
    assert now["last_check"]["ok"] is True

    os.kill(now["pid"], signal.SIGKILL)
    wait_until(lambda: len(events(store, type="TunnelUp")) == 2, what="second TunnelUp")
    kinds = [e.type for e in events(store)]
    assert kinds == ["TunnelUp", "TunnelDown", "TunnelUp"]
    down = events(store)[1]
    assert "exited" in down.data["reason"]
    assert down.data["url"] == up.data["url"]
    wait_until(lambda: events(store, "actor-tunnel.fake", "ActorFailed"), what="ActorFailed")
    failed = events(store, "actor-tunnel.fake", "ActorFailed")
    assert failed[0].data["error_type"] == "TunnelFailedError"
    assert sup.handle("tunnel.fake").restarts == 1
    assert not psutil.pid_exists(now["pid"]) or psutil.Process(now["pid"]).status() == "zombie"


def test_failing_checks_take_it_down_and_the_supervisor_restarts_it(
    run: Callable[..., Supervisor], store: SQLiteEventStore, origin: Any
) -> None:
    sup = run()
    wait_until(lambda: events(store, type="TunnelUp"), what="TunnelUp")
    origin.RequestHandlerClass.status = 503
    wait_until(lambda: events(store, type="TunnelDown"), what="TunnelDown")
    down = events(store, type="TunnelDown")[0]
    assert "2 failed checks in a row" in down.data["reason"]
    assert "503" in down.data["reason"]
    # While the origin fails, new incarnations never come up: no TunnelDown per attempt.
    wait_until(lambda: sup.handle("tunnel.fake").restarts >= 2, what="restarts")
    assert len(events(store, type="TunnelDown")) == 1
    origin.RequestHandlerClass.status = 200
    wait_until(lambda: len(events(store, type="TunnelUp")) == 2, what="up again")


def test_stop_ends_the_process_group_and_records_down(
    run: Callable[..., Supervisor], store: SQLiteEventStore
) -> None:
    sup = run()
    wait_until(lambda: events(store, type="TunnelUp"), what="TunnelUp")
    pid = status(sup)["pid"]
    sup.actor_ref.stop(timeout=10)
    wait_until(lambda: events(store, type="TunnelDown"), what="TunnelDown")
    assert events(store, type="TunnelDown")[0].data["reason"].startswith("stopped")
    assert not psutil.pid_exists(pid)


def test_no_url_in_time_fails_the_start_without_a_down_event(
    run: Callable[..., Supervisor], store: SQLiteEventStore
) -> None:
    sup = run(pattern=r"https://never\.example", url_timeout_s=0.3)
    handle = sup.handle("tunnel.fake")
    wait_until(lambda: handle.restarts >= 1, what="a restart")
    wait_until(lambda: events(store, "actor-tunnel.fake", "ActorFailed"), what="ActorFailed")
    failed = events(store, "actor-tunnel.fake", "ActorFailed")
    assert failed[0].data["error_type"] == "TunnelUrlError"
    assert "no URL in 0.3 s" in failed[0].data["message"]
    assert "url=http://127.0.0.1:" in failed[0].data["message"]  # its last output, to debug
    assert events(store) == []


def test_edge_builders_and_the_tunnel_health_check(
    store: SQLiteEventStore,
    origin: http.server.ThreadingHTTPServer,
    start_supervisor: Callable[..., Supervisor],
) -> None:
    port = origin.server_address[1]
    tunnel = TunnelConfig(
        name="fake",
        command=CommandLine((sys.executable, FAKE_TUNNEL, str(port))),
        url_pattern=LOOPBACK,
        check_interval_s=0.2,
    )
    config = Config(tunnels=(tunnel,), slack=SlackConfig(webhook_url_env="MY_HOOK"))
    env = child_env(config, {"PATH": "/bin", "GHOST_TOKEN": "t", "MY_HOOK": "u", "SLACK_X": "s"})
    assert env == {"PATH": "/bin"}
    [spec] = tunnel_specs(config, StoreRecorder(store))
    [check] = edge_checks([spec], [])
    assert spec.name == "tunnel.fake"
    assert check.name == "tunnel.fake"
    before = check.start().result(1.0)  # not started yet: restarting counts as degraded
    assert before.status == HealthStatus.DEGRADED
    sup = start_supervisor("edge", [spec], recorder=StoreRecorder(store))
    wait_until(lambda: events(store, type="TunnelUp"), what="TunnelUp")
    up = check.start().result(5.0)
    assert up.status == HealthStatus.OK
    assert up.detail.startswith("http://127.0.0.1:")
    sup.actor_ref.stop(timeout=10)
    after = check.start().result(1.0)
    assert after.status == HealthStatus.DEGRADED
    assert "stopped" in after.detail
    assert not psutil.Process().children(recursive=True)


def test_failures_within_the_startup_allowance_do_not_count(
    run: Callable[..., Supervisor], store: SQLiteEventStore, origin: Any
) -> None:
    origin.RequestHandlerClass.status = 503  # a fresh URL that does not answer yet
    sup = run(startup_s=10.0)
    handle = sup.handle("tunnel.fake")
    wait_until(lambda: handle.state == "running", what="running")
    wait_until(lambda: (status(sup)["last_check"] or {}).get("ok") is False, what="a failure")
    time.sleep(0.5)  # several failed checks (retry_s is 0.05), none of them counted
    origin.RequestHandlerClass.status = 200
    wait_until(lambda: events(store, type="TunnelUp"), what="TunnelUp")
    assert handle.restarts == 0
    assert status(sup)["consecutive_failures"] == 0


def test_a_tunnel_dying_on_every_start_parks_instead_of_exhausting_its_supervisor(
    store: SQLiteEventStore,
    origin: http.server.ThreadingHTTPServer,
    start_supervisor: Callable[..., Supervisor],
) -> None:
    """Two deaths within the window make a crash loop: the actor ends the process, says
    "crash-looping", and fails only after its cooldown, so a supervisor allowing 3 restarts
    per minute never gives up (and its other children, the web actor, never go down)."""
    from adapters.processes import CrashLoopDetector

    config = TunnelConfig(
        name="fake",
        command=CommandLine(
            (sys.executable, FAKE_TUNNEL, str(origin.server_address[1]), "--die-after", "0.3")
        ),
        url_pattern=LOOPBACK,
        check_interval_s=0.2,
    )
    recorder = StoreRecorder(store)
    detector = CrashLoopDetector(max_exits=2, window_s=60)
    factory = partial(
        TunnelActor, config, recorder, None, poll_s=0.05, crash_loop=detector, cooldown_s=1.5
    )
    spec = ChildSpec("tunnel.fake", factory)
    sup = start_supervisor("links", [spec], recorder=recorder, max_restarts=3, period_s=60)

    def state() -> str | None:
        try:
            return str(status(sup)["state"])
        except ChildUnavailableError:
            return None  # between two incarnations

    wait_until(lambda: state() == "crash-looping", what="the tunnel parked")
    parked = status(sup)
    assert parked["pid"] is None
    assert "exited" in parked["parked_reason"]
    # After the cooldown it is restarted (and parks again): one restart per cooldown.
    wait_until(
        lambda: len(events(store, "actor-tunnel.fake", "ActorRestarting")) >= 2,
        timeout=10,
        what="a restart after the cooldown",
    )
    assert sup.actor_ref.is_alive()
    assert not [e for e in store.read_all() if e.type == "SupervisorGaveUp"]
    sup.actor_ref.stop(timeout=10)
