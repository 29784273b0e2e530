"""Whole files: `files: [{"path": "a.py", "content": "...", "delete": false}]`.
A file is created or replaced with exactly `content` (see planner for CRLF files)."""

from __future__ import annotations

from typing import Any

from adapters.patching.formats.common import parse_error
from adapters.patching.model import FileOp

FMT = "files"


def parse_files(files: Any) -> tuple[FileOp, ...]:
    if not isinstance(files, list) or not files:
        raise parse_error(FMT, "'files' must be a non-empty list of {path, content, delete}")
    ops: list[FileOp] = []
    for n, entry in enumerate(files):
        where = f"files[{n}]"
        if not isinstance(entry, dict):
            raise parse_error(FMT, f"{where} must be an object")
        path, delete, content = entry.get("path"), entry.get("delete", False), entry.get("content")
        if not isinstance(path, str) or not path:
            raise parse_error(FMT, f"{where}.path must be a non-empty string")
        if not isinstance(delete, bool):
            raise parse_error(FMT, f"{where}.delete must be true or false")
        if delete:
            if content not in (None, ""):
                raise parse_error(FMT, f"{where}: 'delete': true with a content")
            ops.append(FileOp("delete", path))
        elif not isinstance(content, str):
            raise parse_error(FMT, f"{where}.content must be a string")
        else:
            ops.append(FileOp("write", path, content=content))
    return tuple(ops)
