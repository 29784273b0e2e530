"""Helpers shared by the patch engine tests."""

from __future__ import annotations

from pathlib import Path

from adapters.patching import Plan

CORPUS = Path(__file__).parent / "corpus"


def read_tree(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def apply_plan(files: dict[str, bytes], plan: Plan) -> dict[str, bytes]:
    """What the writer will do, in memory: checks each `before` is the current content."""
    out = dict(files)
    for path, before, after in plan.changes():
        assert out.get(path) == before, f"{path}: plan's before is not the current content"
        if after is None:
            out.pop(path, None)
        else:
            out[path] = after
    return out
