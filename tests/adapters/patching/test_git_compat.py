"""Unified diffs made by git: where `git apply` accepts them we produce the same bytes; and the
diff we give of a plan is one `git apply` reproduces."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.patching import MemoryView, PatchDoesNotApply, parse_body, plan, unified_diff
from tests.adapters.patching.gitcases import Edit, edits, git_apply, git_diff
from tests.adapters.patching.support import apply_plan

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_HEADER = re.compile(r"^@@ -(\d+)", re.MULTILINE)


def _ours(files: dict[str, bytes], patch: str) -> dict[str, bytes] | None:
    try:
        result = plan(parse_body({"format": "unified", "patch": patch}), MemoryView(files))
    except PatchDoesNotApply:
        return None
    return apply_plan(files, result)


def _shift(patch: str, by: int) -> str:
    """Stale line numbers: every hunk header moved by `by` lines (never below 1)."""
    return _HEADER.sub(lambda m: f"@@ -{max(1, int(m.group(1)) + by)}", patch)


@SETTINGS
@given(edit=edits(), context=st.integers(1, 3), shift=st.sampled_from([0, 0, 2, -3, 7]))
def test_same_bytes_as_git_apply(edit: Edit, context: int, shift: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        patch = git_diff(work, edit.old, edit.new, context=context)
        if not patch:
            return
        patch = _shift(patch, shift)
        theirs = git_apply(work, {"f": edit.old}, patch)
        ours = _ours({"f": edit.old}, patch)
        if shift == 0:
            assert theirs == {"f": edit.new}  # git itself, sanity
        if theirs is not None and ours is not None:
            assert ours == theirs, patch
        if shift == 0:
            # exact line numbers always pick the right place, even among repeated lines
            assert ours == {"f": edit.new}, patch


@SETTINGS
@given(edit=edits(), name=st.sampled_from(["f.txt", "dir/sub/g.py"]))
def test_our_diff_is_applied_by_git(edit: Edit, name: str) -> None:
    for before, after in ((edit.old, edit.new), (None, edit.new), (edit.old, None)):
        files = {} if before is None else {name: before}
        body = {"files": [{"path": name, "delete": True}]}
        if after is not None:
            body = {"files": [{"path": name, "content": after.decode()}]}
        result = plan(parse_body(body), MemoryView(files))
        diff = unified_diff(result)
        expected = apply_plan(files, result)
        with tempfile.TemporaryDirectory() as tmp:
            if not diff:
                assert expected == files
                continue
            assert git_apply(Path(tmp), files, diff) == expected, diff


def test_git_rename_diff_of_a_move_is_applied_by_git(tmp_path: Path) -> None:
    files = {"a.txt": b"one\ntwo\n"}
    patch = "*** Begin Patch\n*** Update File: a.txt\n*** Move to: b/c.txt\n-two\n+2\n*** End Patch"
    result = plan(parse_body({"patch": patch}), MemoryView(files))
    assert git_apply(tmp_path, files, unified_diff(result)) == {"b/c.txt": b"one\n2\n"}
