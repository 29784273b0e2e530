"""Glob matching in linear time (hostile-input issue, hole 2): `GET /tree?glob=*a*a*a*a*a*ab`
against a 200-character name once froze the node (the regex built from the glob backtracked
exponentially, holding the GIL). The translation must agree with the documented semantics
(checked here against a small reference matcher over path components) on any glob."""

from __future__ import annotations

import fnmatch
import re
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.globs import translate_glob
from adapters.watching.patterns import PathFilter

# (glob, a long name it must refuse at once, a long name it must match)
HOSTILE = [
    ("*a*a*a*a*a*ab", "a" * 200, "a" * 200 + "b"),
    ("*a*a*a*a*a*a*a*a*a*a*ab", "a" * 4000, "a" * 4000 + "b"),
    ("**/a/**/a/**/a/**/a/**/b", "/".join(["a"] * 2000), "/".join(["a"] * 2000) + "/b"),
    ("*?*?*?*?*?*?*?*?b", "x" * 3000, "x" * 3000 + "b"),
    ("a*[ab]*[ab]*[ab]*[ab]*c", "a" + "ab" * 1500, "a" + "ab" * 1500 + "c"),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("glob", "refused", "matched"), HOSTILE)
def test_a_hostile_glob_is_answered_at_once(glob: str, refused: str, matched: str) -> None:
    rules = PathFilter((glob,), ())
    assert not rules.file_matches(refused)
    assert rules.file_matches(matched)


def _reference(glob: str, path: str) -> bool:
    """The semantics in the module's header, over components: `**` alone spans any number of
    directories (trailing: anything below), `*` and `?` stay within a component."""
    comps, parts = glob.split("/"), path.split("/")

    def globstar(c: str) -> bool:
        return len(c) >= 2 and set(c) == {"*"}

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(comps):
            return j == len(parts)
        c = comps[i]
        if globstar(c):
            if all(globstar(x) for x in comps[i:]):
                return i == 0 or j < len(parts)
            return match(i + 1, j) or (j < len(parts) and match(i, j + 1))
        return j < len(parts) and fnmatch.fnmatchcase(parts[j], c) and match(i + 1, j + 1)

    return match(0, 0)


@settings(max_examples=3000, deadline=None)
@given(
    st.text(alphabet="ab*?/", min_size=1, max_size=12),
    st.text(alphabet="ab/", max_size=12),
)
def test_translation_agrees_with_the_reference(glob: str, path: str) -> None:
    got = re.fullmatch(translate_glob(glob), path) is not None
    assert got == _reference(glob, path), (glob, path, translate_glob(glob))
