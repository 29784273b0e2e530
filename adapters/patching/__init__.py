"""The pure, synchronous patch engine (SPEC §5): parse a webhook body, plan it against a
read-only view of the workspace (every hunk checked, exact before/after bytes), or explain
every failing hunk at once. No writes here: the PatchActor applies a Plan atomically."""

from adapters.patching.diffing import unified_diff
from adapters.patching.formats import detect_format, parse_body, parse_text
from adapters.patching.model import (
    FileOp,
    Hunk,
    HunkFailure,
    HunkLine,
    ParsedPatch,
    PatchDoesNotApply,
    PatchParseError,
    Plan,
    PlannedFile,
    SandboxViolation,
    TextReplace,
)
from adapters.patching.planner import plan
from adapters.patching.sandbox import CheckedPath, FileIdentity, Sandbox, read_file_checked
from adapters.patching.view import MemoryView, SandboxView, WorkspaceView

__all__ = [
    "CheckedPath",
    "FileIdentity",
    "FileOp",
    "Hunk",
    "HunkFailure",
    "HunkLine",
    "MemoryView",
    "ParsedPatch",
    "PatchDoesNotApply",
    "PatchParseError",
    "Plan",
    "PlannedFile",
    "Sandbox",
    "SandboxView",
    "SandboxViolation",
    "TextReplace",
    "WorkspaceView",
    "detect_format",
    "parse_body",
    "parse_text",
    "plan",
    "read_file_checked",
    "unified_diff",
]
