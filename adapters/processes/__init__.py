"""Child processes of the node: test commands, tunnels, services (no actors, no Twisted here;
everything blocks and is meant to be called from actor threads)."""

from adapters.processes.env import clean_env
from adapters.processes.group import ExitStatus, ProcessGroup, ProcessStartError
from adapters.processes.http_check import ProbeResult, http_check
from adapters.processes.ports import PortOwner, cannot_listen, is_port_open, port_owner
from adapters.processes.service import (
    CrashLoopDetector,
    PortInUseError,
    ServiceExit,
    ServiceProcess,
)
from adapters.processes.testrun import TestRun, run_tests
from adapters.processes.tunnel import (
    TunnelMonitor,
    TunnelProcess,
    TunnelTransition,
    TunnelUrlError,
)

__all__ = [
    "CrashLoopDetector",
    "ExitStatus",
    "PortInUseError",
    "PortOwner",
    "ProbeResult",
    "ProcessGroup",
    "ProcessStartError",
    "ServiceExit",
    "ServiceProcess",
    "TestRun",
    "TunnelMonitor",
    "TunnelProcess",
    "TunnelTransition",
    "TunnelUrlError",
    "cannot_listen",
    "clean_env",
    "http_check",
    "is_port_open",
    "port_owner",
    "run_tests",
]
