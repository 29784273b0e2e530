from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import pytest

from adapters.slack.commands import (
    SlackRequestRejected,
    SlashCommand,
    SlashCommandVerifier,
    parse_command,
    respond_later,
)
from adapters.slack.replies import SLOW_SUBCOMMANDS, ControlError, ack_reply, answer
from tests.adapters.slack.fake_slack import FakeSlack, Reply

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000


def form(text: str, **extra: str) -> bytes:
    fields = {
        "token": "legacy",
        "team_id": "T1",
        "channel_id": "C1",
        "user_id": "U1",
        "user_name": "ada",
        "command": "/ghost",
        "text": text,
        "response_url": "https://hooks.slack.com/commands/T1/1/abc",
        "trigger_id": "1.2.3",
        **extra,
    }
    return urlencode(fields).encode()


def signed(body: bytes, ts: int = NOW, secret: str = SECRET) -> dict[str, str]:
    base = f"v0:{ts}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(clock: Clock) -> SlashCommandVerifier:
    return SlashCommandVerifier(SECRET, clock=clock)


def rejected(verifier: SlashCommandVerifier, body: bytes, headers: Mapping[str, str]) -> str:
    with pytest.raises(SlackRequestRejected) as info:
        verifier.verify(body, headers)
    assert info.value.status == 401
    return info.value.reason


def test_valid_signature_passes(verifier: SlashCommandVerifier, clock: Clock) -> None:
    body = form("status")
    verifier.verify(body, signed(body))
    clock.now += 299  # still within the window, a different request
    other = form("patches")
    verifier.verify(other, {k.lower(): v for k, v in signed(other, NOW + 290).items()})


def test_bad_signature_is_refused(verifier: SlashCommandVerifier) -> None:
    body = form("approve p1")
    assert "bad" in rejected(verifier, body, signed(body, secret="other-secret"))
    assert "bad" in rejected(verifier, form("approve p2"), signed(body))  # tampered body
    assert "missing" in rejected(verifier, body, {})
    headers = {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}
    assert "malformed" in rejected(verifier, body, headers)


def test_expired_and_future_timestamps_are_refused(
    verifier: SlashCommandVerifier, clock: Clock
) -> None:
    body = form("status")
    headers = signed(body)
    clock.now = NOW + 301
    assert "window" in rejected(verifier, body, headers)
    clock.now = NOW - 301
    assert "window" in rejected(verifier, body, headers)


def test_replays_are_refused(verifier: SlashCommandVerifier, clock: Clock) -> None:
    body = form("rollback p1")
    headers = signed(body)
    verifier.verify(body, headers)
    clock.now += 5
    assert "replayed" in rejected(verifier, body, headers)
    # a captured request replayed once it is old fails on its timestamp
    clock.now = NOW + 600
    assert "window" in rejected(verifier, body, headers)


@pytest.mark.parametrize(
    ("text", "sub", "args"),
    [
        ("status", "status", ()),
        ("patches", "patches", ()),
        ("show p-1", "show", ("p-1",)),
        ("approve abc123", "approve", ("abc123",)),
        ("REJECT abc123", "reject", ("abc123",)),
        ("rollback  abc123 ", "rollback", ("abc123",)),
        ("pause", "pause", ()),
        ("resume", "resume", ()),
        ("restart watcher.main", "restart", ("watcher.main",)),
        ("tunnel", "tunnel", ()),
        ("help", "help", ()),
        ("", "help", ()),
        ("frobnicate now", "frobnicate", ("now",)),
    ],
)
def test_parse(text: str, sub: str, args: tuple[str, ...]) -> None:
    command = parse_command(form(text))
    assert (command.sub, command.args) == (sub, args)
    assert (command.user_id, command.user_name, command.channel_id) == ("U1", "ada", "C1")
    assert command.response_url.startswith("https://hooks.slack.com/")
    assert command.command == "/ghost"
    assert command.actor == "slack:ada"


def test_parse_refuses_what_is_not_a_slash_command() -> None:
    for body in (b"\xff\xfe", urlencode({"text": "status"}).encode(), b"a=" + b"x" * 20_000):
        with pytest.raises(SlackRequestRejected) as info:
            parse_command(body)
        assert info.value.status == 400


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def status(self) -> Mapping[str, Any]:
        actors = {"watcher.main": {"state": "running", "restarts": 1}}
        return {"status": "ok", "paused": True, "position": 42, "actors": actors}

    def patches(self, limit: int) -> Sequence[Mapping[str, Any]]:
        return [{"patch_id": "p1", "status": "applied", "workspace": "main", "description": "x"}]

    def patch(self, patch_id: str) -> Mapping[str, Any]:
        if patch_id != "p1":
            raise ControlError("not_found", f"no patch {patch_id}")
        diff = "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-a\n+b\n"
        return {"patch_id": "p1", "status": "applied", "files": [{"path": "a.py"}], "diff": diff}

    def _act(self, *call: str) -> Mapping[str, Any]:
        self.calls.append(call)
        return {"status": "done"}

    def approve(self, patch_id: str, by: str) -> Mapping[str, Any]:
        return self._act("approve", patch_id, by)

    def reject(self, patch_id: str, by: str) -> Mapping[str, Any]:
        return self._act("reject", patch_id, by)

    def rollback(self, patch_id: str, by: str) -> Mapping[str, Any]:
        raise ControlError("conflict", "a.py changed since the patch; use the dashboard to force")

    def pause(self, by: str) -> Mapping[str, Any]:
        return self._act("pause", by)

    def resume(self, by: str) -> Mapping[str, Any]:
        return self._act("resume", by)

    def restart_actor(self, name: str, by: str) -> Mapping[str, Any]:
        self.calls.append(("restart", name, by))
        return {"state": "restarting"}

    def tunnels(self) -> Sequence[Mapping[str, Any]]:
        return [{"name": "cf", "state": "up", "url": "https://x.trycloudflare.com"}]


def reply(text: str, control: FakeControl | None = None) -> tuple[dict[str, Any], str]:
    payload = answer(parse_command(form(text)), control or FakeControl())
    assert payload["response_type"] == "ephemeral"
    return payload, json.dumps(payload)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status", ["Node *ok* (paused), event #42", "`watcher.main` running, 1 restarts"]),
        ("patches", ["`p1` *applied* in `main`: x"]),
        ("show p1", ["Patch `p1` *applied*", "`a.py` +1 -1", "```--- a/a.py"]),
        ("show p2", [":warning: no patch p2"]),
        ("approve p1", ["Approve `p1` done: now *done*"]),
        ("reject p1", ["Reject `p1` done"]),
        ("rollback p1", [":warning: a.py changed since the patch"]),
        ("pause", ["Paused"]),
        ("resume", ["Resumed"]),
        ("restart watcher.main", ["Restarting `watcher.main` (restarting)"]),
        ("tunnel", ["`cf` *up* https://x.trycloudflare.com"]),
        ("help", ["/ghost approve ID", "/ghost restart ACTOR"]),
        ("", ["ghost-runner commands"]),
        ("aprove p1", ["Unknown command `aprove`", "Did you mean `/ghost approve ID`?"]),
        ("approve", ["Usage: `/ghost approve ID`"]),
        ("status now", ["Usage: `/ghost status`"]),
        ("show ../../etc", ["Usage: `/ghost show ID`"]),
    ],
)
def test_answers(text: str, expected: list[str]) -> None:
    _, dumped = reply(text)
    for fragment in expected:
        assert fragment in dumped


def test_actions_say_who_did_them() -> None:
    control = FakeControl()
    for text in ("approve p1", "reject p1", "pause", "resume", "restart patch.main"):
        reply(text, control)
    assert control.calls == [
        ("approve", "p1", "slack:ada"),
        ("reject", "p1", "slack:ada"),
        ("pause", "slack:ada"),
        ("resume", "slack:ada"),
        ("restart", "patch.main", "slack:ada"),
    ]


def test_unknown_subcommand_text_is_escaped() -> None:
    _, dumped = reply("<!channel>")
    assert "<!channel>" not in dumped
    assert "&lt;!channel&gt;" in dumped


def test_slow_subcommands_get_an_ack() -> None:
    command = parse_command(form("approve p1"))
    assert command.sub in SLOW_SUBCOMMANDS
    assert "Working on `approve` `p1`" in ack_reply(command)["text"]


def test_respond_later(slack: FakeSlack) -> None:
    url = slack.url + "/commands/T1/1/abc"
    payload = {"response_type": "ephemeral", "text": "done"}
    assert respond_later(url, payload, allowed_prefixes=[slack.url + "/commands/"])
    assert [(r.path, r.payload) for r in slack.accepted()] == [("/commands/T1/1/abc", payload)]
    # only Slack's own response URLs are called
    assert not respond_later(url, payload)
    assert not respond_later(
        "http://169.254.169.254/latest", payload, allowed_prefixes=["https://"]
    )
    slack.script(Reply(500, "oops"))
    assert not respond_later(url, payload, allowed_prefixes=[slack.url])
    assert len(slack.received) == 2


def test_respond_later_when_slack_is_unreachable(slack: FakeSlack) -> None:
    slack.stop()
    assert not respond_later(slack.url + "/x", {"text": "t"}, 1, allowed_prefixes=[slack.url])


def test_slash_command_is_a_plain_record() -> None:
    command = SlashCommand("status", (), "status", "U1", "", "C1", "T1", "", "")
    assert command.actor == "slack:U1"


def test_ssl_check_gets_an_empty_answer() -> None:
    command = parse_command(urlencode({"ssl_check": "1", "token": "x"}).encode())
    assert command.sub == "ssl_check"
    assert answer(command, FakeControl()) == {}


def test_help_ignores_extra_words() -> None:
    _, dumped = reply("help approve")
    assert "ghost-runner commands" in dumped
