"""The catalogue's operations as HTTP routes (SPEC §4): each HttpBinding becomes a Route whose
handler reads the operation's input (query string, path parameters, JSON body), checks it
against the operation's schema, and calls the operation's handler. POST /webhook (and POST
/patch, the same for local tools) dispatches by `command` to the operation it names."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred

from adapters.operations import schema
from adapters.operations.catalogue import BY_NAME, CATALOGUE, WEBHOOK_COMMANDS, webhook_input
from adapters.operations.model import Call, Operation
from adapters.web.app import WebApp
from adapters.web.dashboard.resource import dashboard_routes
from adapters.web.errors import invalid
from adapters.web.http import ApiRequest
from adapters.web.router import Route
from adapters.web.routes import health, openapi_route, slack

_WEBHOOK_INPUT = webhook_input()
_TRANSPORT = ("command", "wait_s")  # how to reach and wait for an operation; not its input


def operation_routes() -> list[Route]:
    return [
        Route(
            op.http.method,
            op.http.path,
            partial(_serve, op),
            auth=op.http.auth,
            loopback_only=op.http.loopback_only,
        )
        for op in CATALOGUE
        if op.http is not None
    ]


def webhook_routes() -> list[Route]:
    return [
        Route("POST", "/webhook", _serve_webhook),
        Route("POST", "/patch", _serve_webhook, loopback_only=True),
    ]


def _call(req: ApiRequest, args: dict[str, Any], wait_s: float | None = None) -> Call:
    return Call(
        args,
        by=f"api:{req.principal.how}",
        meta={"request_id": req.request_id, "auth": req.principal.how},
        wait_s=wait_s,
        request=req,
    )


def _serve(op: Operation, app: WebApp, req: ApiRequest) -> Any:
    assert op.http is not None
    given = {op.http.params.get(k, k): v for k, v in req.params.items()}
    if req.method in ("GET", "HEAD"):
        args = schema.from_query(op.input, req.query, given)
    else:
        body: dict[str, Any] = req.json_body() if req.body.strip() else {}
        args = {**{k: v for k, v in body.items() if v is not None}, **given}
        schema.check(op.input, {**body, **given})
    return op.handler(app, _call(req, args))


def _serve_webhook(app: WebApp, req: ApiRequest) -> Any:
    started = time.monotonic()
    body = req.json_body()
    schema.check(_WEBHOOK_INPUT, body)
    command = str(body.get("command") or "patch")
    op = BY_NAME[WEBHOOK_COMMANDS[command]]
    # nulls are "not given", so `"dry_run": null` and no dry_run are the same patch
    args = {k: v for k, v in body.items() if k not in _TRANSPORT and v is not None}
    required = {k: op.input[k] for k in ("required", "anyOf") if k in op.input}
    schema.check(required, args)
    answer = op.handler(app, _call(req, args, _wait_s(app, req, body)))
    if isinstance(answer, Deferred):

        def observed(result: Any) -> Any:
            app.metrics.webhook_latency.labels(command).observe(time.monotonic() - started)
            return result

        answer.addBoth(observed)
    return answer


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


def all_routes() -> list[Route]:
    """The table the router serves: the catalogue's operations, the webhook, and the routes
    that are transports of their own (metrics, the OpenAPI document, Slack, the dashboard)."""
    return [
        *webhook_routes(),
        *operation_routes(),
        Route("GET", "/metrics", health.get_metrics),
        Route("GET", "/openapi.json", openapi_route.get_openapi),
        Route("POST", "/slack/commands", slack.post_command, auth="slack"),
        *dashboard_routes(),
    ]
