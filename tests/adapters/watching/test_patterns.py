"""Include/exclude rules (gitignore-like) on workspace-relative POSIX paths."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.watching import PathFilter

DEFAULTS = PathFilter()


@pytest.mark.parametrize(
    ("rel", "watched"),
    [
        ("app.py", True),
        ("src/components/Button.tsx", True),
        ("docs/guide.md", True),
        ("package.json", True),
        ("notes.txt", False),  # not included
        ("node_modules/react/index.js", False),
        ("packages/web/node_modules/x/index.js", False),  # `dir/` matches at any depth
        (".git/hooks/pre-commit.py", False),
        (".ghost/state.json", False),
        (".venv/lib/site.py", False),
        ("src/__pycache__/app.py", False),
        ("server.log", False),
        ("logs/today.md", False),
        ("data/seed.json", False),
        ("src/data/seed.json", False),
        ("src/data.json", True),  # `data/` is a directory pattern: a file called data.json is fine
        ("src/.app.py.ghost-0123456789abcdef.tmp", False),  # the patch engine's temp files
        ("src/app.py.bak", False),
    ],
)
def test_defaults(rel: str, watched: bool) -> None:
    assert DEFAULTS.file_matches(rel) is watched


def test_directory_decisions() -> None:
    assert DEFAULTS.dir_excluded("node_modules")
    assert DEFAULTS.dir_excluded("a/b/node_modules/c")  # below an excluded directory
    assert not DEFAULTS.dir_excluded("src")
    assert not DEFAULTS.dir_excluded("")


def test_anchored_patterns_and_double_star() -> None:
    f = PathFilter(include=["src/*.py", "docs/**/*.md", "/top.json"], exclude=["/build/"])
    assert f.file_matches("src/a.py")
    assert not f.file_matches("src/sub/a.py")  # `*` stays within one component
    assert not f.file_matches("lib/src/a.py")  # anchored at the root
    assert f.file_matches("docs/a.md")
    assert f.file_matches("docs/x/y/a.md")
    assert f.file_matches("top.json")
    assert not f.file_matches("sub/top.json")
    assert f.dir_excluded("build")
    assert not f.dir_excluded("src/build")


def test_negation_and_always_excluded() -> None:
    f = PathFilter(include=["*"], exclude=["*.json", "!keep.json", "gen/", "!gen/x.py", "!.git/"])
    assert not f.file_matches("a.json")
    assert f.file_matches("keep.json")
    assert f.file_matches("sub/keep.json")
    assert not f.file_matches("gen/x.py")  # nothing comes back from an excluded directory
    assert not f.file_matches(".git/config")  # .git/ and .ghost/ cannot be re-included
    assert PathFilter(include=[], exclude=[]).file_matches("anything.bin")  # empty include: all


def test_character_classes_and_comments() -> None:
    f = PathFilter(include=["[ab].py", "[!c]x.ts", "# comment", "  "], exclude=[])
    assert f.file_matches("a.py")
    assert not f.file_matches("c.py")
    assert f.file_matches("dx.ts")
    assert not f.file_matches("cx.ts")


name = st.text(alphabet="abcXYZ._-", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
glob = st.text(alphabet="abc.*?", min_size=1, max_size=6)


@given(glob, st.lists(name, min_size=1, max_size=4))
def test_basename_patterns_agree_with_fnmatch(pattern: str, parts: list[str]) -> None:
    rel = "/".join(parts)
    expected = fnmatch.fnmatchcase(parts[-1], pattern)
    assert PathFilter(include=[pattern], exclude=[]).file_matches(rel) is expected
