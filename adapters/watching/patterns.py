"""Which workspace paths the watcher reports: include/exclude globs with gitignore-like rules.

Paths are workspace-relative POSIX strings ("src/app.py"). Rules, as in .gitignore:
- `name/` (trailing slash) matches directories only, at any depth: `node_modules/`;
- a pattern without a slash matches a basename at any depth: `*.log`, `.env`;
- a pattern with a slash elsewhere is anchored at the root: `src/*.py`, `/build/`;
- `*` and `?` never cross a `/`, `**` spans directories (`docs/**/*.md`), `[abc]` classes;
- `!pattern` re-includes what an earlier pattern excluded (the last matching pattern wins), but
  nothing below an excluded directory can come back (git's rule: it is never looked into).

A file is watched when no ancestor directory is excluded, the file itself is not excluded, and
an include pattern matches it (an empty include list means every file).
`.git/`, `.ghost/` and the patch engine's temp files are always excluded, after the user's
patterns, so that no `!` can bring them back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from adapters.defaults import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
from adapters.globs import translate_glob

# Temp files of adapters/workspace/transaction.py are `.<name>.ghost-<id>.tmp`: excluded even
# when a user's exclude list drops `*.tmp`, or every patch would be reported twice.
ALWAYS_EXCLUDE: tuple[str, ...] = (".git/", ".ghost/", ".*.ghost-*.tmp")

# Directory decisions are asked for every event; a bounded memo keeps that to a dict lookup.
_DIR_CACHE_LIMIT = 65_536


@dataclass(frozen=True, slots=True)
class _Rule:
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool
    anchored: bool

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        subject = rel if self.anchored else rel.rpartition("/")[2]
        return self.regex.fullmatch(subject) is not None


class PathFilter:
    def __init__(
        self,
        include: Iterable[str] = DEFAULT_INCLUDE,
        exclude: Iterable[str] = DEFAULT_EXCLUDE,
    ) -> None:
        self._include = _RuleSet(include)
        self._exclude = _RuleSet((*exclude, *ALWAYS_EXCLUDE))
        self._dir_cache: dict[str, bool] = {}

    def dir_excluded(self, rel_dir: str) -> bool:
        """Is this directory, or one of its ancestors, excluded? ("" is the root: never.)
        Iterative: a path may be 2,000 directories deep."""
        pending: list[str] = []
        result = False
        while rel_dir:
            cached = self._dir_cache.get(rel_dir)
            if cached is not None:
                result = cached
                break
            pending.append(rel_dir)
            rel_dir = rel_dir.rpartition("/")[0]
        for directory in reversed(pending):  # from the outermost unknown one down
            result = result or self._exclude.decides(directory, True)
            if len(self._dir_cache) >= _DIR_CACHE_LIMIT:
                self._dir_cache.clear()
            self._dir_cache[directory] = result
        return result

    def file_matches(self, rel: str) -> bool:
        """Should changes to this file (or symlink) be reported?"""
        if self.dir_excluded(rel.rpartition("/")[0]) or self._exclude.decides(rel, False):
            return False
        return self._include.empty or self._include.decides(rel, False)


class _RuleSet:
    """Patterns in order; with no `!` among them, one combined regex per kind of subject
    replaces the loop (this runs for every filesystem event)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self._rules = [r for r in map(_compile, patterns) if r is not None]
        self.empty = not self._rules
        self._combined = not any(r.negated for r in self._rules)
        rules = self._rules
        self._file_base = _union(r for r in rules if not r.anchored and not r.dir_only)
        self._file_anchored = _union(r for r in rules if r.anchored and not r.dir_only)
        self._dir_base = _union(r for r in rules if not r.anchored)
        self._dir_anchored = _union(r for r in rules if r.anchored)

    def decides(self, rel: str, is_dir: bool) -> bool:
        """Does the last pattern matching `rel` select it (and not negate it)?"""
        if not self._combined:
            for rule in reversed(self._rules):
                if rule.matches(rel, is_dir):
                    return not rule.negated
            return False
        base, anchored = (
            (self._dir_base, self._dir_anchored)
            if is_dir
            else (self._file_base, self._file_anchored)
        )
        if base is not None and base.fullmatch(rel.rpartition("/")[2]):
            return True
        return anchored is not None and anchored.fullmatch(rel) is not None


def _union(rules: Iterable[_Rule]) -> re.Pattern[str] | None:
    parts = [f"(?:{r.regex.pattern})" for r in rules]
    return re.compile("|".join(parts)) if parts else None


def _compile(pattern: str) -> _Rule | None:
    text = pattern.strip()
    if not text or text.startswith("#"):
        return None
    negated = text.startswith("!")
    if negated:
        text = text[1:]
    dir_only = text.endswith("/")
    text = text.rstrip("/")
    anchored = "/" in text
    text = text.lstrip("/")
    if not text:
        return None
    return _Rule(re.compile(translate_glob(text)), negated, dir_only, anchored)
