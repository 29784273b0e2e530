"""The one error shape of the API (SPEC §4): ``{"error": {"code", "message", "details"}}``.

Routes raise ApiError; the router turns it (and anything unexpected) into that shape, so no
answer ever carries a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.ledger.records import ErrorCode

# FlowError / rejected-outcome codes -> HTTP status. `sandbox` is 403: the path is forbidden
# (outside, excluded, symlinked away), which no rewording of the patch can fix.
FLOW_STATUS: Mapping[str, int] = {
    "invalid": 422,
    "does_not_apply": 422,
    "conflict": 409,
    "sandbox": 403,
    "not_found": 404,
    "busy": 503,
}
# A FlowError raised before any patch exists ("several workspaces: say which") is a bad request.
FLOW_STATUS_SYNC: Mapping[str, int] = {**FLOW_STATUS, "invalid": 400}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})  # top-level fields next to "error" (a patch outcome)

    def body(self) -> dict[str, Any]:
        return {
            **self.extra,
            "error": {"code": self.code, "message": self.message, "details": self.details},
        }


def invalid(field: str, problem: str) -> ApiError:
    """400 naming the offending field, so that the caller can fix exactly that."""
    return ApiError(400, "invalid", f"{field}: {problem}", {"field": field})


def flow_error(code: ErrorCode, message: str, details: Mapping[str, Any]) -> ApiError:
    return ApiError(FLOW_STATUS_SYNC.get(code, 400), code, message, details)
