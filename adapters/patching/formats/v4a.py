"""OpenAI V4A patches (the codex `apply_patch` grammar):

    *** Begin Patch
    *** Add File: path        then "+"-prefixed lines
    *** Delete File: path
    *** Update File: path     [*** Move to: new path] then hunks:
        @@ [anchor]           one or more (stacked anchors narrow the place: @@ class X, @@ def f)
        " "/"-"/"+" lines     context / removed / added
        [*** End of File]     the hunk ends at the end of the file
    *** End Patch

Tolerated: text around the patch (a heredoc `apply_patch <<'EOF' ... EOF`, a code fence),
whitespace around markers, a first hunk without `@@`, an empty line as an empty context line,
and a hunk line without prefix (taken as context: models drop the leading space).
Refused, with the line: a missing `*** End Patch` (a truncated patch must not half-apply),
unknown markers between files, an Add File line without "+".
"""

from __future__ import annotations

from adapters.patching.formats.common import hunk_line, parse_error, require_path
from adapters.patching.model import FileOp, Hunk, HunkLine
from adapters.patching.text import patch_lines

FMT = "v4a"
BEGIN, END = "*** Begin Patch", "*** End Patch"
ADD, DELETE, UPDATE, MOVE = "*** Add File:", "*** Delete File:", "*** Update File:", "*** Move to:"
EOF_MARK = "*** End of File"


def _is_file_marker(stripped: str) -> bool:
    return stripped.startswith((ADD, DELETE, UPDATE)) or stripped == END


def parse_v4a(text: str) -> tuple[FileOp, ...]:
    lines = patch_lines(text)
    begin = next((i for i, line in enumerate(lines) if line.strip() == BEGIN), None)
    if begin is None:
        raise parse_error(FMT, f"expected {BEGIN!r}", 1)
    end = next((i for i in range(begin + 1, len(lines)) if lines[i].strip() == END), None)
    if end is None:
        raise parse_error(FMT, f"expected {END!r} (is the patch truncated?)", len(lines))
    ops: list[FileOp] = []
    i = begin + 1
    while i < end:
        stripped = lines[i].strip()
        if not stripped:
            i += 1
        elif stripped.startswith(ADD):
            path = require_path(FMT, stripped[len(ADD) :], i + 1)
            i, content = _add_body(lines, i + 1, end)
            ops.append(FileOp("add", path, content=content))
        elif stripped.startswith(DELETE):
            path = require_path(FMT, stripped[len(DELETE) :], i + 1)
            i += 1
            while i < end and not _is_file_marker(lines[i].strip()):
                if lines[i].strip():
                    raise parse_error(FMT, "nothing may follow '*** Delete File:'", i + 1)
                i += 1
            ops.append(FileOp("delete", path))
        elif stripped.startswith(UPDATE):
            path = require_path(FMT, stripped[len(UPDATE) :], i + 1)
            header = i + 1
            i += 1
            new_path = None
            if i < end and lines[i].strip().startswith(MOVE):
                new_path = require_path(FMT, lines[i].strip()[len(MOVE) :], i + 1)
                i += 1
            i, hunks = _hunks(lines, i, end)
            if not hunks and new_path is None:
                raise parse_error(FMT, f"'*** Update File: {path}' has no hunk", header)
            if new_path is not None:
                ops.append(FileOp("move", path, new_path=new_path, hunks=hunks))
            else:
                ops.append(FileOp("update", path, hunks=hunks))
        else:
            raise parse_error(
                FMT,
                f"expected {ADD!r}, {UPDATE!r}, {DELETE!r} or {END!r}, got {stripped[:60]!r}",
                i + 1,
            )
    if not ops:
        raise parse_error(FMT, "the patch changes no file", begin + 1)
    return tuple(ops)


def _add_body(lines: list[str], i: int, end: int) -> tuple[int, str]:
    body: list[str] = []
    kept = 0  # blank lines after the last "+" line separate files: they are not content
    while i < end and not _is_file_marker(lines[i].strip()):
        line = lines[i]
        if line.startswith("+"):
            body.append(line[1:])
            kept = len(body)
        elif not line.strip():
            body.append("")  # a blank line whose "+" got lost
        else:
            raise parse_error(FMT, "every line of an added file must start with '+'", i + 1)
        i += 1
    return i, "".join(line + "\n" for line in body[:kept])


def _hunks(lines: list[str], i: int, end: int) -> tuple[int, tuple[Hunk, ...]]:
    hunks: list[Hunk] = []
    anchors: list[str] = []
    body: list[HunkLine] = []
    start = i

    def flush(stop: int, eof: bool = False) -> None:
        nonlocal body, anchors, start
        while body and body[-1] == HunkLine(" ", "") and lines[stop - 1] == "":
            body.pop()  # trailing blank separators, not context
            stop -= 1
        if body:
            source = "\n".join(lines[start:stop])
            hunks.append(
                Hunk(tuple(body), tuple(anchors), None, eof, source=source, source_line=start + 1)
            )
        elif anchors or eof:
            raise parse_error(FMT, "a hunk without lines", start + 1)
        body, anchors, start = [], [], stop

    while i < end:
        line = lines[i]
        stripped = line.strip()
        if _is_file_marker(stripped):
            break
        if line.lstrip().startswith("@@"):
            if body:
                flush(i)
            anchor = stripped[2:].strip()
            if anchor.endswith("@@"):
                anchor = anchor[:-2].strip()
            if anchor:
                anchors.append(anchor)
        elif stripped == EOF_MARK:
            flush(i + 1, eof=True)
        else:
            parsed = hunk_line(line)
            body.append(parsed if parsed is not None else HunkLine(" ", line))
        i += 1
    flush(i)
    return i, tuple(hunks)
