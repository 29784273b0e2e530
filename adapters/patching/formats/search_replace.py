"""SEARCH/REPLACE blocks (aider style):

    path/to/file.py
    ```python
    <<<<<<< SEARCH
    old lines
    =======
    new lines
    >>>>>>> REPLACE
    ```

The path is the nearest non-blank, non-fence line before the block (decorations such as
backticks, `#`, `*` or a trailing colon are dropped); a block without one belongs to the
previous block's file. 5 to 9 marker characters are accepted. An empty SEARCH creates the file
(it must not exist). Blocks for one file apply in order, each on the previous one's result.
"""

from __future__ import annotations

import re

from adapters.patching.formats.common import parse_error
from adapters.patching.model import FileOp, Hunk, HunkLine
from adapters.patching.text import patch_lines

FMT = "search_replace"
_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def has_blocks(text: str) -> bool:
    return any(_SEARCH.match(line) for line in patch_lines(text))


def parse_search_replace(text: str) -> tuple[FileOp, ...]:
    lines = patch_lines(text)
    ops: list[FileOp] = []
    last_path: str | None = None
    after_last = 0
    i = 0
    while i < len(lines):
        if _REPLACE.match(lines[i]):
            raise parse_error(FMT, f"{lines[i].strip()!r} without '<<<<<<< SEARCH'", i + 1)
        if not _SEARCH.match(lines[i]):
            i += 1
            continue
        path = _path_before(lines, after_last, i) or last_path
        if path is None:
            raise parse_error(FMT, "no file path before '<<<<<<< SEARCH'", i + 1)
        divider = _find(lines, i + 1, _DIVIDER, "'======='", i + 1)
        end = _find(lines, divider + 1, _REPLACE, "'>>>>>>> REPLACE'", i + 1)
        search, replace = lines[i + 1 : divider], lines[divider + 1 : end]
        source = "\n".join(lines[i : end + 1])
        if not any(line.strip() for line in search):
            ops.append(FileOp("add", path, content="".join(r + "\n" for r in replace)))
        else:
            body = tuple(HunkLine("-", s) for s in search) + tuple(
                HunkLine("+", r) for r in replace
            )
            hunk = Hunk(body, source=source, source_line=i + 1)
            if ops and ops[-1].action == "update" and ops[-1].path == path:
                previous = ops.pop()
                ops.append(FileOp("update", path, hunks=(*previous.hunks, hunk), sequential=True))
            else:
                ops.append(FileOp("update", path, hunks=(hunk,), sequential=True))
        last_path, after_last, i = path, end + 1, end + 1
    if not ops:
        raise parse_error(FMT, "no '<<<<<<< SEARCH' block found", 1)
    return tuple(ops)


def _find(lines: list[str], start: int, marker: re.Pattern[str], name: str, block: int) -> int:
    for j in range(start, len(lines)):
        if marker.match(lines[j]):
            return j
        if _SEARCH.match(lines[j]):
            raise parse_error(
                FMT, f"expected {name} before the next SEARCH (block of line {block})", j + 1
            )
    raise parse_error(FMT, f"expected {name} to close the block of line {block}", len(lines))


def _path_before(lines: list[str], lo: int, hi: int) -> str | None:
    for j in range(hi - 1, lo - 1, -1):
        raw = lines[j].strip()
        if not raw:
            continue
        if _FENCE.match(raw):
            info = raw.lstrip("`~").strip()
            if "/" in info or ("." in info and " " not in info):
                return _clean(info.split(":", 1)[-1])  # ```python:src/app.py or ```src/app.py
            continue
        return _clean(raw)
    return None


def _clean(raw: str) -> str | None:
    text = raw.strip().strip("`*#").strip().rstrip(":").strip().strip("`*'\"")
    if text and not any(c.isspace() for c in text):
        return text
    tokens = [t.strip("`*'\":,") for t in text.split()]
    pathlike = [t for t in tokens if "/" in t or "." in t.strip(".")]
    return pathlike[-1] if pathlike else None
