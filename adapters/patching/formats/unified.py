"""Unified diffs, git-style or plain: several files, creation (--- /dev/null), deletion
(+++ /dev/null), git renames (rename from/to), `\\ No newline at end of file`.

The numbers in `@@ -a,b +c,d @@` are hints only (models get them wrong): a hunk ends at the
next header, or at a line that is not a hunk line; an empty line is an empty context line while
the counts still expect lines (or, without counts, when a hunk line follows). Text around the
diff (prose, a ```diff fence, "Index:" lines) is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from adapters.patching.formats.common import hunk_line, parse_error
from adapters.patching.model import FileOp, Hunk, HunkLine
from adapters.patching.text import patch_lines

FMT = "unified"
_HEADER = re.compile(r"^@@+ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@+")
_OCTAL = re.compile(rb"\\([0-7]{3}|.)")
_ESCAPES = {b"n": b"\n", b"t": b"\t", b'"': b'"', b"\\": b"\\", b"a": b"\a", b"b": b"\b"}


@dataclass
class _Section:
    line: int  # 1-based, for errors
    crlf: list[bool]  # per patch line: did it end with CRLF
    git: bool = False
    old: str | None = ""
    new: str | None = ""
    rename_from: str | None = None
    rename_to: str | None = None
    new_file: bool = False
    deleted: bool = False
    hunks: list[Hunk] = field(default_factory=list)


def parse_unified(text: str) -> tuple[FileOp, ...]:
    lines = patch_lines(text)
    crlf = [raw.endswith("\r") for raw in text.split("\n")]
    sections: list[_Section] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            section = _Section(i + 1, crlf, git=True)
            section.old = section.new = _git_line_path(line[len("diff --git ") :])
            i = _git_headers(lines, i + 1, section)
            sections.append(section)
        elif _file_header_at(lines, i):
            section = _Section(i + 1, crlf)
            i = _file_headers(lines, i, section)
            sections.append(section)
        elif line.startswith("@@") and sections and sections[-1].old != "":
            i = _hunks(lines, i, sections[-1])  # a further hunk after a non-hunk line
        elif line.startswith("@@"):
            raise parse_error(FMT, "a hunk without file header ('--- a/path', '+++ b/path')", i + 1)
        elif line.startswith(("Binary files ", "GIT binary patch")):
            raise parse_error(FMT, "binary patches are not supported", i + 1)
        else:
            i += 1
    if not sections:
        raise parse_error(FMT, "no file header ('--- a/path' then '+++ b/path') found", 1)
    return tuple(op for section in sections if (op := _op(section)) is not None)


def _file_header_at(lines: list[str], i: int) -> bool:
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def _git_headers(lines: list[str], i: int, section: _Section) -> int:
    while i < len(lines):
        line = lines[i]
        if line.startswith("rename from "):
            section.rename_from = _unquote(line[len("rename from ") :])
        elif line.startswith("rename to "):
            section.rename_to = _unquote(line[len("rename to ") :])
        elif line.startswith("new file mode"):
            section.new_file = True
        elif line.startswith("deleted file mode"):
            section.deleted = True
        elif line.startswith(("copy from ", "copy to ")):
            raise parse_error(FMT, "git copies are not supported; add the file instead", i + 1)
        elif line.startswith(("GIT binary patch", "Binary files ")):
            raise parse_error(FMT, "binary patches are not supported", i + 1)
        elif _file_header_at(lines, i):
            return _file_headers(lines, i, section)
        elif line.startswith(("diff --git ", "@@")) or not line.strip():
            return i
        # index, old mode, new mode, similarity index...: nothing to do
        i += 1
    return i


def _file_headers(lines: list[str], i: int, section: _Section) -> int:
    old, new = _header_path(lines[i][4:]), _header_path(lines[i + 1][4:])
    prefixed = section.git or (
        (old is None or old.startswith("a/")) and (new is None or new.startswith("b/"))
    )
    if prefixed:
        old = old[2:] if old is not None and old.startswith("a/") else old
        new = new[2:] if new is not None and new.startswith("b/") else new
    if old is None and new is None:
        raise parse_error(FMT, "both sides are /dev/null", i + 1)
    section.old, section.new = old, new
    return _hunks(lines, i + 2, section)


def _header_path(raw: str) -> str | None:
    path = raw.split("\t", 1)[0].rstrip()
    path = _unquote(path)
    return None if path == "/dev/null" else path


def _unquote(path: str) -> str:
    """git's C-style quoting ("a/na\\303\\257ve") back to the name."""
    path = path.strip()
    if len(path) < 2 or not (path.startswith('"') and path.endswith('"')):
        return path

    def one(m: re.Match[bytes]) -> bytes:
        esc = m.group(1)
        return bytes([int(esc, 8)]) if len(esc) == 3 else _ESCAPES.get(esc, esc)

    return _OCTAL.sub(one, path[1:-1].encode("utf-8")).decode("utf-8", "replace")


def _git_line_path(rest: str) -> str:
    """The name in `diff --git a/NAME b/NAME` (only needed when no ---/+++ follow)."""
    rest = rest.strip()
    if rest.startswith('"'):
        end = rest.find('" ', 1)
        return _unquote(rest[: end + 1])[2:] if end > 0 else rest
    half = (len(rest) - 5) // 2
    if rest.startswith("a/") and rest[2 + half : 5 + half] == " b/":
        return rest[2 : 2 + half]
    cut = rest.rfind(" b/")
    return rest[2:cut] if rest.startswith("a/") and cut > 0 else rest


def _hunks(lines: list[str], i: int, section: _Section) -> int:
    while i < len(lines) and lines[i].startswith("@@"):
        i = _hunk(lines, i, section)
    return i


def _is_next_header(lines: list[str], j: int, old_left: int, new_left: int) -> bool:
    line = lines[j]
    if line.startswith(("diff --git ", "@@")):
        return True
    if _file_header_at(lines, j):
        # "--- x" / "+++ y" could be a removed "-- x" and an added "++ y" while the counts
        # still expect both; a following "@@" settles it.
        followed_by_hunk = j + 2 < len(lines) and lines[j + 2].startswith("@@")
        return followed_by_hunk or old_left <= 0 or new_left <= 0
    return False


def _hunk(lines: list[str], i: int, section: _Section) -> int:
    header = _HEADER.match(lines[i])
    counted = header is not None
    old_start, old_left, new_left = None, 0, 0
    if header is not None:
        old_start = int(header.group(1))
        old_left = int(header.group(2)) if header.group(2) is not None else 1
        new_left = int(header.group(4)) if header.group(4) is not None else 1
    body: list[HunkLine] = []
    old_no_newline = new_no_newline = False
    j = i + 1
    while j < len(lines):
        line = lines[j]
        if line.startswith("\\"):
            if body:
                kind = body[-1].kind
                old_no_newline = old_no_newline or kind in (" ", "-")
                new_no_newline = new_no_newline or kind in (" ", "+")
            j += 1
            continue
        if _is_next_header(lines, j, old_left, new_left):
            break
        if line == "" and not _blank_is_context(lines, j, counted, old_left, new_left):
            break
        parsed = hunk_line(line)
        if parsed is None:
            break
        old_left -= parsed.kind != "+"
        new_left -= parsed.kind != "-"
        body.append(parsed)
        j += 1
    if not body:
        raise parse_error(FMT, "a hunk without lines", i + 1)
    added = [k for k in range(i + 1, j) if lines[k].startswith("+")]
    if body[-1].kind == "+" and new_no_newline:
        added.pop()  # the very last line has no ending to look at
    eol = "\r\n" if added and all(section.crlf[k] for k in added) else None
    section.hunks.append(
        Hunk(
            tuple(body),
            line_hint=old_start,
            eol=eol,
            old_no_newline=old_no_newline,
            new_no_newline=new_no_newline,
            source="\n".join(lines[i:j]),
            source_line=i + 1,
        )
    )
    return j


def _blank_is_context(
    lines: list[str], j: int, counted: bool, old_left: int, new_left: int
) -> bool:
    if counted:
        return old_left > 0 and new_left > 0
    nxt = lines[j + 1] if j + 1 < len(lines) else ""
    return nxt[:1] in (" ", "-", "+") and not _is_next_header(lines, j + 1, 0, 0)


def _op(section: _Section) -> FileOp | None:
    old = section.rename_from or section.old
    new = section.rename_to or section.new
    if section.new_file or old is None:
        if new is None:
            raise parse_error(FMT, "a creation without a name", section.line)
        content: list[str] = []
        for hunk in section.hunks:
            if hunk.old_lines:
                raise parse_error(FMT, f"{new}: a new file's hunk has old lines", hunk.source_line)
            content.extend(hunk.new_lines)
        no_newline = bool(section.hunks) and section.hunks[-1].new_no_newline
        eol = section.hunks[0].eol or "\n" if section.hunks else "\n"
        text = eol.join(content) + (eol if content and not no_newline else "")
        return FileOp("add", new, content=text)
    if section.deleted or new is None:
        return FileOp("delete", old, hunks=tuple(section.hunks))
    if old != new and (section.rename_from or section.rename_to):
        return FileOp("move", old, new_path=new, hunks=tuple(section.hunks))
    if not section.hunks:
        return None  # a mode change: nothing for us to do
    return FileOp("update", new, hunks=tuple(section.hunks))
