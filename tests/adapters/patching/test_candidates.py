"""A 422's `candidates` is never empty when the failure has closest lines: the line where the
closest lines start is where the model should read before it tries again."""

from __future__ import annotations

import pytest

from adapters.patching import MemoryView, PatchDoesNotApply, parse_body, plan

FILE = "def greet(name):\n    return 'Hello ' + name\n\n\ndef bye():\n    return 'bye'\n"


def test_a_hunk_not_found_names_where_its_closest_lines_start() -> None:
    body = {
        "patch": "*** Begin Patch\n*** Update File: app.py\n@@\n def bye():\n"
        "-    return 'goodbye'\n+    return 'see you'\n*** End Patch\n"
    }
    with pytest.raises(PatchDoesNotApply) as rejected:
        plan(parse_body(body), MemoryView({"app.py": FILE.encode()}))
    [failure] = rejected.value.failures
    assert failure.reason == "not_found"
    assert failure.closest
    assert failure.candidates == (failure.closest[0][0],)
    reported = failure.as_json()
    assert reported["candidates"] == [reported["closest"][0]["line"]]
    assert 4 <= reported["candidates"][0] <= 6  # around `def bye():` (line 5)


def test_an_ambiguous_hunk_lists_every_place() -> None:
    text = "x = 1\ny = 2\nx = 1\ny = 2\n"
    body = {"patch": "*** Begin Patch\n*** Update File: a.py\n@@\n-x = 1\n+x = 3\n*** End Patch\n"}
    with pytest.raises(PatchDoesNotApply) as rejected:
        plan(parse_body(body), MemoryView({"a.py": text.encode()}))
    [failure] = rejected.value.failures
    assert failure.reason == "ambiguous"
    assert failure.candidates == (1, 3)
