"""Properties over random files and edits: a plan's `before` is exactly the current content,
a patch made from a real edit gives the edited file or is refused as ambiguous (never a wrong
place), and random junk never gets further than a parse error or a rejection."""

from __future__ import annotations

import difflib

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adapters.patching import (
    MemoryView,
    ParsedPatch,
    PatchDoesNotApply,
    PatchParseError,
    Plan,
    parse_body,
    plan,
)
from tests.adapters.patching.gitcases import Edit, edits
from tests.adapters.patching.support import apply_plan

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _split(data: bytes) -> list[str]:
    text = data.decode().replace("\r\n", "\n")
    lines = text.split("\n")
    return lines[:-1] if text.endswith("\n") or not text else lines


def _v4a(edit: Edit, context: int) -> str:
    old, new = _split(edit.old), _split(edit.new)
    out = ["*** Begin Patch", "*** Update File: f"]
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        out.append("@@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in old[i1:i2]]
            else:
                out += ["-" + line for line in old[i1:i2]]
                out += ["+" + line for line in new[j1:j2]]
    out.append("*** End Patch")
    return "\n".join(out) + "\n"


def _search_replace(edit: Edit, context: int) -> str:
    old, new = _split(edit.old), _split(edit.new)
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        if not "".join(old[i1:i2]).strip():
            return ""  # an empty SEARCH means "create the file": not this property
        out += ["f", "<<<<<<< SEARCH", *old[i1:i2], "=======", *new[j1:j2], ">>>>>>> REPLACE"]
    return "\n".join(out) + "\n"


def _plan_or_rejection(parsed: ParsedPatch, files: dict[str, bytes]) -> Plan | PatchDoesNotApply:
    try:
        return plan(parsed, MemoryView(files))
    except PatchDoesNotApply as rejected:
        return rejected


def _usable(edit: Edit) -> bool:
    # V4A / SEARCH blocks cannot say "no final newline" nor "CRLF" for a file with no ending
    has_ending = b"\n" in edit.old
    same_final = edit.old.endswith(b"\n") == edit.new.endswith(b"\n") or not edit.new
    return edit.old != edit.new and has_ending and same_final


@SETTINGS
@given(edit=edits(keep_final_newline=True), context=st.integers(1, 3))
def test_v4a_from_a_real_edit_is_right_or_ambiguous(edit: Edit, context: int) -> None:
    assume(_usable(edit))
    files = {"f": edit.old}
    parsed = parse_body({"patch": _v4a(edit, context)})
    result = _plan_or_rejection(parsed, files)
    if isinstance(result, PatchDoesNotApply):
        assert {f.reason for f in result.failures} == {"ambiguous"}, result
        assert all(len(f.candidates) >= 2 for f in result.failures)
        return
    assert [p.before for p in result.files] == [edit.old]
    assert apply_plan(files, result) == {"f": edit.new}


@SETTINGS
@given(edit=edits(keep_final_newline=True), context=st.integers(0, 2))
def test_search_replace_from_a_real_edit_is_right_or_ambiguous(edit: Edit, context: int) -> None:
    assume(_usable(edit))
    files = {"f": edit.old}
    text = _search_replace(edit, context)
    assume(text)
    result = _plan_or_rejection(parse_body({"patch": text}), files)
    if isinstance(result, PatchDoesNotApply):
        assert {f.reason for f in result.failures} <= {"ambiguous"}, result
        return
    assert apply_plan(files, result) == {"f": edit.new}


JUNK_LINES = [
    "*** Begin Patch",
    "*** End Patch",
    "*** Update File: f",
    "*** Add File: g",
    "*** Delete File: f",
    "*** Move to: h",
    "*** End of File",
    "@@",
    "@@ def f():",
    "@@ -1,2 +1,2 @@",
    "--- a/f",
    "+++ b/f",
    "--- /dev/null",
    "\\ No newline at end of file",
    "<<<<<<< SEARCH",
    "=======",
    ">>>>>>> REPLACE",
    "f",
    " a",
    "-a",
    "+b",
    "+",
    "",
    "-b",
    " def f():",
    "-    return 1",
]


@SETTINGS
@given(
    edit=edits(),
    junk=st.lists(st.sampled_from(JUNK_LINES), max_size=25),
    fmt=st.sampled_from([None, "v4a", "unified", "search_replace"]),
)
def test_junk_is_parse_error_or_rejection_or_a_faithful_plan(
    edit: Edit, junk: list[str], fmt: str | None
) -> None:
    files = {"f": edit.old, "g": b"x\n"}
    body: dict[str, object] = {"patch": "\n".join(junk)}
    if fmt:
        body["format"] = fmt
    try:
        parsed = parse_body(body)
    except PatchParseError:
        return
    result = _plan_or_rejection(parsed, files)
    if isinstance(result, PatchDoesNotApply):
        return
    for planned in result.files:
        assert planned.before == files.get(planned.move_from or planned.path)
    apply_plan(files, result)
