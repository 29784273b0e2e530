"""The per-format corpus: corpus/<format>/<case>/{before/, patch | expect.json body, after/,
expect.json}. expect.json: {"outcome": applied | rejected | parse_error, "reasons": [...],
"candidates": [[...] per failure with candidates], "closest_lines": [[line numbers that must
be among `closest`]], "sandbox": [reasons], "line": parse error line, "body": extra body keys}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.patching import MemoryView, PatchDoesNotApply, PatchParseError, parse_body, plan
from tests.adapters.patching.support import CORPUS, apply_plan, read_tree

CASES = sorted(p.parent for p in CORPUS.glob("*/*/expect.json"))


def _body(case: Path, expect: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = dict(expect.get("body", {}))
    patch = case / "patch"
    if patch.exists():
        body["patch"] = patch.read_bytes().decode("utf-8")
        body["format"] = case.parent.name
    return body


def test_corpus_is_not_empty() -> None:
    formats = {case.parent.name for case in CASES}
    assert formats == {"v4a", "unified", "search_replace", "files", "hybrid"}
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_case(case: Path) -> None:
    expect = json.loads((case / "expect.json").read_text())
    before = read_tree(case / "before")
    body = _body(case, expect)
    outcome = expect["outcome"]
    if outcome == "parse_error":
        with pytest.raises(PatchParseError) as parse_error:
            parse_body(body)
        if "line" in expect:
            assert parse_error.value.line == expect["line"], str(parse_error.value)
        return
    parsed = parse_body(body)
    if outcome == "rejected":
        with pytest.raises(PatchDoesNotApply) as rejected:
            plan(parsed, MemoryView(before))
        failures = rejected.value.failures
        assert sorted(f.reason for f in failures) == sorted(expect.get("reasons", [])), (
            rejected.value
        )
        assert sorted(v.reason for v in rejected.value.violations) == sorted(
            expect.get("sandbox", [])
        )
        with_candidates = [list(f.candidates) for f in failures if f.candidates]
        if "candidates" in expect:
            assert with_candidates == expect["candidates"]
        for failure, wanted in zip(failures, expect.get("closest_lines", []), strict=False):
            shown = [n for n, _ in failure.closest]
            assert set(wanted) <= set(shown), (shown, failure.message)
            for n, text in failure.closest:
                assert before[failure.path].decode().split("\n")[n - 1].rstrip("\r") == text
        for failure in failures:
            assert failure.message
        return
    result = plan(parsed, MemoryView(before))
    assert apply_plan(before, result) == read_tree(case / "after")
    # the before of every planned file is exactly what was there
    for planned in result.files:
        assert planned.before == before.get(planned.move_from or planned.path)
