"""What the watcher reports: net changes to workspace files, grouped into batches by source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ChangeKind = Literal["created", "modified", "deleted"]

EXTERNAL = "external"  # seen through a filesystem event and expected by nobody
RESCAN = "rescan"  # found by comparing the tree with the last known state

MAX_BATCH = 1000  # changes per batch: a storm becomes many bounded batches, never one huge one


@dataclass(frozen=True, slots=True)
class Change:
    path: str  # workspace-relative, POSIX separators
    kind: ChangeKind
    sha256: str | None  # of the new content (of the link text for a symlink); None if deleted


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    changes: tuple[Change, ...]
    source: str  # EXTERNAL, RESCAN or the source given to Watcher.expect(), e.g. "patch:<id>"
    # Set on the last batch of the reconciliation that follows a storm (or an inotify queue
    # overflow): how many filesystem events were not tracked one by one. The batches of that
    # reconciliation are the net effect of all of them.
    overflow: int = 0
