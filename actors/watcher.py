"""WatcherActor: one per workspace; turns the Watcher's batches into FilesChanged events.

The workspace's file state is event-sourced: setup() folds the FilesChanged events of
`workspace-<name>` into path -> sha256 and starts the Watcher with it, so the start rescan
reports whatever changed while the node (or this actor) was down. The patch engine's own writes
are seen like any other and attributed to it (source `patch:<id>`), which is why
PatchApplied/PatchRolledBack need not be folded here.

Attribution does not go through the mailbox: the patch engine announces its writes with
`expect_writes(handle, ...)`, which adds them to the workspace's `WriteExpectations` at once, in
the patch engine's thread, before it writes. A told ExpectWrites could wait behind batches still
being recorded while the flusher thread already reported the write as `external`
(RELIABILITY.md O4). That object is shared by every incarnation of the workspace's WatcherActor
and handed to each new Watcher, so announcements made while the actor restarts are not lost
either: the new incarnation's start rescan attributes them.

Threads: the Watcher's flusher thread calls `_on_batch`/`_on_warning`, which only tell this
actor; the actor thread appends. FilesChanged goes through `store.append` (synchronous), so a
batch this incarnation acknowledged is committed before a later incarnation folds the stream;
a batch that never got recorded (crash, store trouble) is still different from the store's
state and is reported again by the next start's rescan.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pykka import ActorDeadError, ActorRef

from actors.base import GhostActor
from actors.errors import ChildUnavailableError
from actors.handle import ChildHandle
from actors.recorder import EventRecorder
from adapters.config import WorkspaceConfig
from adapters.patching import Sandbox, SandboxViolation
from adapters.watching import ChangeBatch, PathFilter, Watcher
from adapters.watching.expectations import Expectations
from eventstore.catalogue import EventType, workspace_stream
from eventstore.events import NewEvent
from eventstore.protocol import EventStore

log = logging.getLogger(__name__)

WATCHER_WARNING = EventType.WATCHER_WARNING
RECENT_CHANGES = 100  # GetWatchInfo's bounded memory of the last changes
_READ_PAGE = 1000


# --- messages ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ExpectWrites:
    """Tell before writing: changes to these paths with these resulting sha256 (None for a
    deletion) are reported with `source` (e.g. "patch:<id>") instead of "external".
    Prefer `expect_writes()`, which does not wait in the mailbox; this message is its fallback
    before the watcher first ran."""

    paths_to_sha: Mapping[str, str | None]
    source: str
    ttl_s: float = 5.0


@dataclass(frozen=True, slots=True)
class GetWatchInfo:
    """Ask: {workspace, path, patterns, observer, ready, known_files, stats, last_changes,
    warnings} for GET /watch. `ready`: the start rescan is done (its batches are recorded by
    the time the *next* ask is answered: they were told before it finished)."""


@dataclass(frozen=True, slots=True)
class _Batch:
    batch: ChangeBatch
    initial: bool  # part of the start rescan
    # A failed incarnation's queued batches are salvaged for the next one; that one's own
    # rescan reports the same changes against fresher state, so stale batches are dropped.
    generation: int


@dataclass(frozen=True, slots=True)
class _Warning:
    message: str


# --- state from events ---------------------------------------------------------------------------
def known_state(store: EventStore, workspace: str) -> dict[str, str] | None:
    """The workspace's last recorded files (path -> sha256); None when nothing was ever
    recorded (a first start)."""
    stream = workspace_stream(workspace)
    known: dict[str, str] = {}
    seen = False
    version = 0
    while page := store.read_stream(stream, after_version=version, limit=_READ_PAGE):
        version = page[-1].version
        for event in page:
            if event.type != EventType.FILES_CHANGED:
                continue
            seen = True
            for change in event.data.get("paths", ()):
                path, sha = change.get("path"), change.get("sha256")
                if not isinstance(path, str):
                    continue
                if change.get("kind") == "deleted" or not isinstance(sha, str):
                    known.pop(path, None)
                else:
                    known[path] = sha
    return known if seen else None


# --- announcing writes, synchronously ----------------------------------------------------------
class WriteExpectations:
    """The announced writes of one workspace: thread-safe, never blocking on an actor, and the
    same object for every incarnation of the workspace's WatcherActor (each hands it to its
    Watcher), so an announcement lands in whichever Watcher is live, or waits (until its TTL)
    for the next one's start rescan."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.expectations = Expectations()  # what the Watcher claims from
        self.clock = clock  # the Watcher's clock too: expiry times are compared with it

    def expect(
        self, paths_to_sha: Mapping[str, str | None], source: str, ttl_s: float = 5.0
    ) -> None:
        now = self.clock()
        # Purged here too: while no watcher runs, nothing else would.
        self.expectations.purge(now)
        self.expectations.add(dict(paths_to_sha), source, now + ttl_s)


_shared_lock = threading.Lock()
# Per workspace (name, root), for as long as an incarnation or an announcer holds it.
_by_workspace: weakref.WeakValueDictionary[tuple[str, str], WriteExpectations] = (
    weakref.WeakValueDictionary()
)
# The running incarnations' refs, which is how an announcer holding only a ChildHandle finds
# its workspace's object the first time; then it keeps it (it outlives restarts).
_by_ref: weakref.WeakKeyDictionary[ActorRef[Any], WriteExpectations] = weakref.WeakKeyDictionary()
_by_handle: weakref.WeakKeyDictionary[ChildHandle, WriteExpectations] = weakref.WeakKeyDictionary()


def workspace_expectations(workspace: WorkspaceConfig) -> WriteExpectations:
    """The WriteExpectations of this workspace, shared by all its WatcherActors."""
    key = (workspace.name, str(workspace.path))
    with _shared_lock:
        found = _by_workspace.get(key)
        if found is None:
            found = _by_workspace[key] = WriteExpectations()
        return found


def expectations_of(handle: ChildHandle) -> WriteExpectations | None:
    """The WriteExpectations behind a WatcherActor's handle; None until it first ran."""
    with _shared_lock:
        found = _by_handle.get(handle)
        if found is not None:
            return found
    ref = handle.ref
    if ref is None:
        return None
    with _shared_lock:
        found = _by_ref.get(ref)
        if found is not None:
            _by_handle[handle] = found
        return found


def expect_writes(handle: ChildHandle, paths_to_sha: Mapping[str, str | None], source: str) -> None:
    """Announce writes about to be made in the workspace of the WatcherActor behind `handle`:
    registered before returning (no mailbox), so the watcher attributes them to `source`
    however busy its actor is. Never fails and never blocks on the watcher: a watcher that is
    down gets them at its next start (within the TTL), or they are reported as external."""
    shared = expectations_of(handle)
    if shared is not None:
        shared.expect(paths_to_sha, source)
        return
    try:  # not running yet: the next incarnation gets it after its setup
        handle.tell(ExpectWrites(dict(paths_to_sha), source))
    except ChildUnavailableError:
        log.warning("watcher %s unavailable: writes of %s not attributed", handle.name, source)


def expect_writes_via(handle: ChildHandle) -> Callable[[Mapping[str, str | None], str], None]:
    """The `expect_writes` callable for PatchActor/PatchFlow (see expect_writes)."""

    def expect(paths_to_sha: Mapping[str, str | None], source: str) -> None:
        expect_writes(handle, paths_to_sha, source)

    return expect


# --- the actor -----------------------------------------------------------------------------------
@dataclass(slots=True)
class _Info:
    last_changes: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=RECENT_CHANGES)
    )
    warnings: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    batches: int = 0


class WatcherActor(GhostActor):
    def __init__(
        self,
        workspace: WorkspaceConfig,
        store: EventStore,
        recorder: EventRecorder,
        debounce_s: float = 0.2,
        *,
        polling: bool | None = None,
        expectations: WriteExpectations | None = None,
    ) -> None:
        """`expectations`: by default the workspace's shared one (workspace_expectations)."""
        super().__init__(f"watcher.{workspace.name}")
        self.workspace = workspace
        self.store = store
        self.recorder = recorder
        self.debounce_s = debounce_s
        self.polling = polling
        self.stream = workspace_stream(workspace.name)
        self._watcher: Watcher | None = None
        # Batches handed to the mailbox and not recorded yet, oldest first. A batch told just
        # after the supervisor's stop was queued is never delivered (pykka drops told messages
        # that wait behind a stop), so teardown records what is left here.
        self._unrecorded: deque[_Batch] = deque()
        self._unrecorded_lock = threading.Lock()  # held briefly: the flusher never waits long
        self._recording = threading.Lock()  # one recorder at a time, in order
        self._baseline = False  # no history: the start rescan records every file
        self._info = _Info()
        self.expectations = (
            expectations if expectations is not None else workspace_expectations(workspace)
        )
        with _shared_lock:
            _by_ref[self.actor_ref] = self.expectations

    # --- lifecycle -----------------------------------------------------------------------------
    def setup(self) -> None:
        known = known_state(self.store, self.workspace.name)
        if known is None:
            # An empty (not None) known state makes the start rescan record every file, so
            # that the store holds a baseline and later downtime changes can be found.
            self._baseline = True
            known = {}
        else:
            # Patterns may have changed since: paths no longer watched are forgotten rather
            # than reported deleted; newly included ones are then reported as created.
            matches = PathFilter(self.workspace.include, self.workspace.exclude).file_matches
            known = {path: sha for path, sha in known.items() if matches(path)}
        self._watcher = Watcher(
            self.workspace.path,
            self.workspace.include,
            self.workspace.exclude,
            self._on_batch,
            debounce_s=self.debounce_s,
            polling=self.polling,
            clock=self.expectations.clock,
            on_warning=self._on_warning,
            expectations=self.expectations.expectations,
        )
        # Not waiting for the first rescan: hashing a large tree may outlast the supervisor's
        # start timeout, and its batches arrive as messages anyway.
        self._watcher.start(known)

    def teardown(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()  # joins the observer and the flusher; the last batches land below
        try:
            self._record_unrecorded()  # told before the stop, never delivered
        except Exception:  # a store refusing now: the next start's rescan reports them
            log.warning("%s: batches left to the next start's rescan", self.name, exc_info=True)

    def receive(self, message: Any) -> Any:
        match message:
            case _Batch(generation=generation) if generation == self.generation:
                self._record_unrecorded(upto=message)
            case _Batch():
                pass  # salvaged from a failed incarnation: this one's rescan reports it anew
            case _Warning(message=text):
                self._record_warning(text)
            case ExpectWrites(paths_to_sha=paths, source=source, ttl_s=ttl):
                self.expectations.expect(paths, source, ttl)
            case GetWatchInfo():
                return self._watch_info()
            case _:
                return super().receive(message)
        return None

    # --- flusher thread ------------------------------------------------------------------------
    def _on_batch(self, batch: ChangeBatch) -> None:
        watcher = self._watcher
        initial = watcher is not None and not watcher.wait_ready(0)
        message = _Batch(batch, initial, self.generation)
        with self._unrecorded_lock:
            self._unrecorded.append(message)
        try:
            self.actor_ref.tell(message)
        except ActorDeadError:
            # Stopping: the actor thread is in teardown, waiting for the flusher to end; the
            # final flush's batches are recorded from here, after any still undelivered.
            self._record_unrecorded()

    def _on_warning(self, message: str) -> None:
        try:
            self.actor_ref.tell(_Warning(message))
        except ActorDeadError:
            self._record_warning(message)

    # --- recording -----------------------------------------------------------------------------
    def _record_unrecorded(self, upto: _Batch | None = None) -> None:
        """Record the batches not recorded yet, oldest first: up to and including `upto` (a
        delivered message; nothing if the stop path recorded it already), else all."""
        with self._recording:
            with self._unrecorded_lock:
                if upto is not None and not any(m is upto for m in self._unrecorded):
                    return
            while True:
                with self._unrecorded_lock:
                    if not self._unrecorded:
                        return
                    message = self._unrecorded[0]
                self._record_batch(message.batch, message.initial)
                with self._unrecorded_lock:
                    self._unrecorded.popleft()  # after: a refused append leaves it for later
                if message is upto:
                    return

    def _record_batch(self, batch: ChangeBatch, initial: bool) -> None:
        paths = [{"path": c.path, "kind": c.kind, "sha256": c.sha256} for c in batch.changes]
        data: dict[str, Any] = {
            "workspace": self.workspace.name,
            "paths": paths,
            "source": batch.source,
            "overflow": batch.overflow,
        }
        if initial:
            data["initial"] = True
            if self._baseline:
                data["baseline"] = True
        meta = {"actor": self.name}
        blobs = [] if initial else self._contents(batch)
        # Raises if the store refuses: the actor fails and the next start's rescan reports
        # the batch again (its changes are not in the store's state).
        self.store.append(self.stream, [NewEvent(EventType.FILES_CHANGED, data, meta)], blobs=blobs)
        self._info.batches += 1
        at = time.time()
        for change in paths:
            self._info.last_changes.append({**change, "source": batch.source, "at": at})

    def _contents(self, batch: ChangeBatch) -> list[bytes]:
        """With `history = "all"`: the contents of the batch's changed text files, as blobs in
        the same commit (deduplicated by the store), so that `ghost cat --until` can give an
        editor's saves back. Patches' own writes are in the store already; a file that is
        binary, too large, unreadable or changed again since its sha256 is left out."""
        if self.workspace.history != "all" or batch.source.startswith("patch:"):
            return []
        # The patch sandbox's rules: credential files, excluded and binary files never go in.
        ws = self.workspace
        sandbox = Sandbox(ws.path, ws.exclude, ws.max_file_bytes, ws.include)
        kept = []
        for change in batch.changes:
            if change.sha256 is None:
                continue
            try:
                data = sandbox.read(change.path)
            except (SandboxViolation, OSError):
                continue
            if data is not None and hashlib.sha256(data).hexdigest() == change.sha256:
                kept.append(data)
        return kept

    def _record_warning(self, message: str) -> None:
        self._info.warnings.append(message)
        self.recorder.record(
            self.stream, WATCHER_WARNING, {"workspace": self.workspace.name, "message": message}
        )

    def _watch_info(self) -> dict[str, Any]:
        watcher = self._watcher
        stats = watcher.stats() if watcher is not None else None
        return {
            "workspace": self.workspace.name,
            "path": str(self.workspace.path),
            "patterns": {
                "include": list(self.workspace.include),
                "exclude": list(self.workspace.exclude),
            },
            "observer": stats.observer if stats is not None else "",
            "ready": watcher is not None and watcher.wait_ready(0),
            "known_files": len(watcher.known()) if watcher is not None else 0,
            "stats": {
                "batches_recorded": self._info.batches,
                "rescans": stats.rescans if stats else 0,
                "pending": stats.pending if stats else 0,
                "overflow_events": stats.overflow_events if stats else 0,
            },
            "last_changes": list(self._info.last_changes),
            "warnings": list(self._info.warnings),
        }
