"""The matching and ambiguity rules of matching.py, one by one."""

from __future__ import annotations

import pytest

from adapters.patching.applying import apply_hunks
from adapters.patching.matching import LineIndex, Match, NoMatch, closest_lines, locate
from adapters.patching.model import Hunk, HunkLine
from adapters.patching.text import decode, encode


def hunk(
    spec: str, *, anchors: tuple[str, ...] = (), hint: int | None = None, eof: bool = False
) -> Hunk:
    lines = tuple(HunkLine(line[0], line[1:]) for line in spec.split("\n"))  # type: ignore[arg-type]
    return Hunk(lines, anchors=anchors, line_hint=hint, end_of_file=eof)


def apply(data: bytes, *hunks: Hunk) -> bytes:
    result, failures = apply_hunks(decode(data), hunks, "f")
    assert result is not None, failures
    return encode(result)


def where(lines: list[str], h: Hunk) -> Match | NoMatch:
    return locate(LineIndex(lines), h)


def test_exact_level_wins_even_when_tolerant_levels_match_more() -> None:
    lines = ["x = 1  ", "y", "x = 1", "y"]
    found = where(lines, hunk(" x = 1\n-y\n+z"))
    assert isinstance(found, Match)
    assert (found.start, found.level) == (2, 0)


def test_trailing_whitespace_level() -> None:
    found = where(["a  ", "b\t"], hunk(" a\n-b\n+c"))
    assert isinstance(found, Match)
    assert found.level == 1
    assert apply(b"a  \nb\t\n", hunk(" a\n-b\n+c")) == b"a  \nc\n"


@pytest.mark.parametrize(
    ("file_line", "patch_line"),
    [
        ("s = 'x'", "s = \u2018x\u2019"),
        ('s = "x"', "s = \u201cx\u201d"),
        ("a - b", "a \u2013 b"),
        ("a - b", "a \u2014 b"),
        ("wait...", "wait\u2026"),
        ("a b", "a\u00a0b"),
        ("    indented", "indented"),
        ("zero", "ze\u200bro"),
    ],
)
def test_loose_level_folds_look_alikes(file_line: str, patch_line: str) -> None:
    found = where(["first", file_line, "last"], hunk(f" {patch_line}\n+added"))
    assert isinstance(found, Match)
    assert found.start == 1
    assert found.level == 2


def test_inner_whitespace_is_never_collapsed() -> None:
    assert isinstance(where(["a  b"], hunk("-a b\n+c")), NoMatch)


def test_several_matches_are_ambiguous_with_every_candidate() -> None:
    found = where(["x", "y", "x", "y", "x"], hunk("-x\n+z"))
    assert isinstance(found, NoMatch)
    assert (found.reason, found.candidates) == ("ambiguous", (1, 3, 5))


@pytest.mark.parametrize(
    ("hint", "expected"),
    [(5, 4), (4, 4), (6, 4), (13, 12), (1, 0), (20, 12), (7, 4), (8, None), (9, None)],
)
def test_line_hint_rule(hint: int, expected: int | None) -> None:
    # candidates at 0-based 0, 4 and 12: nearest taken when exact or at most half as far
    lines = ["t", "a", "b", "c", "t", "d", "e", "f", "g", "h", "i", "j", "t"]
    found = where(lines, hunk("-t\n+T", hint=hint))
    if expected is None:
        assert isinstance(found, NoMatch)
        assert found.reason == "ambiguous"
    else:
        assert isinstance(found, Match)
        assert found.start == expected


def test_unique_match_is_taken_whatever_the_hint_says() -> None:
    found = where(["a", "b", "c"], hunk("-c\n+C", hint=1))
    assert isinstance(found, Match)
    assert found.start == 2


SRC = [
    "class A:",
    "    def f(self):",
    "        return 1",
    "    def foo(self):",
    "        return 1",
    "class B:",
    "    def f(self):",
    "        return 1",
]


def test_anchor_picks_the_first_match_after_it() -> None:
    found = where(SRC, hunk("-        return 1\n+        return 2", anchors=("class B:",)))
    assert isinstance(found, Match)
    assert found.start == 7


def test_anchor_chain_narrows_nested_scopes() -> None:
    h = hunk("-        return 1\n+        return 2", anchors=("class A:", "def foo(self):"))
    found = where(SRC, h)
    assert isinstance(found, Match)
    assert found.start == 4


def test_anchor_prefix_stops_at_identifier_boundary() -> None:
    # "def f" is the prefix of "def f(self):" (both classes) but not of "def foo"
    found = where(SRC, hunk("-        return 1\n+        return 2", anchors=("def f",)))
    assert isinstance(found, NoMatch)
    assert found.candidates == (3, 8)


def test_end_of_file_disambiguates() -> None:
    found = where(["end", "x", "end"], hunk("-end\n+END", eof=True))
    assert isinstance(found, Match)
    assert found.start == 2


def test_pure_insertions() -> None:
    assert where([], hunk("+a")) == Match(0, 0, 0)
    assert where(["a", "b"], hunk("+c")) == Match(2, 0, 0)  # V4A: at the end (codex)
    assert where(["a", "b"], hunk("+c", hint=1)) == Match(1, 0, 0)  # unified: after line 1
    assert where(SRC, hunk("+    x = 1", anchors=("class B:",))) == Match(6, 0, 0)
    ambiguous = where(SRC, hunk("+    x = 1", anchors=("def f",)))
    assert isinstance(ambiguous, NoMatch)
    assert ambiguous.reason == "ambiguous"


def test_added_lines_take_the_files_indentation_when_consistent() -> None:
    data = b"class K:\n    def f(self):\n        a()\n        b()\n"
    assert apply(data, hunk(" def f(self):\n-    a()\n+    a(1)\n+    if x:\n+        c()")) == (
        b"class K:\n    def f(self):\n        a(1)\n        if x:\n            c()\n        b()\n"
    )
    # the patch is deeper than the file: the offset is removed
    assert apply(
        b"def f():\n  a()\n", hunk("         def f():\n-          a()\n+          z()")
    ) == (b"def f():\n  z()\n")


def test_inconsistent_indentation_offsets_leave_added_lines_alone() -> None:
    data = b"def f():\n    a()\n"
    out = apply(data, hunk(" def f():\n-  a()\n+  z()"))  # 0 vs 0, then 2 vs 4: no offset
    assert out == b"def f():\n  z()\n"


def test_hunks_apply_in_file_order_and_may_not_overlap() -> None:
    data = b"1\n2\n3\n4\n5\n6\n"
    assert apply(data, hunk(" 5\n-6\n+six"), hunk("-1\n+one\n 2")) == b"one\n2\n3\n4\n5\nsix\n"
    result, failures = apply_hunks(
        decode(data), (hunk(" 1\n-2\n+x\n 3\n 4"), hunk(" 3\n-4\n+y")), "f"
    )
    assert result is None
    assert [f.reason for f in failures] == ["overlap"]


def test_line_endings_and_final_newline_are_kept() -> None:
    assert apply(b"a\r\nb\r\n", hunk(" a\n+x")) == b"a\r\nx\r\nb\r\n"
    assert apply(b"a\nb", hunk(" a\n-b\n+c")) == b"a\nc"
    assert apply(b"a\nb", hunk(" b\n+c")) == b"a\nb\nc"
    assert apply(b"a\nb\n", hunk(" a\n-b")) == b"a\n"
    assert apply(b"a\nb", hunk(" a\n-b")) == b"a"
    # mixed endings: untouched lines keep theirs, new lines take the dominant one
    assert apply(b"a\r\nb\nc\r\nd\r\n", hunk(" b\n+x")) == b"a\r\nb\nx\r\nc\r\nd\r\n"
    # a UTF-8 byte order mark stays where it is and does not disturb matching
    assert apply("\ufeffa\nb\n".encode(), hunk("-a\n+A")) == "\ufeffA\nb\n".encode()


def test_explicit_no_newline_markers() -> None:
    drop = Hunk((HunkLine("-", "b"), HunkLine("+", "b")), new_no_newline=True)
    add = Hunk((HunkLine("-", "b"), HunkLine("+", "b")), old_no_newline=True)
    assert apply(b"a\nb\n", drop) == b"a\nb"
    assert apply(b"a\nb", add) == b"a\nb\n"


def test_closest_lines_point_at_the_first_difference() -> None:
    lines = [f"value_{i} = {i}" for i in range(10_000)]
    old = ["value_5000 = 5000", "value_5001 = 5001", "value_5002 = 9999", "value_5003 = 5003"]
    closest = closest_lines(LineIndex(lines), old)
    numbers = [n for n, _ in closest]
    assert 5003 in numbers
    assert len(closest) <= 8
    assert all(lines[n - 1] == text for n, text in closest)


def test_closest_lines_without_exact_line_use_fuzzy_candidates() -> None:
    lines = ["def compute_total(items):", "    return sum(items)", "", "def other():", "    pass"]
    lines = lines * 3 + ["def compute_totals(xs):", "    return sum(x.price for x in xs)"]
    wanted = ["def compute_totalz(xs):", "    return sum(x.prize for x in xs)"]
    closest = closest_lines(LineIndex(lines), wanted)
    assert (16, "def compute_totals(xs):") in closest
