"""watchdog's inotify observer, with the two signals watchdog 7 keeps to itself, and a kernel
mask reduced to the events that can change a watched file's content.

- Kernel queue overflow: watchdog rebuilds its watches and the handler sees nothing, so the
  watcher would silently miss changes. `on_lost_events` lets it reconcile with a rescan.
- Watch limit (ENOSPC) or instance limit (EMFILE) on a subdirectory: watchdog only raises for
  the root and silently leaves deeper directories unwatched. `on_limit` lets the watcher fall
  back to polling instead of going blind in part of the tree.

- The mask: watchdog asks for IN_OPEN, IN_CLOSE_NOWRITE and IN_ATTRIB too, and queues a
  directory "modified" after most events; the watcher ignores all of those. Saving a file is
  then ~7 events through watchdog's three threads instead of 3 (created, modified, closed), and
  that per-event Python cost is what bounds a burst. IN_MODIFY stays (a file written while
  kept open), IN_CLOSE_WRITE too (mmap writes give no IN_MODIFY).

Importing this module fails (ImportError or UnsupportedLibcError) where inotify is missing.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)
from watchdog.observers.api import (
    DEFAULT_EMITTER_TIMEOUT,
    DEFAULT_OBSERVER_TIMEOUT,
    BaseObserver,
    EventQueue,
    ObservedWatch,
)
from watchdog.observers.inotify import InotifyEmitter
from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyConstants,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchCallback,
    WatchDescriptor,
)

log = logging.getLogger(__name__)

LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE})

# IN_CREATE also makes watchdog watch new directories; IN_DELETE_SELF tells the root went away.
WATCHED_MASK = Mask(
    InotifyConstants.IN_CREATE
    | InotifyConstants.IN_DELETE
    | InotifyConstants.IN_MOVED_FROM
    | InotifyConstants.IN_MOVED_TO
    | InotifyConstants.IN_MODIFY
    | InotifyConstants.IN_CLOSE_WRITE
    | InotifyConstants.IN_DELETE_SELF
)
# What the watcher uses; directory "modified" events (one after nearly every other) are not.
KEPT_EVENTS: frozenset[type[FileSystemEvent]] = frozenset(
    {
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
        FileClosedEvent,
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
    }
)


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


class _LeanInotifyEmitter(InotifyEmitter):
    def __init__(
        self,
        event_queue: EventQueue,
        watch: ObservedWatch,
        *,
        timeout: float = DEFAULT_EMITTER_TIMEOUT,
        event_filter: list[type[FileSystemEvent]] | None = None,
        inotify_fd: InotifyFD | None = None,
        deliver: Callable[[FileSystemEvent], None] | None = None,
    ) -> None:
        super().__init__(
            event_queue, watch, timeout=timeout, event_filter=event_filter, inotify_fd=inotify_fd
        )
        self._ghost_deliver = deliver

    def get_event_mask_from_filter(self) -> Mask:
        return WATCHED_MASK

    def queue_event(self, event: FileSystemEvent) -> None:
        if type(event) not in KEPT_EVENTS:
            return
        if self._ghost_deliver is None:
            super().queue_event(event)
            return
        try:
            self._ghost_deliver(event)
        except Exception:  # a bug must not end the thread that reads the kernel's events
            log.exception("delivering %r failed", event)


class HookedInotifyObserver(BaseObserver):
    """InotifyObserver with its own hooked inotify instance (not the process-wide shared one).

    With `deliver`, events go straight from the emitter's thread to it instead of through the
    observer's queue and dispatcher thread (two thread hand-offs per event fewer). It must be
    quick and never block. Stopping the observer joins the emitter, so once `stop()` and
    `join()` return, every event has been delivered, as with the queue."""

    def __init__(
        self,
        on_lost_events: Callable[[], None],
        on_limit: Callable[[OSError], None],
        *,
        deliver: Callable[[FileSystemEvent], None] | None = None,
        timeout: float = DEFAULT_OBSERVER_TIMEOUT,
    ) -> None:
        # inotify_init() may raise OSError(EMFILE) here: the caller falls back to polling.
        self._ghost_fd = _HookedInotifyFD(on_lost_events, on_limit)
        self._ghost_fd.start()
        super().__init__(
            _LeanInotifyEmitter, timeout=timeout, inotify_fd=self._ghost_fd, deliver=deliver
        )

    def on_thread_stop(self) -> None:
        super().on_thread_stop()
        self._ghost_fd.stop()
        self._ghost_fd.join()
