"""ghost-node as systemd and an operator meet it: real processes, real signals, real sockets."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.actors.support import FAST_SUPERVISOR, types, write_config
from tests.node_process import NodeProcess


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def _started(ws: Path, *args: str, env: dict[str, str] | None = None) -> NodeProcess:
    """A node whose events the test follows from its first one: not waited for, its output
    captured."""
    return NodeProcess(ws, *args, env=env, wait=False, capture=True)


def test_clean_start_and_sigterm(ws: Path) -> None:
    node = _started(ws)
    try:
        events = node.wait_for(lambda ev: "ActorStarted" in types(ev))
        _wait_for_node_json(ws)  # written once the reactor runs and the API is bound
    except BaseException:
        node.kill()  # never leave a node behind for the tests that count child processes
        raise
    assert types(events)[0] == "NodeStarted"
    assert events[0].data["previous_run_clean"] is True
    info = json.loads((ws / ".ghost" / "node.json").read_text())
    assert info["pid"] == node.proc.pid
    assert (ws / ".ghost").stat().st_mode & 0o777 == 0o700
    assert (ws / ".ghost" / "token").stat().st_mode & 0o777 == 0o600
    node.signal(signal.SIGTERM)
    assert node.wait() == 0
    events = node.events()
    assert types(events)[-1] == "NodeStopped"
    assert events[-1].data["clean"] is True
    assert "ActorStopped" in types(events)
    assert not (ws / ".ghost" / "node.json").exists()


@pytest.mark.parametrize(
    ("sig", "delay_s"),
    [(signal.SIGTERM, 0.0), (signal.SIGTERM, 0.1), (signal.SIGTERM, 0.25), (signal.SIGINT, 0.1)],
)
def test_a_stop_signal_while_starting_is_a_clean_stop(
    ws: Path, sig: signal.Signals, delay_s: float
) -> None:
    """systemd may stop a node that is still starting: from NodeStarted until the reactor's own
    handlers are in place, SIGTERM or Ctrl-C must not kill the process with NodeStopped
    unwritten. The delays spread the signal over the start (actors launching, the reactor
    starting), where a window once opened."""
    node = _started(ws)
    deadline = time.monotonic() + 20
    while "NodeStarted" not in types(node.events()) and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay_s)
    node.signal(sig)
    _assert_stopped_cleanly(node)


def test_ctrl_c_stops_a_running_node(ws: Path) -> None:
    """SIGINT (Ctrl-C in a terminal) is a clean stop once the node serves: the handler that
    holds signals while starting must not keep Twisted from installing its own."""
    node = _started(ws)
    node.wait_for(lambda ev: "ActorStarted" in types(ev))
    _wait_for_node_json(ws)
    node.signal(signal.SIGINT)
    _assert_stopped_cleanly(node)


def _wait_for_node_json(ws: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (ws / ".ghost" / "node.json").exists():
        assert time.monotonic() < deadline, "node.json never appeared"
        time.sleep(0.02)


def _assert_stopped_cleanly(node: NodeProcess) -> None:
    assert node.wait() == 0
    events = node.events()
    assert types(events)[-1] == "NodeStopped"
    assert events[-1].data["clean"] is True


def test_second_node_on_the_same_state_dir_exits_2(ws: Path) -> None:
    first = _started(ws)
    try:
        first.wait_for(lambda ev: "NodeStarted" in types(ev))
        second = _started(ws)
        assert second.wait() == 2
        _, err = second.output()
        assert "lock" in err.lower() or "already" in err.lower()
        assert str(first.proc.pid) in err
    finally:
        first.signal(signal.SIGTERM)
        assert first.wait() == 0


def test_sigkill_then_start_records_the_unclean_end(ws: Path) -> None:
    first = _started(ws)
    first.wait_for(lambda ev: "ActorStarted" in types(ev))
    first.proc.kill()
    first.wait()
    second = _started(ws)
    try:
        events = second.wait_for(lambda ev: types(ev).count("NodeStarted") == 2)
        stopped = [e for e in events if e.type == "NodeStopped"]
        assert len(stopped) == 1
        assert stopped[0].data["clean"] is False
        assert stopped[0].data["pid"] == first.proc.pid
        assert events[-1].type != "NodeStopped"
        restarted = [e for e in events if e.type == "NodeStarted"][-1]
        assert restarted.data["previous_run_clean"] is False
    finally:
        second.signal(signal.SIGTERM)
        assert second.wait() == 0


def test_an_actor_failing_over_and_over_is_restarted_with_growing_backoff(
    ws: Path, tmp_path: Path
) -> None:
    config = write_config(ws, FAST_SUPERVISOR.format(max_restarts=1000))
    node = _started(ws, "--config", str(config), "--chaos", "crash:0.02")
    try:
        events = node.wait_for(lambda ev: types(ev).count("ActorRestarting") >= 6)
        failed = [e for e in events if e.type == "ActorFailed"]
        assert failed[0].data["error_type"].endswith("InjectedFailure")
        delays = [e.data["delay_s"] for e in events if e.type == "ActorRestarting"][:6]
        # 0.05, 0.1, 0.2, 0.4 (cap), 0.4... with jitter that only shortens (<= 10 %)
        assert delays[0] <= 0.05
        assert delays[2] > delays[0] * 2
        assert all(d <= 0.4 for d in delays)
        assert node.proc.poll() is None  # still serving
    finally:
        node.signal(signal.SIGTERM)
        assert node.wait() == 0  # SIGTERM while busy restarting: still a clean exit
    assert types(node.events())[-1] == "NodeStopped"


def test_root_giving_up_exits_70(ws: Path, tmp_path: Path) -> None:
    config = write_config(ws, FAST_SUPERVISOR.format(max_restarts=3))
    node = _started(ws, "--config", str(config), "--chaos", "crash:0.02")
    assert node.wait(30) == 70
    events = node.events()
    assert "SupervisorGaveUp" in types(events)
    assert types(events).count("ActorRestarting") == 3
    assert types(events)[-1] == "NodeStopped"
    assert events[-1].data["exit_code"] == 70


def test_crash_in_setup_is_supervised_too(ws: Path, tmp_path: Path) -> None:
    config = write_config(ws, FAST_SUPERVISOR.format(max_restarts=2))
    node = _started(ws, "--config", str(config), "--chaos", "crash-on-start")
    assert node.wait(30) == 70
    failed = [e for e in node.events() if e.type == "ActorFailed"]
    assert failed
    assert "setup" in failed[0].data["message"]


def _notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    return sock


def _drain(
    sock: socket.socket, seconds: float, until: Callable[[list[str]], bool] | None = None
) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and until(got)):
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return got


def _ready_and_pinging(messages: list[str]) -> bool:
    ready = [i for i, m in enumerate(messages) if m.startswith("READY=1")]
    return bool(ready) and sum("WATCHDOG=1" in m for m in messages[ready[0] :]) >= 3


def test_sd_notify_ready_watchdog_and_stopping(ws: Path, tmp_path: Path) -> None:
    sock = _notify_socket(tmp_path)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    node = _started(ws, env=env)
    try:
        # Waits for the condition, not a fixed time: a busy machine may start slowly.
        messages = _drain(sock, 30.0, until=_ready_and_pinging)
        assert any(m.startswith("READY=1") for m in messages)
        assert sum("WATCHDOG=1" in m for m in messages) >= 3  # every 0.5 s while healthy
    finally:
        node.signal(signal.SIGTERM)
        assert node.wait() == 0
    assert any("STOPPING=1" in m for m in _drain(sock, 0.5))
    sock.close()


def test_watchdog_stops_while_an_actor_is_hung(ws: Path, tmp_path: Path) -> None:
    sock = _notify_socket(tmp_path)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    node = _started(ws, "--chaos", "hang:4", env=env)
    try:
        # Healthy first: pings arrive (within the hang's 4 s, however slow the start was).
        deadline = time.monotonic() + 4
        while not any("WATCHDOG=1" in m for m in _drain(sock, 0.2)):
            assert time.monotonic() < deadline, "no WATCHDOG=1 while healthy"
        # The hang begins; a health round sees it and records the node down.
        node.wait_for(
            lambda events: any(
                e.type == "HealthChanged" and e.data["to"] == "down" for e in events
            ),
            timeout=15,
        )
        _drain(sock, 0.5)  # what was sent before the node was found down (still buffered)
        during = _drain(sock, 2.5)
        assert not any("WATCHDOG=1" in m for m in during)
        changed = [e.data for e in node.events() if e.type == "HealthChanged"]
        assert changed[-1]["to"] == "down"
    finally:
        node.signal(signal.SIGTERM)
        node.wait(30)
    sock.close()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("[node]\nport = 'high'\n", "node.port"),
        ("[node]\nbogus = 1\n", "bogus"),
        ("[[workspace]]\nname = 'w'\npath = '/does/not/exist'\n", "workspace[0].path"),
        ("[supervisor]\nmax_restarts = true\n", "supervisor.max_restarts"),
        ("[node]\ndurability = 'fast'\n", "node.durability"),
        ("not toml = = =\n", "TOML"),
    ],
)
def test_bad_config_exits_2_naming_the_problem(
    ws: Path, tmp_path: Path, body: str, needle: str
) -> None:
    config = write_config(ws, body)
    node = _started(ws, "--config", str(config))
    assert node.wait() == 2
    _, err = node.output()
    assert needle in err
    assert "Traceback" not in err


def test_bad_arguments_exit_2(ws: Path) -> None:
    for args in (["--port", "nope"], ["--chaos", "explode"], ["--config", "/no/such.toml"]):
        node = _started(ws, *args)
        assert node.wait() == 2, args
        assert "Traceback" not in node.output()[1]


def test_sigterm_again_and_again_through_the_start_is_one_clean_stop(ws: Path) -> None:
    """A SIGTERM every few milliseconds from NodeStarted until the process exits lands in every
    phase of the start (holding, the reactor installing its handlers, serving, stopping): each
    one must be a clean stop request, never the default action that kills the process."""
    node = _started(ws)
    deadline = time.monotonic() + 20
    while "NodeStarted" not in types(node.events()) and time.monotonic() < deadline:
        time.sleep(0.001)
    while node.proc.poll() is None and time.monotonic() < deadline:
        node.signal(signal.SIGTERM)
        time.sleep(0.002)
    _assert_stopped_cleanly(node)
