"""Who listens on a TCP port, and whether anything answers there.

psutil.net_connections() is the system-wide table. On Linux it is built from /proc/net/tcp*
and a scan of /proc/*/fd (the pid is None for sockets of users we cannot inspect); on macOS
it needs root, so there we fall back to asking each process we may inspect for its sockets.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

_WILDCARDS = {"0.0.0.0", "::"}


@dataclass(frozen=True, slots=True)
class PortOwner:
    port: int
    address: str  # the address it is bound to, e.g. "127.0.0.1" or "0.0.0.0"
    pid: int | None  # None: the socket exists but belongs to a process we cannot inspect
    name: str = ""
    cmdline: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.pid is None:
            return f"port {self.port} is held by a process we cannot see (another user?)"
        command = " ".join(self.cmdline) or self.name or "?"
        return f"port {self.port} is held by pid {self.pid} ({command})"


def _normalise(address: str) -> str:
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip)
    return address


def _addresses_of(host: str | None) -> set[str] | None:
    """The addresses `host` names; None matches any (host None or a wildcard)."""
    if host is None or host in ("", *_WILDCARDS):
        return None
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return {_normalise(host)}
    return {_normalise(str(info[4][0])) for info in infos}


def _conflicts(bound: str, wanted: set[str] | None) -> bool:
    # A wildcard listener takes the port on every address, and binding a wildcard needs it
    # free on all of them: either side being a wildcard is a conflict.
    return wanted is None or bound in _WILDCARDS or bound in wanted


def _listeners() -> Iterable[tuple[str, int, int | None]]:
    """(address, port, pid) of every listening TCP socket we can see."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr:
                yield conn.laddr.ip, conn.laddr.port, conn.pid
        return
    except psutil.AccessDenied:
        pass
    for proc in psutil.process_iter():
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        for pconn in conns:
            if pconn.status == psutil.CONN_LISTEN and pconn.laddr:
                yield pconn.laddr.ip, pconn.laddr.port, proc.pid


def port_owner(port: int, host: str | None = "127.0.0.1") -> PortOwner | None:
    """The process listening on `port` at an address that conflicts with `host`, or None if
    no visible socket listens there. Looking never touches the process."""
    wanted = _addresses_of(host)
    for address, bound_port, pid in _listeners():
        bound = _normalise(address)
        if bound_port != port or not _conflicts(bound, wanted):
            continue
        if pid is None:
            return PortOwner(port, bound, None)
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                name = proc.name()
                try:
                    cmdline = tuple(proc.cmdline())
                except psutil.AccessDenied:
                    cmdline = ()
            return PortOwner(port, bound, pid, name, cmdline)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # it closed meanwhile
        except psutil.AccessDenied:
            return PortOwner(port, bound, pid)
    return None


def is_port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a TCP connection to host:port succeeds within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cannot_listen(host: str, port: int) -> str | None:
    """Why the node could not listen on host:port (None: it could, as far as a probe bind
    can tell), with the process that holds the port named when one is visible. Asked before
    anything is created, so that a port already taken costs the user one line and no files;
    the real bind later still handles the race of a port taken in between."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As Twisted's listenTCP: a port in TIME_WAIT is free to listen on.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            owner = port_owner(port, host) if exc.errno == errno.EADDRINUSE else None
            reason = owner.describe() if owner is not None else (exc.strerror or str(exc))
            return f"cannot listen on {host}:{port}: {reason}"
    return None
