"""Planner rules: file-level failures, merges, base hashes, moves, the diff of a plan."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from adapters.patching import (
    MemoryView,
    PatchDoesNotApply,
    Sandbox,
    SandboxView,
    parse_body,
    plan,
    unified_diff,
)


def v4a(*ops: str) -> dict[str, object]:
    return {"patch": "*** Begin Patch\n" + "".join(ops) + "*** End Patch\n"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_several_ops_on_one_file_apply_in_order() -> None:
    body = v4a(
        "*** Add File: n.txt\n+one\n",
        "*** Update File: n.txt\n-one\n+two\n",
        "*** Update File: n.txt\n-two\n+three\n",
    )
    (planned,) = plan(parse_body(body), MemoryView({})).files
    assert (planned.action, planned.before, planned.after) == ("add", None, b"three\n")


def test_add_then_delete_plans_nothing_for_that_file() -> None:
    body = v4a("*** Add File: tmp.txt\n+x\n", "*** Delete File: tmp.txt\n", "*** Add File: k\n+k\n")
    assert [p.path for p in plan(parse_body(body), MemoryView({})).files] == ["k"]


def test_a_move_may_not_share_its_files_with_other_ops() -> None:
    body = v4a("*** Update File: a\n*** Move to: b\n", "*** Update File: b\n-a\n+c\n")
    with pytest.raises(PatchDoesNotApply) as rejected:
        plan(parse_body(body), MemoryView({"a": b"a\n"}))
    assert [f.reason for f in rejected.value.failures] == ["conflicting_ops"]


def test_move_plans_one_entry_and_two_changes() -> None:
    body = v4a("*** Update File: a.txt\n*** Move to: d/b.txt\n@@\n-a\n+b\n")
    result = plan(parse_body(body), MemoryView({"a.txt": b"a\n"}))
    (planned,) = result.files
    assert (planned.path, planned.action, planned.move_from) == ("d/b.txt", "move", "a.txt")
    assert result.changes() == (("a.txt", b"a\n", None), ("d/b.txt", None, b"b\n"))
    assert "rename from a.txt\nrename to d/b.txt\n" in unified_diff(result)


def test_base_hashes_conflict_distinctly() -> None:
    files = {"a.txt": b"a\n", "b.txt": b"b\n"}
    body = v4a("*** Update File: a.txt\n-a\n+A\n")
    ok = dict(body, base={"a.txt": sha(b"a\n"), "b.txt": sha(b"b\n")})
    assert plan(parse_body(ok), MemoryView(files)).files[0].after == b"A\n"
    stale = dict(body, base={"a.txt": sha(b"other\n"), "gone.txt": sha(b"")})
    with pytest.raises(PatchDoesNotApply) as rejected:
        plan(parse_body(stale), MemoryView(files))
    assert rejected.value.is_conflict
    assert [f.reason for f in rejected.value.failures] == ["stale_base", "stale_base"]
    assert "re-read" in rejected.value.failures[0].message


def test_rejection_lists_every_failure_and_serialises() -> None:
    body = v4a(
        "*** Update File: a\n@@\n-nope\n+x\n@@\n-also nope\n+y\n",
        "*** Delete File: missing\n",
        "*** Add File: a\n+dup\n",
    )
    with pytest.raises(PatchDoesNotApply) as rejected:
        plan(parse_body(body), MemoryView({"a": b"content\n"}))
    reasons = [f.reason for f in rejected.value.failures]
    assert reasons == ["not_found", "not_found", "missing_file", "already_exists"]
    payload = rejected.value.as_json()
    assert payload["failures"][0]["hunk"] == "@@\n-nope\n+x"
    assert payload["failures"][0]["closest"] == [{"line": 1, "text": "content"}]
    assert not rejected.value.is_conflict


def test_whole_file_write_over_crlf_and_bom_keeps_them() -> None:
    files = {"w.txt": "\ufeffa\r\nb\r\n".encode()}
    body = {"files": [{"path": "w.txt", "content": "x\ny\n"}]}
    (planned,) = plan(parse_body(body), MemoryView(files)).files
    assert planned.after == "\ufeffx\r\ny\r\n".encode()


def test_plan_on_disk_uses_resolved_paths(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_bytes(b"x = 1\n")
    (tmp_path / "alias").symlink_to(tmp_path / "src")
    body = v4a("*** Update File: alias/a.py\n-x = 1\n+x = 2\n")
    (planned,) = plan(parse_body(body), SandboxView(Sandbox(tmp_path))).files
    assert (planned.path, planned.before, planned.after) == ("src/a.py", b"x = 1\n", b"x = 2\n")
    assert (tmp_path / "src" / "a.py").read_bytes() == b"x = 1\n"  # nothing written


def test_diff_of_a_plan_is_git_style() -> None:
    body = v4a("*** Update File: a\n-x\n+y\n", "*** Add File: b\n+new\n", "*** Delete File: c\n")
    diff = unified_diff(plan(parse_body(body), MemoryView({"a": b"x", "c": b"gone\n"})))
    assert diff == (
        "diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n"
        "+y\n\\ No newline at end of file\n"
        "diff --git a/b b/b\nnew file mode 100644\n--- /dev/null\n+++ b/b\n@@ -0,0 +1 @@\n+new\n"
        "diff --git a/c b/c\ndeleted file mode 100644\n--- a/c\n+++ /dev/null\n@@ -1 +0,0 @@\n"
        "-gone\n"
    )


def test_move_onto_its_own_name_is_an_update() -> None:
    body = v4a("*** Update File: a\n*** Move to: ./a\n-a\n+b\n")
    (planned,) = plan(parse_body(body), MemoryView({"a": b"a\n"})).files
    assert (planned.action, planned.after, planned.move_from) == ("update", b"b\n", None)
