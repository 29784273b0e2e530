from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.processes.group import ProcessGroup
from adapters.processes.service import CrashLoopDetector, PortInUseError, ServiceProcess


@pytest.fixture
def services() -> Iterator[list[ServiceProcess]]:
    made: list[ServiceProcess] = []
    yield made
    for service in made:
        service.stop(grace_s=1)


def make(made: list[ServiceProcess], command: list[str], **kw: Any) -> ServiceProcess:
    service = ServiceProcess("svc", command, **kw)
    made.append(service)
    return service


def listening_port(fakes: Any, group: ProcessGroup) -> int:
    out = group.captures["stdout"]
    fakes.wait_for(lambda: "port=" in out.tail_text())
    return int(out.tail_text().split("port=")[1].split()[0])


def test_port_held_by_another_process_is_refused_and_left_alone(
    fakes: Any, services: list[ServiceProcess]
) -> None:
    with ProcessGroup.start(fakes.service("serve")) as squatter:
        port = listening_port(fakes, squatter)
        service = make(services, fakes.service("serve", "--port", str(port)), port=port)

        with pytest.raises(PortInUseError) as caught:
            service.start()

        assert caught.value.owner is not None
        assert caught.value.owner.pid == squatter.pid
        assert f"held by pid {squatter.pid}" in str(caught.value)
        assert "fake_service.py serve" in str(caught.value)
        assert squatter.running
        assert not service.running


def test_health_by_port_and_by_url(fakes: Any, services: list[ServiceProcess]) -> None:
    with ProcessGroup.start(fakes.service("serve")) as probe:
        port = listening_port(fakes, probe)  # a port that was free a moment ago
    by_port = make(services, fakes.service("serve", "--port", str(port)), port=port)
    assert by_port.health().reason == "not running"
    by_port.start()
    fakes.wait_for(lambda: by_port.health().ok)
    assert by_port.health().reason == f"port {port} open"
    by_port.stop(grace_s=1)
    assert not by_port.health().ok

    failing = make(
        services,
        fakes.service("serve", "--port", str(port), "--status", "500"),
        port=port,
        health_url=f"http://127.0.0.1:{port}/",
    )
    failing.start()  # the port is free again: our own earlier instance is gone
    fakes.wait_for(lambda: failing.health().status == 500)
    assert not failing.health().ok


def test_exit_is_reported_with_code_and_last_stderr_lines(
    fakes: Any, services: list[ServiceProcess]
) -> None:
    service = make(services, fakes.service("crash", "--after", "0.2", "--code", "4"))
    service.start()
    assert service.poll() is None
    fakes.wait_for(lambda: not service.running)

    exit_ = service.poll()

    assert exit_ is not None
    assert exit_.status.exit_code == 4
    assert exit_.stderr_tail == ("fatal: fake crash with code 4",)
    assert exit_.stdout_tail == ("starting up",)
    assert exit_.uptime_s >= 0.2
    assert exit_.describe().startswith("service 'svc' exit code 4 after")


def test_crash_loop_is_detected_on_real_crashes(fakes: Any, services: list[ServiceProcess]) -> None:
    service = make(services, fakes.service("crash", "--code", "1"))
    detector = CrashLoopDetector(max_exits=3, window_s=30)
    verdicts = []
    for _ in range(3):
        service.start()
        fakes.wait_for(lambda: not service.running)
        exit_ = service.poll()
        assert exit_ is not None
        assert exit_.status.exit_code == 1
        verdicts.append(detector.record_exit(time.monotonic()))
    assert verdicts == [False, False, True]


def test_crash_loop_window_slides() -> None:
    detector = CrashLoopDetector(max_exits=3, window_s=10)
    assert not detector.record_exit(0)
    assert not detector.record_exit(5)
    assert not detector.record_exit(11)  # the exit at 0 is out of the window
    assert detector.record_exit(12)
    assert detector.count(100) == 0
    detector.record_exit(100)
    detector.reset()
    assert detector.count(100) == 0
    with pytest.raises(ValueError, match="max_exits"):
        CrashLoopDetector(max_exits=0)


def test_rss_of_the_whole_tree(fakes: Any, services: list[ServiceProcess]) -> None:
    # The memory sits in a grandchild, under a shell that only waits for it.
    command = shlex.join(fakes.service("serve", "--allocate-mb", "60"))
    service = make(services, ["/bin/sh", "-c", command + "; exit 0"], max_rss_mb=40)
    service.start()
    fakes.wait_for(lambda: service.rss_bytes() > 60 * 1024 * 1024)
    assert service.over_memory_limit()
    assert not make(services, ["true"], max_rss_mb=None).over_memory_limit()
    exit_ = service.stop(grace_s=1)
    assert exit_ is not None
    assert exit_.status.signal is not None
    assert service.rss_bytes() == 0


def test_start_twice_is_refused(fakes: Any, services: list[ServiceProcess], tmp_path: Path) -> None:
    service = make(services, fakes.service("crash", "--after", "5"), cwd=tmp_path)
    service.start()
    with pytest.raises(RuntimeError, match="already running"):
        service.start()
