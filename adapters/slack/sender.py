"""Deliver one message to Slack, or say precisely why not and whether trying again may help.

Both senders block (urllib under slack_sdk) and are meant for an actor's thread. The SDK's own
retry handlers are switched off: the outbox owns retries, so that every attempt, wait and
give-up is decided (and recorded) in one place.

Secrets: the webhook URL and the bot token never appear in a SlackSendError; messages are built
from status codes and Slack error codes, and anything else is scrubbed first.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from adapters.slack.message import SlackMessage, clip

if TYPE_CHECKING:
    from slack_sdk.errors import SlackApiError

# slack_sdk is imported by the senders themselves, when one is made: a node without Slack
# never loads it (about 4 MB of a resident node).
SLACK_API_URL = "https://slack.com/api/"  # slack_sdk.WebClient.BASE_URL

log = logging.getLogger(__name__)
# The SDK's clients log the webhook URL (a credential) at DEBUG, and only build that line when
# their logger's own level is DEBUG or lower; pinning theirs at INFO keeps it out even when the
# node runs with debug logging.
SDK_LOG = logging.getLogger("adapters.slack.sdk")
SDK_LOG.setLevel(logging.INFO)

# chat.postMessage errors worth another try; every other `ok: false` is permanent
# (invalid_auth, channel_not_found, not_in_channel, invalid_blocks, msg_too_long...).
_RETRYABLE_API_ERRORS = {
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
# Network-level trouble: refused, reset, timed out, truncated answers.
NETWORK_ERRORS = (OSError, http.client.HTTPException)


class SlackSendError(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after_s: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class SlackSender(Protocol):
    """`kind` names the delivery path in events ("webhook", "bot", "none"); `enabled` is False
    only for NullSender, which the outbox treats as "Slack is not configured"."""

    @property
    def kind(self) -> str: ...

    @property
    def enabled(self) -> bool: ...

    def send(self, message: SlackMessage) -> None:
        """Return once Slack accepted the message; raise SlackSendError otherwise."""
        ...


def parse_retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a Retry-After header (any case; a list value as the SDK sometimes gives)."""
    for key, value in (headers or {}).items():
        if str(key).lower() != "retry-after":
            continue
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        try:
            seconds = float(str(value).strip())
        except ValueError:  # the HTTP-date form: Slack does not send it; fall back to backoff
            return None
        return max(0.0, seconds)
    return None


def _scrub(text: str, *secrets: str) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return clip(text, 300)


def _http_error(status: int, body: str, headers: Mapping[str, Any] | None) -> SlackSendError:
    detail = f"HTTP {status}: {clip(body.strip(), 120)}"
    if status == 429:
        return SlackSendError(detail, retryable=True, retry_after_s=parse_retry_after(headers))
    return SlackSendError(detail, retryable=status >= 500 or status in (408, 425))


class WebhookSender:
    """An incoming webhook (`[slack] webhook_url_env`)."""

    kind = "webhook"
    enabled = True

    def __init__(self, url: str, timeout_s: int = 10) -> None:
        from slack_sdk.webhook import WebhookClient

        self._url = url
        self._client = WebhookClient(url, timeout=timeout_s, retry_handlers=[], logger=SDK_LOG)

    def __repr__(self) -> str:  # never the URL: it is the credential
        return "WebhookSender(url=[redacted])"

    def send(self, message: SlackMessage) -> None:
        try:
            response = self._client.send_dict(message.payload())
        except NETWORK_ERRORS as exc:
            raise SlackSendError(
                _scrub(f"{type(exc).__name__}: {exc}", self._url), retryable=True
            ) from None
        if response.status_code == 200 and response.body.strip() == "ok":
            return
        raise _http_error(response.status_code, response.body or "", response.headers)


class BotSender:
    """chat.postMessage with a bot token (`[slack] bot_token_env` + `channel`). `base_url` is
    Slack's API root; tests point it at a loopback server."""

    kind = "bot"
    enabled = True

    def __init__(
        self,
        token: str,
        channel: str,
        base_url: str = SLACK_API_URL,
        timeout_s: int = 10,
    ) -> None:
        from slack_sdk import WebClient

        self._token = token
        self.channel = channel
        self._client = WebClient(
            token, base_url=base_url, timeout=timeout_s, retry_handlers=[], logger=SDK_LOG
        )

    def __repr__(self) -> str:
        return f"BotSender(token=[redacted], channel={self.channel!r})"

    def send(self, message: SlackMessage) -> None:
        from slack_sdk.errors import SlackApiError, SlackClientError

        payload = message.payload()
        try:
            self._client.chat_postMessage(
                channel=self.channel, text=payload["text"], blocks=payload.get("blocks")
            )
        except SlackApiError as exc:
            raise self._api_error(exc) from None
        except (SlackClientError, *NETWORK_ERRORS) as exc:
            raise SlackSendError(
                _scrub(f"{type(exc).__name__}: {exc}", self._token), retryable=True
            ) from None

    def _api_error(self, exc: SlackApiError) -> SlackSendError:
        response = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        data = getattr(response, "data", None)
        code = str(data.get("error", "")) if isinstance(data, dict) else ""
        headers = getattr(response, "headers", None)
        if status == 429 or code in ("ratelimited", "rate_limited"):
            retry_after = parse_retry_after(headers)
            return SlackSendError(
                f"HTTP {status}: {code or 'rate limited'}",
                retryable=True,
                retry_after_s=retry_after,
            )
        if code:
            return SlackSendError(
                f"HTTP {status}: {code}", retryable=code in _RETRYABLE_API_ERRORS or status >= 500
            )
        body = data if isinstance(data, str) else ""
        return _http_error(status, _scrub(body, self._token), headers)


class NullSender:
    """Slack is not configured: the outbox sees `enabled = False`, says so once, and idles."""

    kind = "none"
    enabled = False

    def __init__(self, reason: str = "no [slack] section in the config") -> None:
        self.reason = reason

    def send(self, message: SlackMessage) -> None:
        raise SlackSendError(f"Slack is not configured: {self.reason}", retryable=False)


def sender_from_env(
    environ: Mapping[str, str],
    webhook_url_env: str | None = "SLACK_WEBHOOK_URL",
    bot_token_env: str | None = None,
    channel: str | None = None,
    timeout_s: int = 10,
) -> SlackSender:
    """The sender the `[slack]` config asks for, or a NullSender saying what is missing. Names
    the environment variable in the reason, never its value."""
    if bot_token_env:
        token = environ.get(bot_token_env, "").strip()
        if not token:
            return NullSender(f"environment variable {bot_token_env} is not set")
        if not channel:
            return NullSender("bot_token_env is set but channel is not")
        return BotSender(token, channel, timeout_s=timeout_s)
    if webhook_url_env:
        url = environ.get(webhook_url_env, "").strip()
        if not url:
            return NullSender(f"environment variable {webhook_url_env} is not set")
        return WebhookSender(url, timeout_s=timeout_s)
    return NullSender()
