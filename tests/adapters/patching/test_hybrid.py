"""The legacy hybrid block, and above all: a catastrophic regex never hangs."""

from __future__ import annotations

import time

import pytest

from adapters.patching import MemoryView, PatchDoesNotApply, parse_body, plan

LONG = ("a" * 5000 + "!\n").encode()


def hybrid(pattern: str, replacement: str = "x", **extra: object) -> dict[str, object]:
    return {
        "target_file": "f.txt",
        "patch": {"pattern": pattern, "replacement": replacement, "regex": True, **extra},
    }


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a|a)*$", r"(a|aa)+$", r"(a+)+b"])
def test_catastrophic_regex_fails_clearly_within_bounded_time(pattern: str) -> None:
    started = time.monotonic()
    with pytest.raises(PatchDoesNotApply) as rejected:
        plan(parse_body(hybrid(pattern)), MemoryView({"f.txt": LONG}), regex_timeout_s=0.3)
    elapsed = time.monotonic() - started
    (failure,) = rejected.value.failures
    assert failure.reason == "regex_timeout"
    assert "longer than" in failure.message
    assert elapsed < 2.0


def test_default_timeout_is_about_one_second() -> None:
    started = time.monotonic()
    with pytest.raises(PatchDoesNotApply):
        plan(parse_body(hybrid(r"(a+)+$")), MemoryView({"f.txt": LONG}))
    assert time.monotonic() - started < 3.0


def test_count_is_a_maximum_and_zero_means_all() -> None:
    files = {"f.txt": b"a a a\n"}
    for count, expected in ((0, b"b b b\n"), (2, b"b b a\n"), (9, b"b b b\n")):
        body = {
            "target_file": "f.txt",
            "patch": {"pattern": "a", "replacement": "b", "count": count},
        }
        (planned,) = plan(parse_body(body), MemoryView(files)).files
        assert planned.after == expected


def test_literal_by_default_even_with_regex_characters() -> None:
    body = {"target_file": "f.txt", "patch": {"pattern": "f(x).*", "replacement": "g(x)"}}
    (planned,) = plan(parse_body(body), MemoryView({"f.txt": b"y = f(x).*\n"})).files
    assert planned.after == b"y = g(x)\n"


def test_not_found_shows_closest_lines() -> None:
    body = {"target_file": "f.txt", "patch": {"pattern": "def compute(a, c):", "replacement": ""}}
    with pytest.raises(PatchDoesNotApply) as rejected:
        plan(parse_body(body), MemoryView({"f.txt": b"import x\n\ndef compute(a, b):\n  pass\n"}))
    (failure,) = rejected.value.failures
    assert failure.reason == "not_found"
    assert (3, "def compute(a, b):") in failure.closest


@pytest.mark.parametrize("regex", [False, True])
def test_a_replacement_that_would_grow_past_max_file_bytes_is_refused_before_it_is_built(
    regex: bool,
) -> None:
    # hostile-input issue, hole 3: 30,000 one-char matches times a 100 KB replacement once
    # built a 3 GB string before the size check; the size is now known first
    files = {"f.txt": ("a" * 30_000 + "\n").encode()}
    body = {
        "target_file": "f.txt",
        "patch": {"pattern": "a", "replacement": "b" * 100_000, "regex": regex},
    }
    started = time.monotonic()
    with pytest.raises(PatchDoesNotApply) as rejected:
        plan(parse_body(body), MemoryView(files, max_file_bytes=1024 * 1024))
    assert time.monotonic() - started < 5.0
    (violation,) = rejected.value.violations
    assert violation.reason == "too_large"
    assert not rejected.value.failures


def test_a_replacement_just_under_the_limit_applies() -> None:
    files = {"f.txt": b"a a a\n"}
    body = {"target_file": "f.txt", "patch": {"pattern": "a", "replacement": "bb"}}
    (planned,) = plan(parse_body(body), MemoryView(files, max_file_bytes=9)).files
    assert planned.after == b"bb bb bb\n"
    body["patch"] = {"pattern": "(a)", "replacement": r"\1\1", "regex": True}
    (planned,) = plan(parse_body(body), MemoryView(files, max_file_bytes=9)).files
    assert planned.after == b"aa aa aa\n"
