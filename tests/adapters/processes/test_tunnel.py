from __future__ import annotations

import http.server
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.processes.http_check import ProbeResult, http_check
from adapters.processes.tunnel import (
    TunnelMonitor,
    TunnelProcess,
    TunnelTransition,
    TunnelUrlError,
)

CLOUDFLARE = r"https://[a-z0-9-]+\.trycloudflare\.com"
LOOPBACK = r"(?<=url=)http://127\.0\.0\.1:\d+"


@pytest.fixture
def tunnels() -> Iterator[list[TunnelProcess]]:
    made: list[TunnelProcess] = []
    yield made
    for tunnel in made:
        tunnel.stop(grace_s=1)


def start(made: list[TunnelProcess], command: list[str], **kw: Any) -> TunnelProcess:
    tunnel = TunnelProcess("fake", command, **kw)
    made.append(tunnel)
    tunnel.start()
    return tunnel


def test_public_url_is_extracted_from_the_output(
    fakes: Any, tunnels: list[TunnelProcess], health_server: http.server.HTTPServer
) -> None:
    port = health_server.server_address[1]
    tunnel = start(tunnels, fakes.tunnel(str(port)), url_pattern=CLOUDFLARE)
    assert tunnel.state in ("starting", "running")

    url = tunnel.wait_for_url(timeout_s=5)

    assert re.fullmatch(r"https://fake-[0-9a-f]{6}\.trycloudflare\.com", url)
    assert tunnel.url == url
    states = [tunnel.state]
    tunnel.stop(grace_s=1)
    states.append(tunnel.state)
    assert states == ["running", "stopped"]


def test_health_check_through_the_tunnel(
    fakes: Any, tunnels: list[TunnelProcess], health_server: http.server.HTTPServer
) -> None:
    port = health_server.server_address[1]
    tunnel = start(tunnels, fakes.tunnel(str(port)), url_pattern=LOOPBACK, check_timeout_s=2)
    tunnel.wait_for_url(timeout_s=5)

    result = tunnel.check()
    assert result.ok
    assert result.status == 200
    assert result.reason == "HTTP 200"

    health_server.RequestHandlerClass.status = 503  # type: ignore[attr-defined]
    result = tunnel.check()
    assert not result.ok
    assert result.reason == "HTTP 503"


def test_tunnel_death_is_detected(
    fakes: Any, tunnels: list[TunnelProcess], health_server: http.server.HTTPServer
) -> None:
    port = health_server.server_address[1]
    tunnel = start(tunnels, fakes.tunnel(str(port), "--die-after", "0.5"), url_pattern=LOOPBACK)
    tunnel.wait_for_url(timeout_s=5)
    monitor = TunnelMonitor("fake", failure_threshold=3)
    up = monitor.on_result(tunnel.check())
    assert up is not None
    assert up.state == "up"

    fakes.wait_for(lambda: tunnel.poll() is not None, timeout=5)
    status = tunnel.poll()
    assert status is not None
    assert status.exit_code == 1
    assert tunnel.state == "exited"
    assert not tunnel.check().ok
    down = monitor.on_exit(status.describe())
    assert down == TunnelTransition("fake", "down", "tunnel process exited: exit code 1")
    tunnel.stop(grace_s=1)  # reaps it and drains its output
    assert "connection to edge lost" in tunnel.last_lines()[-1]


def test_flapping_tunnel_goes_down_and_up(
    fakes: Any, tunnels: list[TunnelProcess], health_server: http.server.HTTPServer
) -> None:
    port = health_server.server_address[1]
    tunnel = start(
        tunnels,
        fakes.tunnel(str(port), "--flap-after", "0.6", "--flap-for", "1.0"),
        url_pattern=LOOPBACK,
        check_timeout_s=1,
    )
    url = tunnel.wait_for_url(timeout_s=5)
    monitor = TunnelMonitor("fake", failure_threshold=3)
    transitions: list[TunnelTransition] = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        transition = monitor.on_result(tunnel.check(), url)
        if transition is not None:
            transitions.append(transition)
        time.sleep(0.05)

    assert [t.state for t in transitions] == ["up", "down", "up"]
    assert transitions[1].reason == "3 failed checks in a row, last: HTTP 502"
    assert transitions[0].url == url


def test_no_url_in_time_is_an_error_naming_the_output(
    fakes: Any, tunnels: list[TunnelProcess]
) -> None:
    tunnel = start(tunnels, fakes.service("crash", "--after", "5"), url_pattern=CLOUDFLARE)
    assert tunnel.check() == ProbeResult(False, "no public URL yet")
    with pytest.raises(TunnelUrlError, match=r"no URL in 0.3 s; last output: starting up"):
        tunnel.wait_for_url(timeout_s=0.3)


def test_exit_before_url_is_an_error(fakes: Any, tunnels: list[TunnelProcess]) -> None:
    tunnel = start(tunnels, fakes.service("crash", "--code", "2"), url_pattern=CLOUDFLARE)
    with pytest.raises(TunnelUrlError, match=r"exited \(exit code 2\)"):
        tunnel.wait_for_url(timeout_s=5)


def test_fixed_url(
    fakes: Any, tunnels: list[TunnelProcess], health_server: http.server.HTTPServer
) -> None:
    url = f"http://127.0.0.1:{health_server.server_address[1]}"
    tunnel = start(tunnels, fakes.service("crash", "--after", "5"), url=url)
    assert tunnel.wait_for_url(timeout_s=0.1) == url
    assert tunnel.check().ok


def test_exactly_one_of_url_and_pattern() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TunnelProcess("t", ["x"])
    with pytest.raises(ValueError, match="exactly one"):
        TunnelProcess("t", ["x"], url="https://a", url_pattern="b")


def test_monitor_needs_consecutive_failures() -> None:
    monitor = TunnelMonitor("t", failure_threshold=2)
    assert monitor.on_check(False, "HTTP 502") is None
    assert monitor.on_check(True, "HTTP 200", "https://x") == TunnelTransition(
        "t", "up", "HTTP 200", "https://x"
    )
    assert monitor.on_check(True) is None
    assert monitor.on_check(False, "timed out") is None  # a blip
    assert monitor.on_check(True) is None
    assert monitor.on_check(False, "a") is None
    down = monitor.on_check(False, "b")
    assert down is not None
    assert down.state == "down"
    assert "last: b" in down.reason
    assert monitor.on_check(False, "c") is None  # already down: reported once
    assert monitor.on_exit("exit code 1") is None
    assert monitor.on_check(True) is not None


def test_never_up_tunnel_is_reported_down() -> None:
    monitor = TunnelMonitor("t", failure_threshold=1)
    assert monitor.state == "unknown"
    transition = monitor.on_check(False, "connection refused")
    assert transition is not None
    assert transition.state == "down"


def test_http_check_refuses_other_schemes_and_reports_refusals() -> None:
    assert http_check("file:///etc/passwd") == ProbeResult(
        False, "not an http(s) URL: 'file:///etc/passwd'"
    )
    refused = http_check("http://127.0.0.1:1/health", timeout_s=1)
    assert not refused.ok
    assert "refused" in refused.reason.lower()
