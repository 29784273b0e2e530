"""What a route handler sees (ApiRequest) and gives back (ApiResponse, or a Deferred of one).

Handlers never touch twisted's Request, except the SSE route, which takes the connection over
(`ApiRequest.raw`). Keeping the rest on plain data makes them easy to read and to test."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from adapters.web.errors import ApiError, invalid

# twisted.web.server.Request, which is untyped: Any keeps mypy --strict quiet at every call.
TwistedRequest = Any


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: `how` is bearer | hmac | cookie | open | slack."""

    how: str

    @property
    def authenticated(self) -> bool:
        return self.how != "open"


@dataclass(slots=True)
class ApiRequest:
    method: str
    path: str
    params: dict[str, str]  # from the route pattern, e.g. {"id": "..."}
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    client_ip: str
    request_id: str
    raw: TwistedRequest = field(repr=False)
    principal: Principal = field(default_factory=lambda: Principal("open"))

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise invalid(name, "given more than once")
        return values[0]

    def int_arg(self, name: str, default: int, lo: int, hi: int) -> int:
        text = self.arg(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise invalid(name, f"expected an integer, got {text[:40]!r}") from None
        if not lo <= value <= hi:
            raise invalid(name, f"must be between {lo} and {hi}, got {value}")
        return value

    def json_body(self) -> dict[str, Any]:
        if not self.body.strip():
            raise ApiError(400, "invalid", "the body is empty; send a JSON object")
        try:
            parsed = json.loads(self.body)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, "invalid", f"the body is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "invalid", "the body must be a JSON object")
        where = lone_surrogate(parsed)
        if where is not None:
            raise invalid(
                where,
                "contains a lone UTF-16 surrogate (an escape like \\ud800 without its pair); "
                "send valid Unicode text",
            )
        return parsed


def lone_surrogate(value: Any, where: str = "") -> str | None:
    """The field path (`files[0].path`) of the first string, key included, that JSON's
    `\\udXXX` escapes made into text no encoder accepts; None when every string is valid.
    Iterative: a deep body must not hit the recursion limit."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        here, item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _has_surrogate(item):
                return here or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{here}.{key}" if here else str(key)
                if not key.isascii() and _has_surrogate(key):
                    return name.encode("utf-8", "backslashreplace").decode("utf-8")
                stack.append((name, child))
        elif isinstance(item, list):
            stack.extend((f"{here}[{i}]", child) for i, child in enumerate(item))
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass(slots=True)
class ApiResponse:
    status: int
    body: Any  # JSON-able, or bytes with an explicit content type
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return dumps(self.body)


def ok(body: Any, status: int = 200) -> ApiResponse:
    return ApiResponse(status, body)


def _default(value: Any) -> Any:
    # Event data is msgpack: datetimes, bytes and enums appear; JSON gets readable forms.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dumps(value: Any) -> bytes:
    text = json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"))
    # A file name that is not UTF-8 on disk reaches us as surrogate escapes; as `\udcXX`
    # JSON escapes it stays readable instead of failing the whole answer.
    return text.encode("utf-8", "backslashreplace")
