"""Small helpers shared by the text formats."""

from __future__ import annotations

from adapters.patching.model import HunkLine, LineKind, PatchParseError


def parse_error(fmt: str, message: str, line: int | None = None) -> PatchParseError:
    return PatchParseError(message, line, fmt)


def hunk_line(raw: str) -> HunkLine | None:
    """A ' ', '-' or '+' prefixed line; an empty line is an empty context line (editors and
    chat front-ends strip the lone space); anything else is None."""
    if raw == "":
        return HunkLine(" ", "")
    kind = raw[0]
    if kind in (" ", "-", "+"):
        k: LineKind = " " if kind == " " else ("-" if kind == "-" else "+")
        return HunkLine(k, raw[1:])
    return None


def require_path(fmt: str, path: str, line: int) -> str:
    path = path.strip()
    if not path:
        raise parse_error(fmt, "a file path was expected", line)
    return path
