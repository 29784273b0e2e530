"""The `/ghost <sub>` slash command: verify Slack's signature, parse the form body, and answer
later through `response_url` when the work takes longer than Slack's 3 s.

What each subcommand does and says is in `replies.py`; the node's side is the `NodeControl`
Protocol there, which the lead wires to the actors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from adapters.slack.sender import NETWORK_ERRORS, SDK_LOG

if TYPE_CHECKING:
    from slack_sdk.signature import SignatureVerifier

MAX_BODY_BYTES = 16 * 1024  # Slack's form posts are a few hundred bytes


class SlackRequestRejected(Exception):
    """The request is not from Slack (401) or is not a slash command (400). `reason` is for
    the log; the HTTP answer should stay generic."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SlashCommand:
    sub: str  # lower-cased first word of the text; "help" when the text is empty
    args: tuple[str, ...]
    text: str
    user_id: str
    user_name: str
    channel_id: str
    team_id: str
    response_url: str
    trigger_id: str
    command: str = "/ghost"

    @property
    def actor(self) -> str:
        """Who did it, for the events the actions record."""
        return f"slack:{self.user_name or self.user_id or 'unknown'}"


def _signature_verifier(signing_secret: str, now: Callable[[], float]) -> SignatureVerifier:
    """slack_sdk's verifier on our clock; the SDK is imported here, when slash commands are
    configured, not by every node that imports this module."""
    from slack_sdk.signature import Clock, SignatureVerifier

    class CallableClock(Clock):
        def now(self) -> float:
            return now()

    return SignatureVerifier(signing_secret, clock=CallableClock())


# Remembers an accepted signature (with the timestamp it was signed at); raises
# SlackRequestRejected when it was seen before (or cannot be remembered).
RememberSignature = Callable[[str, float], None]


class SlashCommandVerifier:
    """Slack's v0 HMAC over "v0:<timestamp>:<body>", a `window_s` freshness window, and a
    memory of signatures seen within the window so a captured request cannot be replayed.

    `remember`: where accepted signatures go. The node passes its persistent signature memory
    (the one HMAC webhook calls use), so that neither a restart of the web actor nor of the
    node forgets them; by default an in-process memory."""

    def __init__(
        self,
        signing_secret: str,
        clock: Callable[[], float] = time.time,
        window_s: float = 300,
        remember: RememberSignature | None = None,
    ) -> None:
        self._clock = clock
        self._window_s = window_s
        self._verifier = _signature_verifier(signing_secret, clock)
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()  # the web layer may verify from several threads
        self._remember = remember or self._remember_in_process

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Return if the request is Slack's and fresh, else raise SlackRequestRejected(401)."""
        lower = {k.lower(): v for k, v in headers.items()}
        timestamp = lower.get("x-slack-request-timestamp")
        signature = lower.get("x-slack-signature")
        if not timestamp or not signature:
            raise SlackRequestRejected(401, "missing Slack signature headers")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise SlackRequestRejected(401, "malformed Slack timestamp") from None
        now = self._clock()
        if abs(now - sent_at) > self._window_s:
            raise SlackRequestRejected(401, "Slack timestamp outside the allowed window")
        if not self._verifier.is_valid(body, timestamp, signature):
            raise SlackRequestRejected(401, "bad Slack signature")
        self._remember(signature, float(sent_at))

    def _remember_in_process(self, signature: str, sent_at: float) -> None:
        # Kept until the signature's own timestamp leaves the window (it may be ahead of us).
        now = self._clock()
        with self._lock:
            self._seen = {s: t for s, t in self._seen.items() if now - t <= self._window_s}
            if signature in self._seen:
                raise SlackRequestRejected(401, "replayed Slack request")
            self._seen[signature] = max(now, sent_at)


def parse_command(body: bytes) -> SlashCommand:
    """The form Slack posts (application/x-www-form-urlencoded) as a SlashCommand."""
    if len(body) > MAX_BODY_BYTES:
        raise SlackRequestRejected(400, "slash command body too large")
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise SlackRequestRejected(400, "malformed slash command body") from None

    def field(name: str) -> str:
        values = form.get(name)
        return values[0] if values else ""

    if field("ssl_check") == "1":
        # Slack checking the certificate of the tunnel's URL: answer 200, do nothing.
        return SlashCommand("ssl_check", (), "", "", "", "", "", "", "", "")
    if not field("command"):
        raise SlackRequestRejected(400, "not a slash command (no command field)")
    text = field("text").strip()
    words = text.split()
    return SlashCommand(
        sub=words[0].lower() if words else "help",
        args=tuple(words[1:]),
        text=text,
        user_id=field("user_id"),
        user_name=field("user_name"),
        channel_id=field("channel_id"),
        team_id=field("team_id"),
        response_url=field("response_url"),
        trigger_id=field("trigger_id"),
        command=field("command"),
    )


def respond_later(
    response_url: str,
    payload: Mapping[str, Any],
    timeout_s: int = 10,
    allowed_prefixes: Sequence[str] = ("https://hooks.slack.com/",),
) -> bool:
    """Post a delayed answer to the command's response_url; True when Slack took it.

    Only URLs under `allowed_prefixes` are called: the URL comes from a request body, and a
    node that posts wherever a body says is a server-side request forgery waiting to happen.
    """
    if not any(response_url.startswith(prefix) for prefix in allowed_prefixes):
        return False
    from slack_sdk.webhook import WebhookClient  # only when there is an answer to post

    client = WebhookClient(response_url, timeout=timeout_s, retry_handlers=[], logger=SDK_LOG)
    try:
        response = client.send_dict(dict(payload))
    except NETWORK_ERRORS:
        return False
    return response.status_code == 200
