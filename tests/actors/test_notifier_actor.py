"""NotifierActor under a real Supervisor, against a loopback server that answers like Slack,
with a real SQLiteEventStore."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from actors.edge import notifier_spec
from actors.notifier import GetNotifier, NotifierActor, make_sender
from actors.recorder import StoreRecorder
from actors.spec import ChildSpec
from actors.supervisor import Supervisor
from adapters.config import Config, EnvSecrets, SlackConfig
from eventstore import NewEvent, SQLiteEventStore
from tests.actors.support import wait_until
from tests.adapters.slack.fake_slack import FakeSlack, Reply

WEBHOOK = SlackConfig(webhook_url_env="SLACK_WEBHOOK_URL")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    with SQLiteEventStore(tmp_path / "events.db") as s:
        yield s


@pytest.fixture
def run(
    store: SQLiteEventStore, slack: FakeSlack, start_supervisor: Callable[..., Supervisor]
) -> Iterator[Callable[..., Supervisor]]:
    """Starts a notifier; at the end stops it and checks that no thread is left behind."""
    baseline = threading.active_count()
    started: list[Supervisor] = []

    def start(slack_config: SlackConfig | None = WEBHOOK) -> Supervisor:
        secrets = EnvSecrets(slack_webhook_url=slack.webhook_url)
        factory = partial(
            NotifierActor, slack_config, secrets, store, "http://node", step_timeout_s=0.1
        )
        sup = start_supervisor(
            "edge", [ChildSpec("notifier", factory)], recorder=StoreRecorder(store)
        )
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.actor_ref.stop(timeout=10)
    wait_until(lambda: threading.active_count() <= baseline, what="threads to end")


def patch_applied(store: SQLiteEventStore, pid: str) -> None:
    data = {"patch_id": pid, "workspace": "main", "description": f"change {pid}"}
    store.append(f"patch-{pid}", [NewEvent("PatchApplied", data)])


def delivered(slack: FakeSlack) -> Counter[str]:
    return Counter(r.text.split("`")[1] for r in slack.accepted())


def status(sup: Supervisor) -> dict[str, Any]:
    result: dict[str, Any] = sup.handle("notifier").ask(GetNotifier(), timeout=5)
    return result


def test_a_patch_applied_event_becomes_one_slack_message(
    run: Callable[..., Supervisor], store: SQLiteEventStore, slack: FakeSlack
) -> None:
    sup = run()
    patch_applied(store, "p1")
    wait_until(lambda: slack.accepted(), what="a message")
    wait_until(lambda: status(sup)["sent"] == 1, what="recorded")
    [message] = slack.accepted()
    assert "Patch `p1` applied in `main`" in message.text
    assert slack.webhook_url.endswith(message.path)
    [sent] = store.read_stream("notifier-slack")
    assert sent.type == "NotificationSent"
    assert sent.data["sender"] == "webhook"
    now = status(sup)
    assert now["sender"] == "webhook"
    assert now["enabled"] is True
    assert now["checkpoint"] >= sent.data["through"]
    assert now["failed"] == 0


def test_stopping_mid_delivery_and_restarting_loses_nothing(
    run: Callable[..., Supervisor], store: SQLiteEventStore, slack: FakeSlack
) -> None:
    in_flight = threading.Event()
    slack.on_request = lambda received: in_flight.set()
    slack.script(Reply(delay_s=0.3))  # the first message is slow to be answered
    first = run()
    for i in range(3):
        patch_applied(store, f"a{i}")
    assert in_flight.wait(5)
    first.actor_ref.stop(timeout=10)  # while Slack still holds the first answer
    for i in range(3):
        patch_applied(store, f"b{i}")  # while the notifier is down

    run()
    wanted = {f"a{i}" for i in range(3)} | {f"b{i}" for i in range(3)}
    wait_until(lambda: set(delivered(slack)) == wanted, timeout=10, what="every message")
    counts = delivered(slack)
    assert max(counts.values()) <= 2
    assert sum(counts.values()) <= len(wanted) + 1


def test_a_supervised_restart_resumes_from_the_checkpoint(
    run: Callable[..., Supervisor], store: SQLiteEventStore, slack: FakeSlack
) -> None:
    sup = run()
    patch_applied(store, "p1")
    wait_until(lambda: status(sup)["sent"] == 1, what="first sent")
    handle = sup.handle("notifier")
    ref = handle.ref
    assert ref is not None
    ref.stop(timeout=5)  # a normal exit: the permanent child is started again
    patch_applied(store, "p2")
    wait_until(lambda: handle.restarts == 1 and handle.state == "running", what="restart")
    wait_until(lambda: set(delivered(slack)) == {"p1", "p2"}, what="p2")
    assert delivered(slack) == Counter({"p1": 1, "p2": 1})


def test_without_slack_it_idles_and_says_so_once(
    run: Callable[..., Supervisor],
    store: SQLiteEventStore,
    slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="adapters.slack.outbox")
    sup = run(None)
    patch_applied(store, "p1")
    wait_until(lambda: status(sup)["steps"] >= 3, what="a few idle steps")
    now = status(sup)
    assert now["sender"] == "none"
    assert now["enabled"] is False
    assert now["sent"] == 0
    assert slack.received == []
    assert store.read_stream("notifier-slack") == []
    said = [r for r in caplog.records if "Slack notifications are off" in r.getMessage()]
    assert len(said) == 1
    assert "no [slack] section" in said[0].getMessage()


def test_senders_follow_the_config_and_never_show_secrets() -> None:
    secrets = EnvSecrets(slack_webhook_url="https://hooks.example/T/B/SECRET")
    assert make_sender(None, secrets).kind == "none"
    webhook = make_sender(WEBHOOK, secrets)
    assert webhook.kind == "webhook"
    assert "SECRET" not in repr(webhook)
    bot = SlackConfig(bot_token_env="SLACK_BOT_TOKEN", channel="#dev")
    missing = make_sender(bot, secrets)
    assert missing.kind == "none"
    assert "SLACK_BOT_TOKEN" in getattr(missing, "reason", "")
    with_token = make_sender(bot, EnvSecrets(slack_bot_token="xoxb-SECRET"))
    assert with_token.kind == "bot"
    assert "SECRET" not in repr(with_token)


def test_notifier_spec_builds_a_fresh_actor_each_time(store: SQLiteEventStore) -> None:
    spec = notifier_spec(Config(slack=WEBHOOK), EnvSecrets(), store, "http://node")
    first, second = spec.factory(), spec.factory()
    assert spec.name == "notifier"
    assert isinstance(first, NotifierActor)
    assert first is not second
    assert first.dashboard_url == "http://node"
    assert first.slack == WEBHOOK
