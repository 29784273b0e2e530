"""Parsers: detection, grammar details, and parse errors that say where and what."""

from __future__ import annotations

import pytest

from adapters.patching import PatchParseError, detect_format, parse_body
from adapters.patching.formats.search_replace import parse_search_replace
from adapters.patching.formats.unified import parse_unified
from adapters.patching.formats.v4a import parse_v4a


@pytest.mark.parametrize(
    ("body", "fmt"),
    [
        ({"patch": "*** Begin Patch\n*** Delete File: a\n*** End Patch"}, "v4a"),
        ({"patch": "apply_patch <<'EOF'\n*** Begin Patch\n*** End Patch\nEOF"}, "v4a"),
        ({"patch": "a.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n"}, "search_replace"),
        ({"patch": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"}, "unified"),
        ({"patch": "diff --git a/x b/x\nnew file mode 100644\n"}, "unified"),
        ({"files": [{"path": "a", "content": ""}]}, "files"),
        ({"target_file": "a", "patch": {"pattern": "x", "replacement": "y"}}, "hybrid"),
    ],
)
def test_detect_format(body: dict[str, object], fmt: str) -> None:
    assert detect_format(body) == fmt


@pytest.mark.parametrize(
    "body",
    [{}, {"patch": "just some prose"}, {"patch": 3}, {"patch": "   "}],
)
def test_undetectable_bodies_say_what_was_expected(body: dict[str, object]) -> None:
    with pytest.raises(PatchParseError, match=r"expected|no 'patch'"):
        parse_body(body)


def test_unknown_format_and_bad_base() -> None:
    with pytest.raises(PatchParseError, match="unknown format"):
        parse_body({"format": "ed", "patch": "x"})
    with pytest.raises(PatchParseError, match="sha256"):
        parse_body({"patch": "--- a/x\n+++ b/x\n@@\n-a\n+b\n", "base": {"x": "nothex"}})


def test_v4a_grammar() -> None:
    ops = parse_v4a(
        "*** Begin Patch\n"
        "*** Update File: m.py\n"
        "@@ class A:\n"
        "@@     def f(self):\n"
        "-        return 1\n"
        "+        return 2\n"
        "@@ def g(): @@\n"
        " x\n"
        "-y\n"
        "+z\n"
        "*** End of File\n"
        "*** Delete File: old.py\n"
        "*** End Patch\n"
    )
    update, delete = ops
    assert update.action == "update"
    assert delete.action == "delete"
    first, second = update.hunks
    assert first.anchors == ("class A:", "def f(self):")
    assert first.removed == ("        return 1",)
    assert first.added == ("        return 2",)
    assert second.anchors == ("def g():",)
    assert second.end_of_file
    assert second.context_before == ("x",)
    assert second.source_line == 7


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("*** Update File: a\n-x\n+y\n", 1, "Begin Patch"),
        ("*** Begin Patch\n*** Update File: a\n-x\n", 3, "End Patch"),
        ("*** Begin Patch\n*** Frobnicate: a\n*** End Patch", 2, "Update File"),
        ("*** Begin Patch\n*** Update File: a\n*** End Patch", 2, "no hunk"),
        ("*** Begin Patch\n*** Add File: a\nno plus\n*** End Patch", 3, "'+'"),
        ("*** Begin Patch\n*** Update File:   \n-x\n*** End Patch", 2, "path"),
        ("*** Begin Patch\n*** End Patch", 1, "no file"),
    ],
)
def test_v4a_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PatchParseError) as error:
        parse_v4a(text)
    assert error.value.line == line
    assert words in str(error.value)


def test_unified_grammar() -> None:
    ops = parse_unified(
        'diff --git "a/na\\303\\257ve.txt" "b/na\\303\\257ve.txt"\n'
        'index 1..2 100644\n--- "a/na\\303\\257ve.txt"\n+++ "b/na\\303\\257ve.txt"\n'
        "@@ -3,2 +3,2 @@ def heading():\n ctx\n-old\n+new\n"
        "diff --git a/empty b/empty\nnew file mode 100644\nindex 0000000..e69de29\n"
        "diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n"
        "diff --git a/m b/m\nold mode 100644\nnew mode 100755\n"
    )
    naive, empty, move = ops
    assert naive.path == "naïve.txt"
    assert naive.hunks[0].line_hint == 3
    assert empty.action == "add"
    assert empty.content == ""
    assert empty.path == "empty"
    assert (move.action, move.path, move.new_path, move.hunks) == ("move", "x", "y", ())


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("hello\n", 1, "no file header"),
        ("@@ -1 +1 @@\n-a\n+b\n", 1, "without file header"),
        ("--- a/x\n+++ b/x\n@@ -1 +1 @@\nprose\n", 3, "without lines"),
        ("diff --git a/x b/x\nGIT binary patch\nliteral 5\n", 2, "binary"),
        ("--- /dev/null\n+++ /dev/null\n", 1, "/dev/null"),
    ],
)
def test_unified_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PatchParseError) as error:
        parse_unified(text)
    assert error.value.line == line
    assert words in str(error.value)


def test_unified_header_lookalikes_inside_a_hunk_are_lines() -> None:
    # "--- x" / "+++ y" while the counts still expect lines: a removed "-- x", an added "++ y"
    (op,) = parse_unified("--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n--- x\n+++ y\n ctx\n")
    assert op.hunks[0].removed == ("-- x",)
    assert op.hunks[0].added == ("++ y",)


def test_search_replace_grammar_and_errors() -> None:
    ops = parse_search_replace(
        "```python:src/a.py\n<<<<<<<  SEARCH\nx\n=========\ny\n>>>>>>>   REPLACE\n```\n"
        "<<<<<<< SEARCH\ny\n=======\nz\n>>>>>>> REPLACE\n"
    )
    assert len(ops) == 1
    assert ops[0].path == "src/a.py"
    assert len(ops[0].hunks) == 2
    with pytest.raises(PatchParseError) as error:
        parse_search_replace("<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n")
    assert error.value.line == 1
    assert "path" in str(error.value)
    with pytest.raises(PatchParseError) as error:
        parse_search_replace("a.py\n<<<<<<< SEARCH\nx\n=======\ny\n")
    assert "REPLACE" in str(error.value)
    with pytest.raises(PatchParseError, match="without"):
        parse_search_replace("a.py\n>>>>>>> REPLACE\n")


@pytest.mark.parametrize(
    "block",
    [
        {"target_file": "", "patch": {"pattern": "x", "replacement": ""}},
        {"target_file": "a", "patch": "x"},
        {"target_file": "a", "patch": {"pattern": "", "replacement": ""}},
        {"target_file": "a", "patch": {"pattern": "x", "replacement": 1}},
        {"target_file": "a", "patch": {"pattern": "x", "replacement": "", "regex": "yes"}},
        {"target_file": "a", "patch": {"pattern": "x", "replacement": "", "count": -1}},
        {"target_file": "a", "patch": {"pattern": "x", "replacement": "", "count": True}},
    ],
)
def test_hybrid_validation(block: dict[str, object]) -> None:
    with pytest.raises(PatchParseError):
        parse_body(block)


@pytest.mark.parametrize(
    "files",
    [
        [],
        "a",
        [3],
        [{"path": ""}],
        [{"path": "a"}],
        [{"path": "a", "delete": "y"}],
        [{"path": "a", "delete": True, "content": "x"}],
    ],
)
def test_files_validation(files: object) -> None:
    with pytest.raises(PatchParseError):
        parse_body({"format": "files", "files": files})
