"""adapters/systemd.py: sd_notify over real AF_UNIX datagram sockets; unit and plist files."""

from __future__ import annotations

import os
import plistlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters import systemd
from adapters.config import CliOverrides, load_config
from adapters.systemd import (
    ServiceSpec,
    install_service,
    launchd_plist,
    sd_notify,
    systemd_unit,
    watchdog_interval_s,
)

ROOT = Path(__file__).resolve().parents[2]
GHOST_NODE = ROOT / "bin" / "ghost-node"


@pytest.fixture(params=["path", "abstract"])
def notify_socket(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
        env_value = address
    else:
        name = f"ghost-test-{os.getpid()}-{id(sock)}"
        sock.bind(b"\0" + name.encode())
        env_value = "@" + name
    sock.settimeout(5)
    try:
        yield sock, env_value
    finally:
        sock.close()


def test_notify_messages(notify_socket: tuple[socket.socket, str]) -> None:
    sock, address = notify_socket
    env = {"NOTIFY_SOCKET": address}
    assert systemd.ready("serving on :5051", env=env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving on :5051"
    assert systemd.status("two\nlines", env=env)
    assert sock.recv(4096) == b"STATUS=two lines"
    assert systemd.watchdog(env=env)
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert systemd.stopping(env=env)
    assert sock.recv(4096) == b"STOPPING=1"
    assert sd_notify("READY=1", env=env)
    assert sock.recv(4096) == b"READY=1"


def test_notify_without_socket_is_a_no_op(tmp_path: Path) -> None:
    assert sd_notify("READY=1", env={}) is False
    assert sd_notify("READY=1", env={"NOTIFY_SOCKET": ""}) is False
    assert sd_notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False
    assert sd_notify("READY=1", env={"NOTIFY_SOCKET": "@ghost-no-such-abstract-socket"}) is False
    assert sd_notify("READY=1", env={"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    (tmp_path / "file").write_text("not a socket")
    assert sd_notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "file")}) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1234"}, 0.5),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "999"}, None),  # for another process
        ({"WATCHDOG_USEC": "abc"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(env, pid=1234) == expected


# ----------------------------------------------------------------------------------- units


def make_spec(tmp_path: Path, **kw: object) -> ServiceSpec:
    ws = tmp_path / "work space"  # a space: quoting must hold
    ws.mkdir(exist_ok=True)
    config = tmp_path / "ghost.toml"
    config.write_text("")
    return ServiceSpec(
        exec_path=GHOST_NODE,
        state_dir=tmp_path / "state",
        config_path=config,
        workspaces=(ws,),
        **kw,  # type: ignore[arg-type]
    )


def unit_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_system_unit_contents(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, run_as="me", environment_file=tmp_path / "env")
    lines = unit_lines(systemd_unit(spec, user=False))
    assert "Type=notify" in lines
    assert "NotifyAccess=main" in lines
    assert "WatchdogSec=30" in lines
    assert "LimitNOFILE=8192" in lines  # a bound on what a connection flood can take
    assert "Restart=on-failure" in lines
    assert "RestartSec=5" in lines
    assert "RestartPreventExitStatus=2" in lines
    assert f"ExecStart={GHOST_NODE} --config {tmp_path}/ghost.toml" in lines
    assert "User=me" in lines
    for hardening in (
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
    ):
        assert hardening in lines
    assert f"ReadWritePaths={tmp_path}/state" in lines
    assert f'ReadWritePaths="{tmp_path}/work space"' in lines
    assert f"EnvironmentFile=-{tmp_path}/env" in lines
    assert "WantedBy=multi-user.target" in lines


def test_user_unit_has_no_mount_namespacing(tmp_path: Path) -> None:
    lines = unit_lines(systemd_unit(make_spec(tmp_path, run_as="me"), user=True))
    assert "NoNewPrivileges=yes" in lines
    assert not [line for line in lines if line.startswith(("ProtectSystem", "ReadWritePaths"))]
    assert not [line for line in lines if line.startswith("User=")]
    assert "WantedBy=default.target" in lines


def test_exec_start_escapes_specifiers_and_dollars(tmp_path: Path) -> None:
    odd = tmp_path / "100%$HOME"
    odd.mkdir()
    spec = ServiceSpec(exec_path=GHOST_NODE, state_dir=odd / "st", config_path=odd / "g.toml")
    (exec_line,) = [x for x in unit_lines(systemd_unit(spec, user=True)) if "ExecStart" in x]
    assert "100%%$$HOME/g.toml" in exec_line


def test_newline_in_path_refused(tmp_path: Path) -> None:
    spec = ServiceSpec(exec_path=GHOST_NODE, state_dir=tmp_path, config_path=Path("/a\nb"))
    with pytest.raises(ValueError, match="newline"):
        systemd_unit(spec, user=True)


def test_spec_from_config_without_config_file(tmp_path: Path) -> None:
    config = load_config(None, CliOverrides(), cwd=tmp_path)
    spec = ServiceSpec.from_config(config, GHOST_NODE)
    assert spec.argv() == [
        str(GHOST_NODE),
        "--state-dir",
        str(tmp_path.resolve() / ".ghost"),
        "--workspace",
        str(tmp_path.resolve()),
    ]


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze not installed (Debian/Ubuntu package `systemd`)",
)
@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_systemd_analyze_verify(tmp_path: Path, user: bool) -> None:
    assert SYSTEMD_ANALYZE is not None
    spec = make_spec(tmp_path, run_as="root", environment_file=tmp_path / "env")
    unit = tmp_path / "units" / "ghost-node.service"
    install_service("systemd", user, spec, dest=unit, home=tmp_path)
    args = [SYSTEMD_ANALYZE, *(["--user"] if user else []), "verify", str(unit)]
    env = dict(os.environ)
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    # The user manager wants a runtime dir even for an offline verify.
    env.setdefault("XDG_RUNTIME_DIR", str(runtime))
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    # verify exits 0 even for unknown keys and bad values; it prints them with the file name.
    about_ours = [line for line in result.stderr.splitlines() if str(unit) in line]
    if result.returncode != 0 and not about_ours and "manager" in result.stderr.lower():
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()}")
    assert about_ours == [], result.stderr
    assert result.returncode == 0, result.stderr


def test_launchd_plist(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    data = plistlib.loads(launchd_plist(spec).encode())
    assert data["Label"] == "dev.ghost-runner.ghost-node"
    assert data["ProgramArguments"] == [
        str(GHOST_NODE),
        "--config",
        str(tmp_path / "ghost.toml"),
    ]
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["StandardErrorPath"] == str(tmp_path / "state/logs/launchd.err.log")
    assert data["WorkingDirectory"] == str(tmp_path)


@pytest.mark.parametrize(
    ("kind", "user", "where"),
    [
        ("systemd", True, ".config/systemd/user/ghost-node.service"),
        ("launchd", True, "Library/LaunchAgents/dev.ghost-runner.ghost-node.plist"),
    ],
)
def test_install_service_default_places(tmp_path: Path, kind: str, user: bool, where: str) -> None:
    spec = make_spec(tmp_path)
    home = tmp_path / "home"
    result = install_service(kind, user, spec, home=home)  # type: ignore[arg-type]
    assert result.path == home / where
    assert result.path.read_text().strip()
    assert (result.path.stat().st_mode & 0o777) == 0o644
    assert (tmp_path / "state").is_dir()  # created for ReadWritePaths
    assert result.next_steps


def test_install_system_unit_runs_as_the_installer(tmp_path: Path) -> None:
    import pwd

    result = install_service("systemd", False, make_spec(tmp_path), dest=tmp_path / "u.service")
    assert f"User={pwd.getpwuid(os.getuid()).pw_name}" in result.path.read_text().splitlines()
