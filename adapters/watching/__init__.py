"""Workspace watcher: watchdog events -> debounced, attributed batches of net file changes."""

from adapters.watching.model import EXTERNAL, MAX_BATCH, RESCAN, Change, ChangeBatch, ChangeKind
from adapters.watching.patterns import ALWAYS_EXCLUDE, PathFilter
from adapters.watching.watcher import Watcher, WatcherStats

__all__ = [
    "ALWAYS_EXCLUDE",
    "EXTERNAL",
    "MAX_BATCH",
    "RESCAN",
    "Change",
    "ChangeBatch",
    "ChangeKind",
    "PathFilter",
    "Watcher",
    "WatcherStats",
]
