"""watchdog's inotify observer, with the two signals watchdog 7 keeps to itself.

- Kernel queue overflow: watchdog rebuilds its watches and the handler sees nothing, so the
  watcher would silently miss changes. `on_lost_events` lets it reconcile with a rescan.
- Watch limit (ENOSPC) or instance limit (EMFILE) on a subdirectory: watchdog only raises for
  the root and silently leaves deeper directories unwatched. `on_limit` lets the watcher fall
  back to polling instead of going blind in part of the tree.

Importing this module fails (ImportError or UnsupportedLibcError) where inotify is missing.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.inotify import InotifyEmitter
from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchCallback,
    WatchDescriptor,
)

LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE})


class _HookedInotifyFD(InotifyFD):
    def __init__(
        self, on_lost_events: Callable[[], None], on_limit: Callable[[OSError], None]
    ) -> None:
        self._ghost_on_lost_events = on_lost_events
        self._ghost_on_limit = on_limit
        super().__init__()

    def add_callback(
        self, path: bytes, mask: Mask, callback: WatchCallback, id_: CallbackId
    ) -> WatchDescriptor:
        try:
            return super().add_callback(path, mask, callback, id_)
        except OSError as exc:
            if exc.errno in LIMIT_ERRNOS:
                self._ghost_on_limit(exc)
            raise

    def handle_event(self, event: InotifyEvent) -> None:
        super().handle_event(event)  # first: watchdog rebuilds its watches after an overflow
        if event.is_queue_overflow:
            self._ghost_on_lost_events()


class HookedInotifyObserver(BaseObserver):
    """InotifyObserver with its own hooked inotify instance (not the process-wide shared one)."""

    def __init__(
        self,
        on_lost_events: Callable[[], None],
        on_limit: Callable[[OSError], None],
        *,
        timeout: float = DEFAULT_OBSERVER_TIMEOUT,
    ) -> None:
        # inotify_init() may raise OSError(EMFILE) here: the caller falls back to polling.
        self._ghost_fd = _HookedInotifyFD(on_lost_events, on_limit)
        self._ghost_fd.start()
        super().__init__(InotifyEmitter, timeout=timeout, inotify_fd=self._ghost_fd)

    def on_thread_stop(self) -> None:
        super().on_thread_stop()
        self._ghost_fd.stop()
        self._ghost_fd.join()
