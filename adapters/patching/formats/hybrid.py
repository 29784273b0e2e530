"""The seed's legacy hybrid block, accepted as is:
`{"target_file": "a.py", "patch": {"pattern": "...", "replacement": "...", "regex": false,
"count": 0}}`. See replacing.py for how it applies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.patching.formats.common import parse_error
from adapters.patching.model import FileOp, TextReplace

FMT = "hybrid"


def parse_hybrid(body: Mapping[str, Any]) -> tuple[FileOp, ...]:
    target, block = body.get("target_file"), body.get("patch")
    if not isinstance(target, str) or not target:
        raise parse_error(FMT, "'target_file' must be a non-empty string")
    if not isinstance(block, Mapping):
        raise parse_error(FMT, "'patch' must be an object {pattern, replacement}")
    pattern, replacement = block.get("pattern"), block.get("replacement", "")
    is_regex, count = block.get("regex", False), block.get("count", 0)
    if not isinstance(pattern, str) or not pattern:
        raise parse_error(FMT, "'patch.pattern' must be a non-empty string")
    if not isinstance(replacement, str):
        raise parse_error(FMT, "'patch.replacement' must be a string (empty deletes)")
    if not isinstance(is_regex, bool):
        raise parse_error(FMT, "'patch.regex' must be true or false")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise parse_error(FMT, "'patch.count' must be an integer >= 0 (0 = every occurrence)")
    return (FileOp("update", target, replace=TextReplace(pattern, replacement, is_regex, count)),)
