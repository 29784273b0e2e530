"""Strict type checks of the POST /webhook body (SPEC §4), each failure a 400 naming the field.

Only shapes are checked here; what the patch text means is the patch engine's job (a patch
that parses but does not apply is a 422 from there)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from adapters.web.errors import invalid

COMMANDS = ("patch", "rollback", "run_tests", "status")
FORMATS = ("v4a", "unified", "search_replace", "files", "hybrid")
# Transport fields: how long to wait; never part of the patch (nor of its idempotency hash).
TRANSPORT_FIELDS = frozenset({"wait_s"})
MAX_ID = 200
MAX_TEXT = 10_000


def _str(limit: int | None = None) -> Callable[[str, Any], None]:
    def check(field: str, value: Any) -> None:
        if not isinstance(value, str):
            raise invalid(field, f"expected a string, got {_kind(value)}")
        if limit is not None and len(value) > limit:
            raise invalid(field, f"longer than {limit} characters")

    return check


def _bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise invalid(field, f"expected true or false, got {_kind(value)}")


def _enum(*choices: str) -> Callable[[str, Any], None]:
    def check(field: str, value: Any) -> None:
        if value not in choices:
            raise invalid(field, f"expected one of {', '.join(choices)}, got {_short(value)}")

    return check


def _number(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(field, f"expected a number, got {_kind(value)}")
    if not 0 <= value <= 3600:
        raise invalid(field, "must be between 0 and 3600")


def _patch(field: str, value: Any) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, Mapping):  # the legacy hybrid block {"pattern", "replacement", ...}
        allowed = {"pattern", "replacement", "regex", "count"}
        for key in value:
            if key not in allowed:
                raise invalid(
                    f"{field}.{key}", f"unknown key; expected {', '.join(sorted(allowed))}"
                )
        for key in ("pattern", "replacement"):
            if key in value:
                _str()(f"{field}.{key}", value[key])
        if "regex" in value:
            _bool(f"{field}.regex", value["regex"])
        count = value.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise invalid(f"{field}.count", f"expected an integer, got {_kind(count)}")
        return
    raise invalid(field, f"expected a string (or a hybrid object), got {_kind(value)}")


def _files(field: str, value: Any) -> None:
    if not isinstance(value, list):
        raise invalid(field, f"expected a list of {{path, content, delete}}, got {_kind(value)}")
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping):
            raise invalid(where, f"expected an object, got {_kind(item)}")
        for key in item:
            if key not in ("path", "content", "delete"):
                raise invalid(f"{where}.{key}", "unknown key; expected path, content, delete")
        if "path" not in item:
            raise invalid(f"{where}.path", "missing")
        _str(4096)(f"{where}.path", item["path"])
        if "content" in item and item["content"] is not None:
            _str()(f"{where}.content", item["content"])
        if "delete" in item:
            _bool(f"{where}.delete", item["delete"])


def _base(field: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise invalid(field, f"expected an object {{path: sha256}}, got {_kind(value)}")
    for key, digest in value.items():
        _str(64)(f"{field}[{key!r}]", digest)


FIELDS: Mapping[str, Callable[[str, Any], None]] = {
    "command": _enum(*COMMANDS),
    "id": _str(MAX_ID),
    "workspace": _str(64),
    "format": _enum(*FORMATS),
    "patch": _patch,
    "files": _files,
    "base": _base,
    "dry_run": _bool,
    "run_tests": _bool,
    "rollback_on_failure": _bool,
    "description": _str(MAX_TEXT),
    "author": _str(200),
    "wait_s": _number,
    "patch_id": _str(MAX_ID),
    "force": _bool,
    # the legacy hybrid block's own fields
    "role": _str(200),
    "target_file": _str(4096),
}


def check_body(body: Mapping[str, Any]) -> str:
    """Check every field's type; returns the command (default "patch")."""
    for key, value in body.items():
        check = FIELDS.get(key)
        if check is None:
            raise invalid(key, f"unknown field; expected one of {', '.join(FIELDS)}")
        if value is None and key not in ("command",):
            continue  # null = not given (models often send explicit nulls)
        check(key, value)
    command = body.get("command") or "patch"
    if command == "rollback" and not isinstance(body.get("patch_id"), str):
        raise invalid("patch_id", "required with command rollback")
    if command == "patch" and body.get("patch") is None and body.get("files") is None:
        raise invalid("patch", "missing: send 'patch' (text) or 'files'")
    return str(command)


def patch_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body as the patch engine and the idempotency hash see it: no transport fields, no
    nulls (so `"dry_run": null` and an absent dry_run are the same patch)."""
    return {k: v for k, v in body.items() if k not in TRANSPORT_FIELDS and v is not None}


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
