"""What an operation is: one declaration from which the front doors take everything they need
(routing, input checks, the OpenAPI document, and the MCP tools of SPEC §8), and the call a
handler gets, whichever door it came through."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from adapters.web.app import WebApp
    from adapters.web.http import ApiRequest, ApiResponse


class Scope(StrEnum):
    """What a caller must be allowed to do (SPEC §9): read < patch < admin."""

    READ = "read"
    PATCH = "patch"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Call:
    """One call of an operation: its checked input, who asked (`by`, recorded in decisions),
    what goes into the events' meta, and the HTTP request when it came over HTTP (for what
    only that door has: a live event stream, Last-Event-ID)."""

    args: Mapping[str, Any]
    by: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    wait_s: float | None = None  # how long the caller waits for an outcome (None: the node's)
    request: ApiRequest | None = None


Handler = Callable[["WebApp", Call], "ApiResponse | Deferred[ApiResponse] | Any"]


@dataclass(frozen=True, slots=True)
class HttpBinding:
    """Where the operation is served over HTTP. `operation_id`: its name in /openapi.json (the
    GPT Action), None to leave it out of that document (the owner's decisions)."""

    method: str
    path: str
    operation_id: str | None = None
    responses: Mapping[str, str] = field(default_factory=dict)  # status -> when
    auth: str = "token"  # token | open (the handler looks at the principal)
    params: Mapping[str, str] = field(default_factory=dict)  # path parameter -> input field
    loopback_only: bool = False  # for tools on the node's machine (POST /patch, the token)


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    summary: str
    description: str
    input: Mapping[str, Any]  # a JSON Schema object: what `Call.args` holds once checked
    output: Mapping[str, Any]
    scope: Scope
    handler: Handler
    http: HttpBinding | None = None
    read_only: bool = False
    destructive: bool = False  # may undo or overwrite work
    idempotent: bool = False  # the same call twice has the effect of one

    @property
    def hints(self) -> dict[str, bool]:
        """The MCP tool annotations of SPEC §8."""
        return {
            "readOnlyHint": self.read_only,
            "destructiveHint": self.destructive,
            "idempotentHint": self.idempotent,
        }
