from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import Any

import pytest

from adapters.slack.message import SlackMessage
from adapters.slack.outbox import SlackOutbox
from adapters.slack.render import Renderer
from adapters.slack.sender import BotSender, NullSender, SlackSender, WebhookSender
from eventstore import NewEvent, SQLiteEventStore
from eventstore.catalogue import EventType as T
from tests.adapters.slack.fake_slack import FakeSlack, Reply

STREAM = "notifier-slack"


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


def add(store: SQLiteEventStore, type: str, stream: str = "node", **data: Any) -> int:
    return store.append(stream, [NewEvent(type=type, data=data)])[0]


def add_patches(store: SQLiteEventStore, n: int) -> list[int]:
    return [add(store, T.PATCH_APPLIED, f"patch-p{i}", patch_id=f"p{i}") for i in range(n)]


def outbox(store: SQLiteEventStore, sender: SlackSender, **kw: Any) -> SlackOutbox:
    options: dict[str, Any] = {"backoff_s": 0.01, "max_backoff_s": 0.05, "max_attempts": 3}
    options["renderer"] = Renderer("http://node", digest_threshold=100)
    return SlackOutbox(store, sender, **(options | kw))


def drain(box: SlackOutbox, rounds: int = 5) -> None:
    for _ in range(rounds):
        box.run_once(timeout=0.05)


def records(store: SQLiteEventStore) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, dict(e.data)) for e in store.read_stream(STREAM)]


def delivered_ids(slack: FakeSlack) -> Counter[str]:
    return Counter(r.text.split("`")[1] for r in slack.accepted())


@pytest.mark.parametrize("kind", ["webhook", "bot"])
def test_delivers_interesting_events_and_records_them(
    store: SQLiteEventStore, slack: FakeSlack, kind: str
) -> None:
    sender: SlackSender = (
        WebhookSender(slack.webhook_url)
        if kind == "webhook"
        else BotSender("xoxb-SECRET", "C1", base_url=slack.api_url)
    )
    p1 = add(store, T.PATCH_APPLIED, "patch-p1", patch_id="p1", workspace="main")
    add(store, T.FILES_CHANGED, "workspace-main", paths=["a.py"])
    down = add(store, T.TUNNEL_DOWN, "tunnel-cf", name="cf")
    last = add(store, T.FILES_CHANGED, "workspace-main", paths=["b.py"])
    box = outbox(store, sender)
    result = box.run_once(timeout=1)
    assert (result.events, result.sent, result.failed) == (2, 2, 0)
    texts = [r.text for r in slack.accepted()]
    assert "Patch `p1` applied in `main`" in texts[0]
    assert "Tunnel `cf` is down" in texts[1]
    sent = records(store)
    assert [t for t, _ in sent] == [T.NOTIFICATION_SENT] * 2
    assert [d["positions"] for _, d in sent] == [[p1], [down]]
    assert sent[0][1]["sender"] == kind
    assert sent[0][1]["attempts"] == 1
    assert box.checkpoint == store.load_checkpoint("slack") >= down
    assert "SECRET" not in json.dumps([d for _, d in sent])
    # its own records, and a later uninteresting event, notify nobody
    add(store, T.NOTIFICATION_FAILED, "elsewhere", error="x")
    drain(box, 2)
    assert len(slack.received) == 2
    assert store.load_checkpoint("slack") >= last


def test_rate_limit_waits_at_least_retry_after(store: SQLiteEventStore, slack: FakeSlack) -> None:
    add_patches(store, 1)
    slack.script(Reply.rate_limited(1))
    box = outbox(store, WebhookSender(slack.webhook_url))
    assert box.run_once(timeout=1).sent == 1
    first, second = slack.received
    assert second.at - first.at >= 1.0
    assert [d["attempts"] for _, d in records(store)] == [2]


def test_server_errors_are_retried_with_exponential_backoff(
    store: SQLiteEventStore, slack: FakeSlack
) -> None:
    add_patches(store, 1)
    slack.script(Reply(500, "oops"), Reply(502, "bad gateway"))
    waits: list[float] = []
    box = outbox(store, WebhookSender(slack.webhook_url), sleep=waits.append, max_attempts=5)
    assert box.run_once(timeout=1).sent == 1
    assert waits == [0.01, 0.02]
    assert len(slack.received) == 3
    assert len(slack.accepted()) == 1


def test_permanent_failure_is_recorded_and_skipped(
    store: SQLiteEventStore, slack: FakeSlack
) -> None:
    positions = add_patches(store, 3)
    slack.script(Reply(404, "no_service"), Reply(500), Reply(500), Reply(500))
    box = outbox(store, WebhookSender(slack.webhook_url))
    result = box.run_once(timeout=1)
    assert (result.sent, result.failed) == (1, 2)
    kinds = [(t, d.get("attempts"), d.get("retryable")) for t, d in records(store)]
    assert kinds == [
        (T.NOTIFICATION_FAILED, 1, False),  # 404: never worth a retry
        (T.NOTIFICATION_FAILED, 3, True),  # 500s until max_attempts
        (T.NOTIFICATION_SENT, 1, None),
    ]
    assert "HTTP 404" in records(store)[0][1]["error"]
    assert delivered_ids(slack) == {"p2": 1}
    assert store.load_checkpoint("slack") == positions[-1]


def test_checkpoint_moves_only_after_slack_accepted(
    store: SQLiteEventStore, slack: FakeSlack
) -> None:
    positions = add_patches(store, 3)
    real = WebhookSender(slack.webhook_url)
    seen: list[tuple[int, int]] = []

    class Spy:
        kind, enabled = "webhook", True

        def send(self, message: SlackMessage) -> None:
            seen.append((message.positions[0], store.load_checkpoint("slack")))
            real.send(message)

    drain(outbox(store, Spy()), 2)
    assert [p for p, _ in seen] == positions
    for position, checkpoint in seen:
        assert checkpoint < position
    # past the last patch, and past the outbox's own records too (they are not for it)
    assert store.load_checkpoint("slack") == store.last_position()


@pytest.mark.parametrize("when", ["before", "after"])
def test_crash_mid_delivery_loses_nothing(
    store: SQLiteEventStore, slack: FakeSlack, when: str
) -> None:
    add_patches(store, 5)
    real = WebhookSender(slack.webhook_url)
    calls = 0

    class CrashOnThird:
        kind, enabled = "webhook", True

        def send(self, message: SlackMessage) -> None:
            nonlocal calls
            calls += 1
            if calls == 3 and when == "before":
                raise Crash
            real.send(message)
            if calls == 3:
                raise Crash  # Slack took it, the process died before hearing "ok"

    first = outbox(store, CrashOnThird())
    with pytest.raises(Crash):
        first.run_once(timeout=1)
    first.stop()
    drain(outbox(store, real), 2)
    ids = delivered_ids(slack)
    assert set(ids) == {f"p{i}" for i in range(5)}
    assert sum(ids.values()) - len(ids) == (1 if when == "after" else 0)


def test_crash_between_record_and_checkpoint_repeats_nothing(
    store: SQLiteEventStore, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_patches(store, 3)
    real_save = store.save_checkpoint
    saves = 0

    def crashing_save(subscriber: str, position: int) -> None:
        nonlocal saves
        saves += 1
        if saves == 2:
            raise Crash
        real_save(subscriber, position)

    monkeypatch.setattr(store, "save_checkpoint", crashing_save)
    first = outbox(store, WebhookSender(slack.webhook_url))
    with pytest.raises(Crash):
        first.run_once(timeout=1)
    first.stop()
    monkeypatch.setattr(store, "save_checkpoint", real_save)
    drain(outbox(store, WebhookSender(slack.webhook_url)), 2)
    assert delivered_ids(slack) == {"p0": 1, "p1": 1, "p2": 1}


def test_a_hung_request_times_out_and_is_retried(store: SQLiteEventStore, slack: FakeSlack) -> None:
    add_patches(store, 2)
    slack.script(Reply(delay_s=1.5))
    drain(outbox(store, WebhookSender(slack.webhook_url, timeout_s=1)), 2)
    ids = delivered_ids(slack)
    assert set(ids) == {"p0", "p1"}
    # Slack may have posted the slow one too: never more than one extra copy
    assert len([r for r in slack.received if "p0" in r.text]) == 2


def test_the_same_mid_retry_instance_keeps_its_pending_messages(
    store: SQLiteEventStore, slack: FakeSlack
) -> None:
    add_patches(store, 3)
    real = WebhookSender(slack.webhook_url)
    calls = 0

    class FlakyOnce:
        kind, enabled = "webhook", True

        def send(self, message: SlackMessage) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RuntimeError("a bug in a sender must not drop messages")
            real.send(message)

    box = outbox(store, FlakyOnce())
    with pytest.raises(RuntimeError):
        box.run_once(timeout=1)
    drain(box, 2)
    assert delivered_ids(slack) == {"p0": 1, "p1": 1, "p2": 1}


def test_stop_cuts_a_retry_wait_short_and_keeps_the_message(
    store: SQLiteEventStore, slack: FakeSlack
) -> None:
    add_patches(store, 1)
    slack.script(Reply.rate_limited(30))
    box = outbox(store, WebhookSender(slack.webhook_url))
    worker = threading.Thread(target=box.run_once, kwargs={"timeout": 1})
    worker.start()
    deadline = time.monotonic() + 5
    while not slack.received and time.monotonic() < deadline:
        time.sleep(0.01)
    box.stop()
    worker.join(timeout=2)
    assert not worker.is_alive()
    assert store.load_checkpoint("slack") == 0
    assert records(store) == []
    drain(outbox(store, WebhookSender(slack.webhook_url)), 2)
    assert delivered_ids(slack) == {"p0": 1}


def test_stop_wakes_a_waiting_poll(store: SQLiteEventStore, slack: FakeSlack) -> None:
    box = outbox(store, WebhookSender(slack.webhook_url))
    box.run_once(timeout=0.01)
    worker = threading.Thread(target=box.run_once, kwargs={"timeout": 30})
    worker.start()
    time.sleep(0.1)
    box.stop()
    worker.join(timeout=2)
    assert not worker.is_alive()


def test_without_slack_it_idles_and_says_so_once(
    store: SQLiteEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    add_patches(store, 2)
    box = outbox(store, NullSender("environment variable SLACK_WEBHOOK_URL is not set"))
    with caplog.at_level(logging.INFO, logger="adapters.slack.outbox"):
        results = [box.run_once(timeout=0.01) for _ in range(3)]
    assert all(r.disabled for r in results)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "SLACK_WEBHOOK_URL is not set" in lines[0]
    assert store.load_checkpoint("slack") == 0
    assert records(store) == []


def test_old_events_are_acknowledged_without_a_ping(
    store: SQLiteEventStore, slack: FakeSlack
) -> None:
    positions = add_patches(store, 2)
    box = outbox(store, WebhookSender(slack.webhook_url), clock=lambda: time.time() + 2 * 86400)
    result = box.run_once(timeout=1)
    assert (result.stale, result.sent) == (2, 0)
    assert slack.received == []
    assert store.load_checkpoint("slack") == positions[-1]


def test_a_burst_in_one_poll_is_one_digest(store: SQLiteEventStore, slack: FakeSlack) -> None:
    positions = add_patches(store, 8)
    renderer = Renderer("http://node", digest_threshold=5)
    box = outbox(store, WebhookSender(slack.webhook_url), renderer=renderer)
    assert box.run_once(timeout=1).sent == 1
    [message] = slack.accepted()
    assert message.text.startswith(":bell: 8 notifications")
    [(_, data)] = records(store)
    assert data["kind"] == "digest"
    assert data["positions"] == positions


def test_a_failed_record_is_retried_without_sending_again(
    store: SQLiteEventStore, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_patches(store, 2)
    real_append = store.append
    failures = 1

    def flaky_append(stream: str, events: Any, *args: Any, **kw: Any) -> list[int]:
        nonlocal failures
        if stream == STREAM and failures:
            failures -= 1
            raise OSError("disk full")
        return real_append(stream, events, *args, **kw)

    monkeypatch.setattr(store, "append", flaky_append)
    box = outbox(store, WebhookSender(slack.webhook_url))
    with pytest.raises(OSError, match="disk full"):
        box.run_once(timeout=1)
    drain(box, 2)
    assert delivered_ids(slack) == {"p0": 1, "p1": 1}
    assert [t for t, _ in records(store)] == [T.NOTIFICATION_SENT] * 2


def test_an_unreadable_event_is_still_announced_not_wedged(
    store: SQLiteEventStore, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_patches(store, 2)

    def broken(event: Any, base: Any) -> None:
        raise ValueError("a shape nobody expected")

    monkeypatch.setattr("adapters.slack.render.render_event", broken)
    drain(outbox(store, WebhookSender(slack.webhook_url)), 2)
    texts = [r.text for r in slack.accepted()]
    assert len(texts) == 2
    assert all("PatchApplied on `patch-p" in t for t in texts)


def test_the_webhook_url_stays_out_of_debug_logs(
    store: SQLiteEventStore, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    add_patches(store, 1)
    slack.script(Reply(500, "oops"))
    with caplog.at_level(logging.DEBUG):
        drain(outbox(store, WebhookSender(slack.webhook_url)), 2)
    assert len(slack.accepted()) == 1
    assert "SECRET" not in caplog.text
