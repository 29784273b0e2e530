"""Turning paths into reported changes: read what is on disk now, compare it with the known
state, attribute each net change to its source and hand out bounded batches.

Used only from the watcher's flusher thread (one at a time, in order), so `on_batch` sees
batches in the order the known state changed, and no lock is held while it runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from adapters.watching import state
from adapters.watching.expectations import Expectations
from adapters.watching.known import KnownState
from adapters.watching.model import EXTERNAL, RESCAN, Change, ChangeBatch
from adapters.watching.patterns import PathFilter
from adapters.watching.pending import Due

log = logging.getLogger(__name__)


def _path(change: Change) -> str:
    return change.path


class Reporter:
    def __init__(
        self,
        root: Path,
        path_filter: PathFilter,
        expectations: Expectations,
        on_batch: Callable[[ChangeBatch], None],
        *,
        clock: Callable[[], float],
        batch_limit: int,
        max_paths: int,
    ) -> None:
        self.root = root
        self.known = KnownState()
        self._filter = path_filter
        self._expect = expectations
        self._on_batch = on_batch
        self._clock = clock
        self._batch_limit = batch_limit
        self._max_paths = max_paths
        # Counters for Watcher.stats(); only this thread writes them.
        self.rescans = 0
        self.batches = 0
        self.changes = 0
        self.overflow_events = 0

    def flush(self, due: Due) -> None:
        """Report the net changes of the paths (and directory subtrees) that had events."""
        paths = set(due.paths)
        if due.dirs:
            # A directory moved away or deleted reports only itself; one moved in may hold
            # files created before its watch existed: re-read both kinds in full.
            paths.update(self.known.paths_under(due.dirs))
            for rel_dir in due.dirs:
                for _, _, rel in state.walk_files(self.root, self._filter, rel_dir):
                    paths.add(rel)
                    if len(paths) > self._max_paths:  # a huge tree moved in: stay bounded
                        self.reconcile(report=True, overflow=len(paths))
                        return
        # Grouped by directory: each one is opened (walked with O_NOFOLLOW) once, not once
        # per file. Sorted paths keep the batches in path order.
        by_dir: dict[str, list[str]] = {}
        for rel in sorted(paths):
            rel_dir, _, name = rel.rpartition("/")
            by_dir.setdefault(rel_dir, []).append(name)
        changes: list[Change] = []
        record = self.known.record
        for rel_dir, names in by_dir.items():
            prefix = rel_dir + "/" if rel_dir else ""
            for name, result in state.read_in_dir(self.root, rel_dir, names):
                if isinstance(result, state.Unreadable):
                    log.warning("watcher %s: %s (keeping its last known state)", self.root, result)
                    continue
                change = record(prefix + name, *result)
                if change is not None:
                    changes.append(change)
        if len(by_dir) > 1:
            changes.sort(key=_path)
        self._emit(changes, EXTERNAL, overflow=0)

    def reconcile(self, *, report: bool, overflow: int) -> None:
        """Walk the tree and bring the known state up to date, reporting the differences in
        batches as it goes (memory stays bounded); `overflow` marks the last batch.
        Files whose stat signature is unchanged since this process hashed them are skipped."""
        self.rescans += 1
        self.overflow_events += overflow
        seen: set[str] = set()
        chunk: list[Change] = []
        for dir_fd, name, rel in state.walk_files(self.root, self._filter):
            seen.add(rel)
            if self.known.get(rel) is not None:
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    st = None
                if st is not None and self.known.unchanged_since_hashed(rel, state.signature(st)):
                    continue
            try:
                sha, sig = state.read_at(dir_fd, name)
            except state.Unreadable as exc:
                log.warning("watcher %s: %s (keeping its last known state)", self.root, exc)
                continue
            chunk = self._collect(chunk, self.known.record(rel, sha, sig), report)
        for rel in self.known.missing_from(seen):
            chunk = self._collect(chunk, self.known.record(rel, None, None), report)
        if report:
            self._emit(chunk, RESCAN, overflow=overflow)

    def _collect(self, chunk: list[Change], change: Change | None, report: bool) -> list[Change]:
        if change is None or not report:
            return chunk
        chunk.append(change)
        if len(chunk) < self._batch_limit:
            return chunk
        self._emit(chunk, RESCAN, overflow=0)
        return []

    def _emit(self, changes: list[Change], default_source: str, *, overflow: int) -> None:
        now = self._clock()
        by_source: dict[str, list[Change]] = {}
        for change in changes:
            source = self._expect.claim(change.path, change.sha256, now) or default_source
            by_source.setdefault(source, []).append(change)
        batches = [
            ChangeBatch(tuple(group[i : i + self._batch_limit]), source)
            for source, group in by_source.items()
            for i in range(0, len(group), self._batch_limit)
        ]
        if overflow:
            if batches:
                batches[-1] = replace(batches[-1], overflow=overflow)
            else:
                batches.append(ChangeBatch((), RESCAN, overflow=overflow))
        for batch in batches:
            self.batches += 1
            self.changes += len(batch.changes)
            try:
                self._on_batch(batch)
            except Exception:  # the consumer's bug: log it, keep watching
                log.exception("watcher %s: on_batch raised", self.root)
