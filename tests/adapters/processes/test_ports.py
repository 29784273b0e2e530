from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.processes.group import ProcessGroup
from adapters.processes.ports import is_port_open, port_owner


@pytest.fixture
def server(fakes: Any) -> Iterator[tuple[ProcessGroup, int]]:
    group = ProcessGroup.start(fakes.service("serve"))
    out = group.captures["stdout"]
    fakes.wait_for(lambda: "port=" in out.tail_text())
    port = int(out.tail_text().split("port=")[1].split()[0])
    yield group, port
    group.terminate(grace_s=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_owner_of_a_port_held_by_a_subprocess(server: tuple[ProcessGroup, int]) -> None:
    group, port = server
    owner = port_owner(port, "127.0.0.1")

    assert owner is not None
    assert owner.pid == group.pid
    assert owner.address == "127.0.0.1"
    assert "fake_service.py" in " ".join(owner.cmdline)
    assert f"pid {group.pid}" in owner.describe()
    assert group.running  # looking never touches it
    assert port_owner(port, None) == owner  # any address
    assert port_owner(port, "localhost") == owner


def test_wildcard_listener_conflicts_with_loopback() -> None:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        owner = port_owner(port, "127.0.0.1")
        assert owner is not None
        assert owner.address == "0.0.0.0"


def test_free_port_has_no_owner() -> None:
    port = free_port()
    assert port_owner(port) is None
    assert not is_port_open("127.0.0.1", port, timeout=0.5)


def test_is_port_open(server: tuple[ProcessGroup, int]) -> None:
    _, port = server
    assert is_port_open("127.0.0.1", port, timeout=1)
