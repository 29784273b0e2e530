"""apply_patch and run_tests, the commands of POST /webhook that are not a decision (SPEC §4).

The patch goes to its workspace's PatchActor through the PatchPort, which names it at once; the
answer waits for the outcome up to `wait_s` without blocking the reactor, then says `queued`
(202) with the id to poll."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from adapters.ledger.records import FlowError, command_from_body
from adapters.ledger.status import PatchStatus
from adapters.operations.model import Call
from adapters.web.app import TIMED_OUT, WebApp
from adapters.web.errors import flow_error
from adapters.web.http import ApiResponse
from adapters.web.routes.outcomes import settle


def _workspace(app: WebApp, requested: Any) -> str:
    try:
        return app.services.patches.workspace_name(requested)
    except FlowError as exc:
        raise flow_error(exc.error.code, exc.error.message, exc.error.details) from None


def apply_patch(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    fields = dict(call.args)  # the body as the patch engine and the idempotency hash see it
    workspace = _workspace(app, fields.get("workspace"))
    pid, future = app.services.patches.submit(command_from_body(fields, workspace), call.meta)
    wait_s = app.config.wait_s if call.wait_s is None else call.wait_s
    return app.wait_future(future, wait_s).addCallback(
        lambda done: settle(app, pid, done, submitted=True)
    )


def run_tests(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    """The workspace's tests as they are now: 200 {run_id, status, tests, position}; 202
    `queued` when they outlast wait_s (their TestsFinished lands in `tests-<workspace>`)."""
    workspace = _workspace(app, call.args.get("workspace"))
    future = app.services.patches.run_tests(workspace, call.by, call.meta)

    def answered(done: Any) -> ApiResponse:
        if done is TIMED_OUT:
            return ApiResponse(202, {"status": PatchStatus.QUEUED, "workspace": workspace})
        try:
            return ApiResponse(200, {"workspace": workspace, **done.result()})
        except FlowError as exc:
            raise flow_error(exc.error.code, exc.error.message, exc.error.details) from None

    wait_s = app.config.wait_s if call.wait_s is None else call.wait_s
    return app.wait_future(future, wait_s).addCallback(answered)
