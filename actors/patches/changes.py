"""The file changes a patch or a rollback makes, their diffs as every answer shows them, and the
texts of rejections (which leave the machine: no host paths)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.ledger.records import FileOutcome
from adapters.patching import PatchDoesNotApply, Plan, PlannedFile
from adapters.patching.diffing import FileDiff, file_diff
from adapters.workspace.changes import FileChange, sha256_or_none


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def files_json(planned: Plan, diffs: Sequence[FileDiff]) -> list[dict[str, Any]]:
    """Each planned file as the answer names it, with its added/removed line counts."""
    out = []
    for f, d in zip(planned.files, diffs, strict=True):
        item = FileOutcome(
            f.path, f.action, sha256_or_none(f.before), sha256_or_none(f.after), f.move_from
        ).as_json()
        item.update({"added": d.added, "removed": d.removed})
        out.append(item)
    return out


def changes_json(changes: Sequence[FileChange]) -> list[dict[str, Any]]:
    """What a journal and PatchApplied/PatchRolledBack record of each change: both hashes."""
    return [
        {
            "path": c.path,
            "before_sha256": sha256_or_none(c.before),
            "after_sha256": sha256_or_none(c.after),
        }
        for c in changes
    ]


def expected_writes(changes: Sequence[FileChange]) -> Mapping[str, str | None]:
    """{path: sha256 after} for the watcher, told before the files are written."""
    return {c.path: sha256_or_none(c.after) for c in changes}


def diff_of(changes: Sequence[FileChange]) -> str:
    """The diff a rollback would make, in the same format as every other diff we show."""
    return "".join(
        file_diff(
            PlannedFile(
                c.path,
                "add" if c.before is None else "delete" if c.after is None else "update",
                c.before,
                c.after,
            )
        )
        for c in changes
    )


def without_host_paths(message: str, root: str) -> str:
    root = root.rstrip("/")
    return message.replace(root + "/", "").replace(root, ".") if root else message


def rejection_message(exc: PatchDoesNotApply) -> str:
    n = len(exc.failures) + len(exc.violations)
    return f"the patch does not apply: {n} problem(s): {exc}"
