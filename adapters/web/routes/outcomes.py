"""Patch outcomes and FlowErrors as HTTP answers, shared by /webhook and /patches/{id}/..."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from adapters.ledger.records import FlowError, PatchOutcome
from adapters.ledger.status import PatchStatus
from adapters.web.app import TIMED_OUT, WebApp
from adapters.web.errors import FLOW_STATUS, ApiError, flow_error
from adapters.web.http import ApiResponse


def answer_outcome(app: WebApp, outcome: PatchOutcome, submitted: bool) -> ApiResponse:
    """200 with the outcome; 202 when queued; a rejected submission is the error shape with
    every outcome field next to it, so that the model sees each failing hunk at once."""
    body = outcome.as_json()
    app.metrics.patches.labels(outcome.status).inc()
    if submitted and outcome.status == PatchStatus.REJECTED and outcome.error is not None:
        error = outcome.error
        raise ApiError(
            FLOW_STATUS.get(error.code, 422),
            error.code,
            error.message,
            error.details,
            extra={k: v for k, v in body.items() if k != "error"},
        )
    return ApiResponse(202 if outcome.status == PatchStatus.QUEUED else 200, body)


def settle(app: WebApp, pid: str, done: Any, submitted: bool) -> ApiResponse:
    """What `wait_future` gave: TIMED_OUT -> 202 queued; else the Future's outcome/error."""
    if done is TIMED_OUT:
        app.metrics.patches.labels(PatchStatus.QUEUED).inc()
        return ApiResponse(
            202,
            {
                "patch_id": pid,
                "status": PatchStatus.QUEUED,
                "message": f"still in progress; GET /patches/{pid} tells the outcome",
            },
        )
    assert isinstance(done, Future)
    try:
        outcome = done.result()
    except FlowError as exc:
        raise flow_error(exc.error.code, exc.error.message, exc.error.details) from None
    return answer_outcome(app, outcome, submitted)
