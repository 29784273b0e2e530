"""POST /slack/commands: `/ghost <sub>` (SPEC §4). Verified with the Slack signing secret (v0
HMAC, 300 s window, replay memory); answered within Slack's 3 s: quick subcommands inline,
slow ones with an acknowledgement now and the result through response_url."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from adapters.slack.commands import (
    RememberSignature,
    SlackRequestRejected,
    SlashCommandVerifier,
    parse_command,
    respond_later,
)
from adapters.slack.replies import SLOW_SUBCOMMANDS, ack_reply, answer, check
from adapters.web.app import WebApp
from adapters.web.auth import SignatureMemory
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
        # The node's signature memory, journaled: outlives this actor and the process.
        verifier = SlashCommandVerifier(secret, remember=remembering_in(app.services.signatures))
        app.caches["slack_verifier"] = verifier
    return verifier


def remembering_in(
    signatures: SignatureMemory, clock: Callable[[], float] = time.time
) -> RememberSignature:
    """Slack signatures kept in the node's signature memory (prefixed: never confused with an
    HMAC signature), its refusals as SlackRequestRejected."""

    def remember(signature: str, sent_at: float) -> None:
        try:
            signatures.remember(f"slack:{signature}", clock(), sent_at)
        except ApiError as exc:
            reason = "replayed Slack request" if exc.status == 401 else exc.message
            raise SlackRequestRejected(exc.status, reason) from None

    return remember


def post_command(app: WebApp, req: ApiRequest) -> ApiResponse | Deferred[ApiResponse]:
    verifier = _verifier(app)
    if verifier is None:
        raise ApiError(404, "not_found", "Slack commands are not configured on this node")
    try:
        verifier.verify(req.body, req.headers)
        command = parse_command(req.body)
    except SlackRequestRejected as exc:
        log.info("slash command refused: %s", exc.reason)
        code = {401: "unauthorized", 503: "busy"}.get(exc.status, "invalid")
        message = "not a valid Slack slash command"
        if exc.status == 503:
            message = "cannot take slash commands right now; try again"
        raise ApiError(exc.status, code, message) from None
    control = ServiceControl(app)
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
