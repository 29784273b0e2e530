"""systemd and launchd: sd_notify, and the service definitions `ghost service install` writes.

sd_notify is the datagram protocol of sd_notify(3), written here rather than pulled in as a C
binding: one `sendto` on an AF_UNIX datagram socket. It never raises: a node must keep serving
whether or not systemd listens (not under systemd, socket gone during a manager restart).

Units: system units get the full mount-namespace hardening (ProtectSystem=strict with
ReadWritePaths for the state dir and workspaces, ProtectHome=read-only, PrivateTmp...). User units
get only the seccomp/no-new-privileges part: a user manager cannot set up mount namespaces
without user namespaces, and depending on the systemd version those options then fail the start
(226/NAMESPACE), are silently ignored, or imply PrivateUsers= (which changes the uids that the
test commands see). Predictable beats nominal.

Note for operators: under the system unit's ProtectSystem=strict, test commands run by the node
can only write into the workspaces, the state dir, a private /tmp and `extra_read_write` paths;
tools that write caches into $HOME (npm, pip) need those paths added.
"""

from __future__ import annotations

import logging
import os
import plistlib
import pwd
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from adapters.durable import atomic_write

if TYPE_CHECKING:
    from adapters.config import Config

__all__ = [
    "InstallResult",
    "ServiceSpec",
    "install_service",
    "launchd_plist",
    "ready",
    "sd_notify",
    "status",
    "stopping",
    "systemd_unit",
    "watchdog",
    "watchdog_interval_s",
]

log = logging.getLogger(__name__)

# Exit codes of ghost-node (SPEC §3) that restarting cannot fix.
EXIT_BAD_CONFIG = 2


# ---------------------------------------------------------------------------------------------
# sd_notify


def _notify_address(env: Mapping[str, str]) -> str | bytes | None:
    raw = env.get("NOTIFY_SOCKET")
    if not raw:
        return None
    if raw.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of the "@" (sd_notify(3)).
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    # vsock: and other address families are for VMs; a node does not run there.
    return None


def sd_notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `state` ("READY=1", "STATUS=...", newline-separated for several) to $NOTIFY_SOCKET.

    Returns True when the datagram was sent, False when there is no socket or sending failed.
    `env` defaults to os.environ, read at the call (tests and the daemon's main pass their own).
    """
    address = _notify_address(os.environ if env is None else env)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # A manager that stopped reading must not block the reactor thread.
            sock.setblocking(False)
            sock.sendto(state.encode("utf-8"), address)
    except OSError as exc:
        log.debug("sd_notify(%r) failed: %s", state.split("\n", 1)[0], exc)
        return False
    return True


def _one_line(text: str) -> str:
    # A newline would start a new "KEY=value" assignment in the notify message.
    return " ".join(text.splitlines())


def ready(status_text: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    msg = "READY=1"
    if status_text is not None:
        msg += f"\nSTATUS={_one_line(status_text)}"
    return sd_notify(msg, env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    return sd_notify(f"STATUS={_one_line(text)}", env)


def watchdog(env: Mapping[str, str] | None = None) -> bool:
    """Only call while the node is healthy (HealthActor decides): that is the whole point."""
    return sd_notify("WATCHDOG=1", env)


def stopping(status_text: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    msg = "STOPPING=1"
    if status_text is not None:
        msg += f"\nSTATUS={_one_line(status_text)}"
    return sd_notify(msg, env)


def watchdog_interval_s(
    env: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """The watchdog timeout systemd expects pings within, in seconds, or None when off.

    None also when WATCHDOG_PID names another process (the variables were inherited by a child
    and are not for it). Ping at half this interval, as sd_watchdog_enabled(3) recommends."""
    source = os.environ if env is None else env
    usec_text = source.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid_text = source.get("WATCHDOG_PID")
    if pid_text:
        try:
            watchdog_pid = int(pid_text)
        except ValueError:
            return None
        if watchdog_pid != (os.getpid() if pid is None else pid):
            return None
    return usec / 1_000_000


# ---------------------------------------------------------------------------------------------
# Service definitions


@dataclass(frozen=True)
class ServiceSpec:
    """What the unit/plist runs. Paths should be absolute (they are made absolute here too)."""

    exec_path: Path  # bin/ghost-node
    state_dir: Path
    config_path: Path | None = None
    workspaces: tuple[Path, ...] = ()
    name: str = "ghost-node"
    description: str = "ghost-runner node (ghost-node)"
    working_directory: Path | None = None  # default: the config's directory, else first ws
    run_as: str | None = None  # system units: User=; None: the installing user
    watchdog_sec: int = 30
    restart_sec: int = 5
    timeout_stop_sec: int = 30
    environment_file: Path | None = None  # e.g. GHOST_TOKEN, SLACK_* for the unit
    extra_read_write: tuple[Path, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: Config, exec_path: Path, config_path: Path | None = None, **kw: Any
    ) -> ServiceSpec:
        return cls(
            exec_path=exec_path,
            state_dir=config.node.state_dir,
            config_path=config_path if config_path is not None else config.source,
            workspaces=tuple(ws.path for ws in config.workspaces),
            **kw,
        )

    def argv(self) -> list[str]:
        args = [str(self.exec_path.absolute())]
        if self.config_path is not None:
            args += ["--config", str(self.config_path.absolute())]
        else:
            # Without a config the defaults are cwd-relative; pin them down explicitly.
            args += ["--state-dir", str(self.state_dir.absolute())]
            if self.workspaces:
                args += ["--workspace", str(self.workspaces[0].absolute())]
        return args

    def cwd(self) -> Path:
        if self.working_directory is not None:
            return self.working_directory.absolute()
        if self.config_path is not None:
            return self.config_path.absolute().parent
        if self.workspaces:
            return self.workspaces[0].absolute()
        return self.state_dir.absolute().parent


def _sd_quote(word: str) -> str:
    """One word of a systemd command line or path list: specifiers (%) and variables ($)
    escaped, quoted when it has whitespace, quotes or backslashes."""
    word = word.replace("%", "%%")
    if any(c.isspace() for c in word) or any(c in word for c in "\"'\\;"):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def _check_line_safe(value: str, what: str) -> None:
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"{what} must not contain newlines or NUL: {value!r}")


def systemd_unit(spec: ServiceSpec, *, user: bool) -> str:
    """The unit file text. `user`: for the user manager (~/.config/systemd/user/)."""
    argv = spec.argv()
    for a in argv:
        _check_line_safe(a, "an ExecStart argument")
    _check_line_safe(spec.description, "the description")
    exec_start = " ".join(_sd_quote(a).replace("$", "$$") for a in argv)
    lines = [
        "# Generated by `ghost service install`. Edits are lost on the next install.",
        "[Unit]",
        f"Description={spec.description.replace('%', '%%')}",
        "After=network-online.target",
        "Wants=network-online.target",
        # Give up after 5 failed starts in 5 minutes instead of restarting forever.
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        f"WorkingDirectory={_sd_quote(str(spec.cwd()))}",
        f"WatchdogSec={spec.watchdog_sec}",
        "Restart=on-failure",
        f"RestartSec={spec.restart_sec}",
        # A bad config (exit 2) stays bad on the next try; 70 (supervisor gave up) may not.
        f"RestartPreventExitStatus={EXIT_BAD_CONFIG}",
        f"TimeoutStopSec={spec.timeout_stop_sec}",
        "KillMode=mixed",
        # Room for the web guard's caps (1,024 connections) plus the store, watches and
        # children; and a bound: a leak or a flood ends in refusals, not in the whole host.
        "LimitNOFILE=8192",
        "Environment=PYTHONUNBUFFERED=1",
    ]
    for key, value in sorted(spec.environment.items()):
        _check_line_safe(key + value, "an environment entry")
        lines.append(f"Environment={_sd_quote(f'{key}={value}')}")
    if spec.environment_file is not None:
        # "-": a missing file is not an error (the token file may come later).
        lines.append(f"EnvironmentFile=-{_sd_quote(str(spec.environment_file.absolute()))}")
    if not user and spec.run_as is not None:
        _check_line_safe(spec.run_as, "run_as")
        lines.append(f"User={spec.run_as}")
    lines += [
        "UMask=0077",
        "NoNewPrivileges=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "SystemCallArchitectures=native",
    ]
    if not user:
        rw = [spec.state_dir, *spec.workspaces, *spec.extra_read_write]
        lines += [
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectControlGroups=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ]
        seen: set[str] = set()
        for p in rw:
            text = str(p.absolute())
            if text in seen:
                continue
            seen.add(text)
            _check_line_safe(text, "a ReadWritePaths entry")
            # One line per path: the setting accumulates, and quoting stays simple.
            lines.append(f"ReadWritePaths={_sd_quote(text)}")
    lines += [
        "",
        "[Install]",
        f"WantedBy={'default.target' if user else 'multi-user.target'}",
        "",
    ]
    return "\n".join(lines)


def launchd_label(spec: ServiceSpec) -> str:
    return f"dev.ghost-runner.{spec.name}"


def launchd_plist(spec: ServiceSpec) -> str:
    """The launchd property list (XML) for the node."""
    logs = spec.state_dir.absolute() / "logs"
    plist: dict[str, Any] = {
        "Label": launchd_label(spec),
        "ProgramArguments": spec.argv(),
        "WorkingDirectory": str(spec.cwd()),
        "RunAtLoad": True,
        # Like Restart=on-failure: a clean exit (0) stays down, a crash comes back.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": max(spec.restart_sec, 10),
        "ExitTimeOut": spec.timeout_stop_sec,
        "ProcessType": "Background",
        "StandardOutPath": str(logs / "launchd.out.log"),
        "StandardErrorPath": str(logs / "launchd.err.log"),
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1", **dict(spec.environment)},
        "Umask": 0o077,
    }
    return plistlib.dumps(plist, sort_keys=True).decode("utf-8")


@dataclass(frozen=True)
class InstallResult:
    path: Path
    next_steps: tuple[str, ...]  # commands to tell the operator


def install_service(
    kind: Literal["systemd", "launchd"],
    user: bool,
    spec: ServiceSpec,
    *,
    dest: Path | None = None,
    home: Path | None = None,
) -> InstallResult:
    """Write the unit or plist where the service manager finds it (`dest` overrides: tests).

    Creates the state directory (0700) first: under ProtectSystem=strict the node could not
    create it itself, and a missing ReadWritePaths entry fails the start with 226/NAMESPACE."""
    home = home if home is not None else Path.home()
    if kind == "systemd":
        if not user and spec.run_as is None:
            # Run as whoever installs it (SUDO_USER is the caller's business), never as root
            # by omission.
            spec = _with_run_as(spec, pwd.getpwuid(os.getuid()).pw_name)
        text = systemd_unit(spec, user=user)
        unit = f"{spec.name}.service"
        if dest is None:
            base = home / ".config/systemd/user" if user else Path("/etc/systemd/system")
            dest = base / unit
        ctl = "systemctl --user" if user else "systemctl"
        steps = [f"{ctl} daemon-reload", f"{ctl} enable --now {unit}"]
        if user:
            steps.append("loginctl enable-linger  # keep it running when you are logged out")
    elif kind == "launchd":
        text = launchd_plist(spec)
        label = launchd_label(spec)
        if dest is None:
            base = home / "Library/LaunchAgents" if user else Path("/Library/LaunchDaemons")
            dest = base / f"{label}.plist"
        domain = "gui/$(id -u)" if user else "system"
        steps = [f"launchctl bootstrap {domain} {dest}", f"launchctl kickstart {domain}/{label}"]
    else:
        raise ValueError(f"unknown service kind: {kind!r}")
    spec.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (spec.state_dir / "logs").mkdir(mode=0o700, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _write_file(dest, text.encode("utf-8"))
    return InstallResult(dest, tuple(steps))


def _with_run_as(spec: ServiceSpec, name: str) -> ServiceSpec:
    return replace(spec, run_as=name)


def _write_file(path: Path, data: bytes) -> None:
    # Atomic, so that a service manager reloading concurrently never reads half a unit.
    atomic_write(path, data, 0o644)
