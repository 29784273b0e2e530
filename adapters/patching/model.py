"""What the patch engine works with: parsed patches, the plan it produces, and why it refuses.

Everything is immutable so a plan can be handed from the planner to the writer (another
thread, later) without anyone changing it in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["v4a", "unified", "search_replace", "files", "hybrid"]
FORMATS: tuple[Format, ...] = ("v4a", "unified", "search_replace", "files", "hybrid")

# add: the file must not exist; update/delete: it must; write (whole files): either;
# move: `path` is renamed to `new_path`, with optional hunks applied on the way.
Action = Literal["add", "update", "delete", "write", "move"]
LineKind = Literal[" ", "-", "+"]

FailureReason = Literal[
    "not_found",  # the hunk's old lines are nowhere in the file
    "ambiguous",  # they are in several places and nothing says which
    "overlap",  # two hunks claim the same lines
    "stale_base",  # `base` sha256 differs from the file on disk (answered 409)
    "missing_file",  # update/delete/move of a file that does not exist
    "already_exists",  # add of a file that exists
    "target_exists",  # move onto an existing file
    "conflicting_ops",  # a move and another operation touch the same file
    "delete_mismatch",  # a deletion diff whose content is not the file's
    "invalid_regex",
    "regex_timeout",
    "invalid_content",  # e.g. a whole-file content that is not text
]


@dataclass(frozen=True, slots=True)
class HunkLine:
    kind: LineKind
    text: str  # without the kind prefix and without a line ending


@dataclass(frozen=True, slots=True)
class Hunk:
    """One change: `lines` keep the patch's interleaving of context, removed and added lines
    (a unified hunk may alternate them); the properties give the classic four-part view."""

    lines: tuple[HunkLine, ...]
    anchors: tuple[str, ...] = ()  # V4A `@@ class X` / `@@ def f`, outermost first
    line_hint: int | None = None  # 1-based old start from `@@ -a,b`; 0 = before line 1
    end_of_file: bool = False  # must end at the end of the file (`*** End of File`)
    old_no_newline: bool = False  # `\ No newline at end of file` after the old side
    new_no_newline: bool = False  # ... after the new side: the result ends without one
    # The ending the patch's own added lines carry ("\r\n" in a git diff of a CRLF file): used
    # only when the file has no line ending to follow (empty, or one line without newline).
    eol: str | None = None
    source: str = ""  # the hunk as written in the patch, for error answers
    source_line: int = 0  # 1-based line of the hunk in the patch text

    @property
    def old_lines(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if line.kind != "+")

    @property
    def new_lines(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if line.kind != "-")

    @property
    def context_before(self) -> tuple[str, ...]:
        return _leading_context(self.lines)

    @property
    def context_after(self) -> tuple[str, ...]:
        return tuple(reversed(_leading_context(tuple(reversed(self.lines)))))

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if line.kind == "-")

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.lines if line.kind == "+")


def _leading_context(lines: tuple[HunkLine, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for line in lines:
        if line.kind != " ":
            break
        out.append(line.text)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class TextReplace:
    """The legacy hybrid block: replace `pattern` (literal unless `regex`) by `replacement`,
    every occurrence unless `count` (a maximum, like str.replace / re.sub) says otherwise."""

    pattern: str
    replacement: str
    regex: bool = False
    count: int = 0  # 0 = all


@dataclass(frozen=True, slots=True)
class FileOp:
    action: Action
    path: str
    new_path: str | None = None  # move destination
    hunks: tuple[Hunk, ...] = ()
    content: str | None = None  # add / write: the whole new text
    replace: TextReplace | None = None  # hybrid
    # SEARCH/REPLACE blocks apply one after the other, each on the previous one's result;
    # diff hunks are all located in the original file and must not overlap.
    sequential: bool = False


@dataclass(frozen=True, slots=True)
class ParsedPatch:
    format: Format
    ops: tuple[FileOp, ...]
    base: Mapping[str, str] = field(default_factory=dict)  # path -> expected sha256 hex


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """The exact bytes before and after; None = absent. For a move, `path` is the new name,
    `move_from` the old one and `before` the old file's bytes."""

    path: str
    action: Literal["add", "update", "delete", "move"]
    before: bytes | None
    after: bytes | None
    move_from: str | None = None

    def changes(self) -> tuple[tuple[str, bytes | None, bytes | None], ...]:
        """(path, before, after) per touched path, the shape a file transaction wants."""
        if self.move_from is not None:
            return ((self.move_from, self.before, None), (self.path, None, self.after))
        return ((self.path, self.before, self.after),)


@dataclass(frozen=True, slots=True)
class Plan:
    format: Format
    files: tuple[PlannedFile, ...]

    def changes(self) -> tuple[tuple[str, bytes | None, bytes | None], ...]:
        return tuple(change for planned in self.files for change in planned.changes())


# What one rejection reports, however hostile the patch (SPEC §4's 422 and its event): the
# first failures in full, counts for the rest, and long lines cut. A file with one 30,000-char
# line and a patch of 20,000 failing hunks would otherwise make a 606 MB rejection event.
MAX_REPORTED_PROBLEMS = 50
MAX_REPORTED_LINE = 400  # characters of one closest line
MAX_REPORTED_HUNK = 4000  # characters of one hunk as written


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


@dataclass(frozen=True, slots=True)
class HunkFailure:
    """Why one hunk (or, with hunk_index None, a whole file operation) cannot apply.
    `candidates` and `closest` carry 1-based line numbers of the file as it is on disk
    (for SEARCH/REPLACE blocks after the earlier blocks of the same file). `candidates` are
    where the hunk may be meant to go: the places it matches (ambiguous), else the line where
    its closest lines start, so a model always has a line to read around."""

    path: str
    hunk_index: int | None
    hunk_text: str
    reason: FailureReason
    message: str
    candidates: tuple[int, ...] = ()
    closest: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.candidates and self.closest:
            object.__setattr__(self, "candidates", (self.closest[0][0],))

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "hunk_index": self.hunk_index,
            "hunk": clip(self.hunk_text, MAX_REPORTED_HUNK),
            "reason": self.reason,
            "message": clip(self.message, MAX_REPORTED_HUNK),
            "candidates": list(self.candidates[:MAX_REPORTED_PROBLEMS]),
            "closest": [{"line": n, "text": clip(t, MAX_REPORTED_LINE)} for n, t in self.closest],
        }


class PatchParseError(ValueError):
    """The patch text is malformed; `line` is 1-based in the patch text when known."""

    def __init__(self, message: str, line: int | None = None, format: str | None = None):
        self.message, self.line, self.format = message, line, format
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"{format + ': ' if format else ''}{message}{where}")

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "line": self.line,
            "message": clip(self.message, MAX_REPORTED_HUNK),
        }


SandboxReason = Literal[
    "empty",
    "absolute",
    "traversal",
    "nul_byte",
    "control_char",
    "backslash",
    "excluded",
    "symlink_escape",
    "symlink",
    "not_a_file",
    "not_a_directory",
    "too_large",
    "binary",
    "changed_since_check",
    "unreadable",
]


class SandboxViolation(Exception):
    """A path or a content the sandbox refuses, with a machine-readable reason."""

    def __init__(self, path: str, reason: SandboxReason, message: str = "") -> None:
        self.path, self.reason = path, reason
        self.message = message or reason.replace("_", " ")
        super().__init__(f"{path!r}: {self.message}")

    def as_json(self) -> dict[str, Any]:
        return {
            "path": clip(self.path, MAX_REPORTED_LINE),
            "reason": self.reason,
            "message": clip(self.message, MAX_REPORTED_HUNK),
        }


_MESSAGE_PROBLEMS = 10  # problems named in the one-line message


class PatchDoesNotApply(Exception):
    """Every reason the patch cannot apply, gathered before giving up (never the first only).
    Nothing has been written when this is raised."""

    def __init__(
        self,
        failures: tuple[HunkFailure, ...],
        violations: tuple[SandboxViolation, ...] = (),
    ) -> None:
        self.failures, self.violations = failures, violations
        parts = [f"{f.path}: {f.message}" for f in failures]
        parts += [str(v) for v in violations]
        shown = [clip(part, MAX_REPORTED_LINE) for part in parts[:_MESSAGE_PROBLEMS]]
        if len(parts) > _MESSAGE_PROBLEMS:
            shown.append(f"and {len(parts) - _MESSAGE_PROBLEMS} more")
        super().__init__("; ".join(shown) or "patch rejected")

    @property
    def is_conflict(self) -> bool:
        """A `base` mismatch: the model wrote against other contents (answer 409, re-read)."""
        return any(f.reason == "stale_base" for f in self.failures)

    def as_json(self) -> dict[str, Any]:
        """The first MAX_REPORTED_PROBLEMS failures and violations in full; `omitted` counts
        the rest (a model fixes the first ones and sends the patch again)."""
        limit = MAX_REPORTED_PROBLEMS
        out: dict[str, Any] = {
            "failures": [f.as_json() for f in self.failures[:limit]],
            "sandbox": [v.as_json() for v in self.violations[:limit]],
        }
        omitted = {
            "failures": max(len(self.failures) - limit, 0),
            "sandbox": max(len(self.violations) - limit, 0),
        }
        if any(omitted.values()):
            out["omitted"] = omitted
        return out
