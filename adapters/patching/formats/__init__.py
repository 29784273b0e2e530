"""Patch formats: detection and parsing of a POST /webhook body (SPEC §4) into a ParsedPatch."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapters.patching.formats.common import parse_error
from adapters.patching.formats.hybrid import parse_hybrid
from adapters.patching.formats.search_replace import has_blocks, parse_search_replace
from adapters.patching.formats.unified import parse_unified
from adapters.patching.formats.v4a import BEGIN, parse_v4a
from adapters.patching.formats.whole_files import parse_files
from adapters.patching.model import FORMATS, Format, ParsedPatch

__all__ = ["detect_format", "parse_body", "parse_text"]

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_UNIFIED = re.compile(r"^(diff --git |--- \S|\+\+\+ \S|@@ -\d)", re.MULTILINE)


def detect_format(body: Mapping[str, Any]) -> Format:
    """The format of a body without `format`: hybrid when `target_file` and a `patch` object,
    files when `files`, else by the patch text: V4A markers, SEARCH blocks, diff headers."""
    patch = body.get("patch")
    if isinstance(patch, Mapping) or "target_file" in body:
        return "hybrid"
    if "files" in body and patch is None:
        return "files"
    if not isinstance(patch, str) or not patch.strip():
        raise parse_error("detect", "no 'patch' text, 'files' list or hybrid block in the body")
    if BEGIN in patch:
        return "v4a"
    if has_blocks(patch):
        return "search_replace"
    if _UNIFIED.search(patch):
        return "unified"
    raise parse_error(
        "detect",
        "cannot tell the patch format: expected '*** Begin Patch' (v4a), '<<<<<<< SEARCH' "
        "blocks or a unified diff ('--- a/path', '+++ b/path', '@@ ... @@'); or set 'format'",
    )


def parse_text(fmt: Format, text: str) -> ParsedPatch:
    parsers = {"v4a": parse_v4a, "unified": parse_unified, "search_replace": parse_search_replace}
    return ParsedPatch(fmt, parsers[fmt](text))


def parse_body(body: Mapping[str, Any]) -> ParsedPatch:
    """Raises PatchParseError (answer 400/422 'invalid') with what was expected and where."""
    fmt = body.get("format")
    if fmt is None:
        fmt = detect_format(body)
    elif fmt not in FORMATS:
        raise parse_error("body", f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    base = _base(body.get("base"))
    if fmt == "files":
        ops = parse_files(body.get("files"))
    elif fmt == "hybrid":
        ops = parse_hybrid(body)
    else:
        patch = body.get("patch")
        if not isinstance(patch, str):
            raise parse_error(fmt, "'patch' must be a string")
        ops = parse_text(fmt, patch).ops
    return ParsedPatch(fmt, ops, base)


def _base(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise parse_error("body", "'base' must be an object {path: sha256 hex}")
    out: dict[str, str] = {}
    for path, digest in raw.items():
        if not isinstance(path, str) or not isinstance(digest, str) or not _SHA256.match(digest):
            raise parse_error("body", f"base[{path!r}] must be a 64-digit sha256 hex string")
        out[path] = digest.lower()
    return out
