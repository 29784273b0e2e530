"""Choosing and starting the watchdog observer: the native one (inotify) unless it cannot work,
then polling, with a warning saying why.

The native observer watches the whole tree (recursive inotify watches include excluded
directories such as node_modules/: their events are dropped by the watcher's own filter).
The polling observer is given a directory lister that prunes excluded directories and
unwatched files, and lstat, so that it neither scans node_modules/ every interval nor follows a
symlink out of the root.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS
from watchdog.utils import UnsupportedLibcError

from adapters.watching.patterns import PathFilter

log = logging.getLogger(__name__)

ObserverKind = Literal["inotify", "native", "polling"]


@dataclass(frozen=True, slots=True)
class Started:
    observer: BaseObserver
    kind: ObserverKind
    warning: str | None  # why the native observer is not the one running


def start_observer(
    root: Path,
    handler: FileSystemEventHandler,
    path_filter: PathFilter,
    *,
    polling: bool | None,
    poll_interval_s: float,
    on_lost_events: Callable[[], None],
    on_limit: Callable[[OSError], None],
) -> Started:
    """polling: True = polling only; False = native only (errors raise); None = native, with a
    fallback to polling when it is unavailable or hits the kernel's limits."""
    if polling:
        return Started(_start_polling(root, handler, path_filter, poll_interval_s), "polling", None)
    limit_errors: list[OSError] = []
    started = False

    def limit_hook(exc: OSError) -> None:
        # Limits hit while the first watches are added decide the fallback here; later ones
        # (new directories) go to the watcher, which falls back at run time.
        if started:
            on_limit(exc)
        else:
            limit_errors.append(exc)

    try:
        observer, kind = _native_observer(on_lost_events, limit_hook, handler.dispatch)
    except OSError as exc:
        if polling is False:
            raise
        return _fallback(
            root, handler, path_filter, poll_interval_s, f"cannot start inotify: {exc}"
        )
    if observer is None:
        if polling is False:
            raise RuntimeError("no native filesystem observer on this platform")
        reason = "no native filesystem observer on this platform"
        return _fallback(root, handler, path_filter, poll_interval_s, reason)
    try:
        observer.schedule(handler, str(root), recursive=True)
        observer.start()
    except OSError as exc:
        stop_observer(observer)
        if polling is False:
            raise
        return _fallback(root, handler, path_filter, poll_interval_s, limit_message(exc))
    started = True
    if limit_errors:
        stop_observer(observer)
        if polling is False:
            raise limit_errors[0]
        return _fallback(
            root, handler, path_filter, poll_interval_s, limit_message(limit_errors[0])
        )
    return Started(observer, kind, None)


def start_polling(
    root: Path, handler: FileSystemEventHandler, path_filter: PathFilter, poll_interval_s: float
) -> BaseObserver:
    return _start_polling(root, handler, path_filter, poll_interval_s)


def stop_observer(observer: BaseObserver) -> None:
    observer.stop()
    if observer.is_alive():
        observer.join()


def limit_message(exc: OSError) -> str:
    return (
        f"inotify limit reached ({exc.strerror or exc}): falling back to polling; raise "
        "fs.inotify.max_user_watches / max_user_instances (sysctl) to watch natively"
    )


def _fallback(
    root: Path,
    handler: FileSystemEventHandler,
    path_filter: PathFilter,
    poll_interval_s: float,
    reason: str,
) -> Started:
    log.warning("%s: %s", root, reason)
    observer = _start_polling(root, handler, path_filter, poll_interval_s)
    return Started(observer, "polling", reason)


def _native_observer(
    on_lost_events: Callable[[], None],
    on_limit: Callable[[OSError], None],
    deliver: Callable[[FileSystemEvent], None],
) -> tuple[BaseObserver | None, ObserverKind]:
    if sys.platform.startswith("linux"):
        try:
            from adapters.watching.inotify import HookedInotifyObserver
        except (ImportError, UnsupportedLibcError):
            return None, "inotify"
        return HookedInotifyObserver(on_lost_events, on_limit, deliver=deliver), "inotify"
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    if Observer is PollingObserver:
        return None, "native"
    return Observer(), "native"


def _start_polling(
    root: Path, handler: FileSystemEventHandler, path_filter: PathFilter, poll_interval_s: float
) -> BaseObserver:
    root_str = str(root)
    prefix = root_str + os.sep

    def listdir(path: str | None) -> Iterator[os.DirEntry[str]]:
        assert path is not None  # the polling emitter always lists a given directory
        rel_dir = "" if path == root_str else path.removeprefix(prefix).replace(os.sep, "/")
        with os.scandir(path) as it:
            entries = list(it)
        kept = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if (not path_filter.dir_excluded(rel)) if is_dir else path_filter.file_matches(rel):
                kept.append(entry)
        return iter(kept)

    observer = PollingObserverVFS(os.lstat, listdir, polling_interval=poll_interval_s)
    observer.schedule(handler, root_str, recursive=True)
    observer.start()
    return observer
