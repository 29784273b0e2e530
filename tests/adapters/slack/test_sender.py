from __future__ import annotations

import time

import pytest

from adapters.slack.message import SlackMessage
from adapters.slack.sender import (
    BotSender,
    NullSender,
    SlackSender,
    SlackSendError,
    WebhookSender,
    parse_retry_after,
    sender_from_env,
)
from tests.adapters.slack.fake_slack import FakeSlack, Reply

MESSAGE = SlackMessage(
    "hello", ({"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}},), "applied"
)
TOKEN = "xoxb-123-SECRET"


def senders(slack: FakeSlack) -> list[SlackSender]:
    return [
        WebhookSender(slack.webhook_url, timeout_s=1),
        BotSender(TOKEN, "C42", base_url=slack.api_url, timeout_s=1),
    ]


def send_error(sender: SlackSender) -> SlackSendError:
    with pytest.raises(SlackSendError) as info:
        sender.send(MESSAGE)
    return info.value


def test_webhook_delivers_text_and_blocks(slack: FakeSlack) -> None:
    WebhookSender(slack.webhook_url).send(MESSAGE)
    [got] = slack.accepted()
    assert got.path.startswith("/services/")
    assert got.payload == MESSAGE.payload()


def test_bot_posts_to_the_channel_with_the_token(slack: FakeSlack) -> None:
    BotSender(TOKEN, "C42", base_url=slack.api_url).send(MESSAGE)
    [got] = slack.accepted()
    assert got.path == "/api/chat.postMessage"
    assert got.payload["channel"] == "C42"
    assert got.payload["blocks"] == MESSAGE.payload()["blocks"]
    assert got.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("kind", ["webhook", "bot"])
def test_error_classification(slack: FakeSlack, kind: str) -> None:
    sender = next(s for s in senders(slack) if s.kind == kind)
    slack.script(
        Reply.rate_limited(7),
        Reply(500, "oops"),
        Reply(503, '{"ok": false, "error": "service_unavailable"}'),
        Reply.api_error("channel_not_found"),
        Reply(404, "no_service"),
        Reply(delay_s=1.5),  # longer than the 1 s timeout: a hang
    )
    limited = send_error(sender)
    assert (limited.retryable, limited.retry_after_s) == (True, 7.0)
    assert send_error(sender).retryable
    assert send_error(sender).retryable
    permanent = send_error(sender)
    assert not permanent.retryable
    if kind == "bot":
        assert "channel_not_found" in str(permanent)
    assert not send_error(sender).retryable
    started = time.monotonic()
    hung = send_error(sender)
    assert hung.retryable
    assert time.monotonic() - started < 1.4
    assert not slack.accepted()


def test_errors_never_carry_secrets(slack: FakeSlack) -> None:
    slack.stop()  # connection refused from here on
    for sender in senders(slack):
        error = send_error(sender)
        assert error.retryable
        assert "SECRET" not in str(error)
        assert "SECRET" not in repr(sender)


def test_retry_after_parsing() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"Retry-After": ["1.5"]}) == 1.5
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert parse_retry_after({"Retry-After": "-4"}) == 0.0
    assert parse_retry_after(None) is None


def test_sender_from_env() -> None:
    assert isinstance(sender_from_env({}), NullSender)
    off = sender_from_env({}, webhook_url_env="HOOK")
    assert not off.enabled
    assert "HOOK" in getattr(off, "reason", "")
    assert (
        sender_from_env({"HOOK": "http://x/services/1"}, webhook_url_env="HOOK").kind == "webhook"
    )
    bot = sender_from_env({"TOK": "xoxb-1"}, bot_token_env="TOK", channel="C1")
    assert bot.kind == "bot"
    assert bot.enabled
    assert not sender_from_env({"TOK": "xoxb-1"}, bot_token_env="TOK").enabled
    with pytest.raises(SlackSendError) as info:
        NullSender().send(MESSAGE)
    assert not info.value.retryable
