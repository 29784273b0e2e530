"""An operation of the catalogue called from a thread that is not the reactor's (Slack's
`/ghost` commands run in the thread pool): the same input check and the same handler as over
HTTP, run on the reactor, waited for here. Its errors are the ApiErrors the HTTP door gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import maybeDeferred

from adapters.operations import schema
from adapters.operations.catalogue import BY_NAME
from adapters.operations.model import Call
from adapters.web.app import WebApp
from adapters.web.http import ApiResponse


def invoke(
    app: WebApp, name: str, args: Mapping[str, Any], by: str, wait_s: float | None = None
) -> ApiResponse:
    """Blocks: never call it from the reactor thread."""
    op = BY_NAME[name]
    checked = {k: v for k, v in args.items() if v is not None}
    schema.check(op.input, checked)
    call = Call(checked, by=by, meta={"via": by}, wait_s=wait_s)
    run: Any = maybeDeferred  # overloaded in twisted's stubs
    response: ApiResponse = threads.blockingCallFromThread(app.reactor, run, op.handler, app, call)
    return response
