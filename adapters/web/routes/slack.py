"""POST /slack/commands: `/ghost <sub>` (SPEC §4). Verified with the Slack signing secret (v0
HMAC, 300 s window, replay memory); answered within Slack's 3 s: quick subcommands inline,
slow ones with an acknowledgement now and the result through response_url."""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet.defer import Deferred

from adapters.slack.commands import (
    SlackRequestRejected,
    SlashCommandVerifier,
    parse_command,
    respond_later,
)
from adapters.slack.replies import SLOW_SUBCOMMANDS, ack_reply, answer, check
from adapters.web.app import WebApp
from adapters.web.control import ServiceControl
from adapters.web.errors import ApiError
from adapters.web.http import ApiRequest, ApiResponse

log = logging.getLogger("ghost.web.slack")
INLINE_TIMEOUT_S = 2.5


def _verifier(app: WebApp) -> SlashCommandVerifier | None:
    secret = app.services.slack_signing_secret
    if secret is None:
        return None
    verifier = app.caches.get("slack_verifier")
    if not isinstance(verifier, SlashCommandVerifier):
        verifier = SlashCommandVerifier(secret)
        app.caches["slack_verifier"] = verifier
    return verifier


def post_command(app: WebApp, req: ApiRequest) -> ApiResponse | Deferred[ApiResponse]:
    verifier = _verifier(app)
    if verifier is None:
        raise ApiError(404, "not_found", "Slack commands are not configured on this node")
    try:
        verifier.verify(req.body, req.headers)
        command = parse_command(req.body)
    except SlackRequestRejected as exc:
        log.info("slash command refused: %s", exc.reason)
        code = "unauthorized" if exc.status == 401 else "invalid"
        raise ApiError(exc.status, code, "not a valid Slack slash command") from None
    control = ServiceControl(app.services, app.index)
    if command.sub in SLOW_SUBCOMMANDS and check(command) is None:

        def later() -> None:
            reply = answer(command, control)
            if not respond_later(
                command.response_url, reply, allowed_prefixes=app.config.slack_response_prefixes
            ):
                log.warning("could not post the answer of /ghost %s to Slack", command.sub)

        app.in_thread(later).addErrback(lambda f: log.error("slash command: %s", f.value))
        return ApiResponse(200, ack_reply(command))

    def inline(reply: dict[str, Any]) -> ApiResponse:
        return ApiResponse(200, reply)

    d = app.in_thread(answer, command, control)
    d.addTimeout(INLINE_TIMEOUT_S, app.reactor)
    return d.addCallback(inline)
