"""Finding every process that belongs to a child we started.

Two views, because neither is complete on its own: the process group catches grandchildren
whose parent already exited (they are re-parented to init and leave the parent tree), and the
parent tree catches descendants that moved to a group or session of their own (setsid, some
dev servers and test runners do).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

import psutil

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, ProcessLookupError)


def is_live(proc: psutil.Process) -> bool:
    """Running and not a zombie: a zombie holds no resources and only waits to be reaped."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except _GONE:
        return False
    except psutil.AccessDenied:
        return True  # it exists; we just may not look at it


def group_members(pgid: int) -> list[psutil.Process]:
    """Live processes whose process group is `pgid`."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and is_live(proc):
                members.append(proc)
        except (*_GONE, PermissionError):
            continue
    return members


def descendants(pid: int) -> list[psutil.Process]:
    """Live children of `pid`, recursively (empty if it is gone)."""
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if is_live(p)]
    except _GONE:
        return []


def family(pid: int, pgid: int, extra: Iterable[psutil.Process] = ()) -> list[psutil.Process]:
    """The leader, its descendants, its group and `extra`, each process once."""
    seen: dict[int, psutil.Process] = {}
    leader: list[psutil.Process] = []
    with contextlib.suppress(*_GONE):
        leader = [psutil.Process(pid)]
    for proc in [*leader, *descendants(pid), *group_members(pgid), *extra]:
        if is_live(proc):
            seen.setdefault(proc.pid, proc)
    return list(seen.values())


def rss_bytes(procs: Iterable[psutil.Process]) -> int:
    """Sum of resident set sizes. Shared pages count once per process, so this overstates a
    forking server a little: fine for a "restart when it grows past N MB" limit."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except (*_GONE, psutil.AccessDenied):
            continue
    return total
