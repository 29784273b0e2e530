"""Lexical path rules: what a patch path may look like, and gitignore-like exclusion.

Exclude patterns (a subset of gitignore, enough for the config's `exclude`):
- `name/` matches a DIRECTORY called `name` at any depth (everything under it is excluded);
- a pattern without `/` (`*.log`, `secrets.txt`) matches a file or directory name at any depth;
- a pattern with a `/` inside (`build/out`, `/dist`, `docs/**/*.pdf`) is anchored at the
  workspace root; `**` spans directories, `*` and `?` stay within one name;
- globs mean what they mean for the watcher (adapters/watching/patterns.py, one translation);
- blank lines and `#` comments are skipped; `!` negations are not supported and are ignored
  (ignoring one can only exclude more, never less).
`.git` and `.ghost` are always excluded, compared case-insensitively (case-insensitive file
systems would otherwise let `.GIT/config` through).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from adapters.globs import translate_glob  # linear-time: no pattern can hang
from adapters.patching.model import SandboxViolation

ALWAYS_EXCLUDED = (".git", ".ghost")
# Files that hold credentials by convention: never read or written through the sandbox, in
# any directory, whatever the config says (the model has no use for them, and a patch that
# reads one back in a diff or a 422 would send it off the machine).
SECRET_FILES: tuple[str, ...] = (
    ".env",
    ".env.*",
    ".envrc",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".pypirc",
    ".npmrc",
)
_DRIVE = re.compile(r"^[A-Za-z]:")


def normalize_relative(path: object) -> str:
    """The canonical form ("a/b.py") of a patch path, or SandboxViolation."""
    if not isinstance(path, str) or not path.strip():
        raise SandboxViolation(str(path), "empty", "empty path")
    if "\0" in path:
        raise SandboxViolation(path, "nul_byte", "NUL byte in path")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise SandboxViolation(path, "control_char", "control character in path")
    if "\\" in path:
        raise SandboxViolation(path, "backslash", "backslash in path; use '/' separators")
    if path.startswith(("/", "~")) or _DRIVE.match(path):
        raise SandboxViolation(path, "absolute", "absolute path; give it relative to the workspace")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SandboxViolation(path, "traversal", "'..' in path")
    if not parts:
        raise SandboxViolation(path, "empty", "the path names no file")
    return "/".join(parts)


class ExcludeRules:
    """The config's excludes, then SECRET_FILES (after them, so always applied)."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self._rules: list[tuple[str, re.Pattern[str], bool, bool]] = []
        for raw in (*patterns, *SECRET_FILES):
            pattern = raw.strip()
            if not pattern or pattern.startswith(("#", "!")):
                continue
            dir_only = pattern.endswith("/")
            body = pattern.rstrip("/")
            anchored = "/" in body
            body = body.lstrip("/")
            if body:
                self._rules.append((raw, re.compile(translate_glob(body)), dir_only, anchored))

    def excluded_by(self, relative: str) -> str | None:
        """The pattern that excludes the canonical relative path, or None."""
        parts = relative.split("/")
        for part in parts:
            if part.casefold() in ALWAYS_EXCLUDED:
                return f"{part}/"
        last = len(parts) - 1
        for raw, regex, dir_only, anchored in self._rules:
            for i, part in enumerate(parts):
                if dir_only and i == last:
                    break
                subject = "/".join(parts[: i + 1]) if anchored else part
                if regex.fullmatch(subject):
                    return raw
        return None


class IncludeRules:
    """The workspace's `include`: which files reads and writes may touch (the same rule as
    the watcher's and GET /tree's, so that what the model can see and what it can change
    agree). A pattern without `/` matches the file's name, one with `/` the whole path;
    `!pattern` takes a file back out (the last matching pattern wins). No patterns: every
    file."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self.patterns = tuple(p.strip() for p in patterns if p.strip() and not p.startswith("#"))
        self._rules: list[tuple[re.Pattern[str], bool, bool]] = []
        for pattern in self.patterns:
            negated = pattern.startswith("!")
            body = pattern[1:] if negated else pattern
            anchored = "/" in body.rstrip("/")
            body = body.strip("/")
            if body:
                self._rules.append((re.compile(translate_glob(body)), anchored, negated))

    def includes(self, relative: str) -> bool:
        if not self._rules:
            return True
        name = relative.rpartition("/")[2]
        for regex, anchored, negated in reversed(self._rules):
            if regex.fullmatch(relative if anchored else name):
                return not negated
        return False
