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
        return parsed


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
    return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":")).encode()
