"""Slack: notifications that are never lost (render, send, outbox) and the `/ghost` slash
command (verify, parse, answer). Everything here is synchronous and blocking; the actors call
it from their own threads, never from the reactor thread.

Modules: `message` (SlackMessage, Block Kit helpers), `diffstat`, `render` (events -> messages),
`sender` (webhook / bot / null), `outbox` (at-least-once delivery with a checkpoint),
`commands` (signature, parsing, response_url), `replies` (NodeControl and the answers).
"""

from adapters.slack.commands import (
    SlackRequestRejected,
    SlashCommand,
    SlashCommandVerifier,
    parse_command,
    respond_later,
)
from adapters.slack.message import SlackMessage
from adapters.slack.outbox import SlackOutbox, StepResult
from adapters.slack.render import CANDIDATE_TYPES, CrashLoopAlerts, Renderer, render_event
from adapters.slack.replies import (
    SLOW_SUBCOMMANDS,
    ControlError,
    NodeControl,
    ack_reply,
    answer,
    help_reply,
)
from adapters.slack.sender import (
    BotSender,
    NullSender,
    SlackSender,
    SlackSendError,
    WebhookSender,
    sender_from_env,
)

__all__ = [
    "CANDIDATE_TYPES",
    "SLOW_SUBCOMMANDS",
    "BotSender",
    "ControlError",
    "CrashLoopAlerts",
    "NodeControl",
    "NullSender",
    "Renderer",
    "SlackMessage",
    "SlackOutbox",
    "SlackRequestRejected",
    "SlackSendError",
    "SlackSender",
    "SlashCommand",
    "SlashCommandVerifier",
    "StepResult",
    "WebhookSender",
    "ack_reply",
    "answer",
    "help_reply",
    "parse_command",
    "render_event",
    "respond_later",
    "sender_from_env",
]
