"""POST /webhook (and POST /patch, the same for local tools): a command from GPT (SPEC §4).

The patch goes to its workspace's PatchActor through PatchService, which names it at once; the
answer waits for the outcome up to `wait_s` without blocking the reactor, then says `queued`
(202) with the id to poll."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred

from adapters.ledger.records import Decision, FlowError, command_from_body
from adapters.web.app import TIMED_OUT, WebApp
from adapters.web.errors import flow_error, invalid
from adapters.web.http import ApiRequest, ApiResponse
from adapters.web.routes.health import summary
from adapters.web.routes.outcomes import settle
from adapters.web.validation import check_body, patch_fields


def post_webhook(app: WebApp, req: ApiRequest) -> Deferred[ApiResponse] | ApiResponse:
    started = time.monotonic()
    body = req.json_body()
    command = check_body(body)
    wait_s = _wait_s(app, req, body)
    if command == "status":
        return summary(app).addCallback(lambda data: ApiResponse(200, data))
    by = f"api:{req.principal.how}"
    meta = {"request_id": req.request_id, "auth": req.principal.how}
    if command == "run_tests":
        return _run_tests(app, body, by, meta, wait_s)

    def answered(done: Any, pid: str, submitted: bool) -> ApiResponse:
        try:
            return settle(app, pid, done, submitted)
        finally:
            app.metrics.webhook_latency.labels(command).observe(time.monotonic() - started)

    if command == "rollback":
        pid = str(body["patch_id"])
        # decide() reads the patch's stream: a store read, so off the reactor thread.
        decided = app.in_thread(
            app.services.patches.decide,
            Decision.ROLLBACK,
            pid,
            by,
            force=bool(body.get("force") or False),
            dry_run=bool(body.get("dry_run") or False),
        )
        decided.addCallback(lambda future: app.wait_future(future, wait_s))
        return decided.addCallback(answered, pid, False)
    fields = patch_fields(body)
    fields.pop("command", None)
    try:
        workspace = app.services.patches.workspace_name(fields.get("workspace"))
    except FlowError as exc:
        raise flow_error(exc.error.code, exc.error.message, exc.error.details) from None
    pid, future = app.services.patches.submit(command_from_body(fields, workspace), meta)
    return app.wait_future(future, wait_s).addCallback(answered, pid, True)


def _run_tests(
    app: WebApp, body: dict[str, Any], by: str, meta: dict[str, Any], wait_s: float
) -> Deferred[ApiResponse]:
    """The workspace's tests as they are now: 200 {run_id, status, tests, position}; 202
    `queued` when they outlast wait_s (their TestsFinished lands in `tests-<workspace>`)."""
    try:
        workspace = app.services.patches.workspace_name(body.get("workspace"))
    except FlowError as exc:
        raise flow_error(exc.error.code, exc.error.message, exc.error.details) from None
    future = app.services.patches.run_tests(workspace, by, meta)

    def answered(done: Any) -> ApiResponse:
        if done is TIMED_OUT:
            return ApiResponse(202, {"status": "queued", "workspace": workspace})
        try:
            return ApiResponse(200, {"workspace": workspace, **done.result()})
        except FlowError as exc:
            raise flow_error(exc.error.code, exc.error.message, exc.error.details) from None

    return app.wait_future(future, wait_s).addCallback(answered)


def _wait_s(app: WebApp, req: ApiRequest, body: dict[str, Any]) -> float:
    """The body's or the query's wait_s; it may only lower the node's default."""
    value: Any = body.get("wait_s")
    text = req.arg("wait_s")
    if value is None and text is not None:
        try:
            value = float(text)
        except ValueError:
            raise invalid("wait_s", f"expected a number, got {text[:20]!r}") from None
        if not 0 <= value <= 3600:
            raise invalid("wait_s", "must be between 0 and 3600")
    if value is None:
        return app.config.wait_s
    return min(float(value), app.config.wait_s)
