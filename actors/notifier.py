"""NotifierActor: drives the Slack outbox (at-least-once delivery with a checkpoint).

The actor steps the outbox in a loop of messages: Step -> one `run_once(step_timeout_s)` ->
_Stepped -> Step... A step runs on the actor's one worker thread, not on the actor's own:
`run_once` blocks for the poll, for Slack's answer and for retry backoffs (seconds to a minute
when Slack is down or rate-limits us), and an actor blocked that long misses its supervisor's
liveness pings and is abandoned as hung, leaving two outboxes to deliver at once. So the actor
thread stays free for Ping, GetNotifier and Stop; the outcome of every step comes back to it,
and an exception there fails the actor (the supervisor restarts it from the checkpoint).

No Slack configured: a NullSender, and the outbox idles (it logs once that notifications are
off). teardown() stops the outbox, which cuts a poll or backoff wait short, then joins the
worker (bounded by the send timeout: an HTTP request in flight cannot be interrupted).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from pykka import ActorDeadError

from actors.base import GhostActor
from adapters.config import EnvSecrets, SlackConfig
from adapters.slack import (
    BotSender,
    NullSender,
    Renderer,
    SlackOutbox,
    SlackSender,
    StepResult,
    WebhookSender,
)
from eventstore.protocol import EventStore

log = logging.getLogger(__name__)


def make_sender(slack: SlackConfig | None, secrets: EnvSecrets, timeout_s: int = 5) -> SlackSender:
    """The sender `[slack]` asks for, built from the secrets read at start-up; a NullSender
    naming what is missing otherwise (never the secret values)."""
    if slack is None:
        return NullSender()
    if slack.bot_token_env is not None:
        if secrets.slack_bot_token and slack.channel:
            return BotSender(secrets.slack_bot_token, slack.channel, timeout_s=timeout_s)
        return NullSender(f"environment variable {slack.bot_token_env} is not set")
    if slack.webhook_url_env is not None:
        if secrets.slack_webhook_url:
            return WebhookSender(secrets.slack_webhook_url, timeout_s=timeout_s)
        return NullSender(f"environment variable {slack.webhook_url_env} is not set")
    return NullSender("[slack] names neither webhook_url_env nor bot_token_env")


# --- messages ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Step:
    """Run one outbox step (ignored while one is running: the loop continues by itself)."""


@dataclass(frozen=True, slots=True)
class GetNotifier:
    """Ask: {sender, enabled, checkpoint, steps, sent, failed, stale, last_error}."""


@dataclass(frozen=True, slots=True)
class _Stepped:
    generation: int
    result: StepResult | None
    error: Exception | None


# --- the worker ----------------------------------------------------------------------------------
class _Stepper:
    """One thread that runs `outbox.run_once` on request and reports each outcome."""

    def __init__(self, actor: NotifierActor, outbox: SlackOutbox, timeout_s: float) -> None:
        self._actor = actor
        self._outbox = outbox
        self._timeout_s = timeout_s
        self._requests: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: step, False: quit
        # Daemon: a step stuck in an HTTP request must not keep the process alive at exit.
        self._thread = threading.Thread(target=self._run, name=f"{actor.name}-steps", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._requests.put(True)

    def close(self, timeout_s: float) -> None:
        self._requests.put(False)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("%s: a Slack request is still in flight; leaving it", self._actor.name)

    def _run(self) -> None:
        generation = self._actor.generation
        while self._requests.get():
            result: StepResult | None = None
            error: Exception | None = None
            try:
                result = self._outbox.run_once(self._timeout_s)
            except Exception as exc:  # noqa: BLE001 - handed to the actor, which fails with it
                error = exc
            try:
                self._actor.actor_ref.tell(_Stepped(generation, result, error))
            except ActorDeadError:
                return  # stopping: nobody wants more steps


# --- the actor -----------------------------------------------------------------------------------
class NotifierActor(GhostActor):
    def __init__(
        self,
        slack: SlackConfig | None,
        secrets: EnvSecrets,
        store: EventStore,
        dashboard_url: str | None = None,
        *,
        sender: SlackSender | None = None,
        step_timeout_s: float = 1.0,
        send_timeout_s: int = 5,
        name: str = "notifier",
    ) -> None:
        super().__init__(name)
        self.slack = slack
        self.secrets = secrets
        self.store = store
        self.dashboard_url = dashboard_url
        self.step_timeout_s = step_timeout_s
        self.send_timeout_s = send_timeout_s
        self._given_sender = sender  # tests inject one; else built from config in setup()
        self._outbox: SlackOutbox | None = None
        self._stepper: _Stepper | None = None
        self._busy = False
        self._stats = {"steps": 0, "sent": 0, "failed": 0, "stale": 0}
        self._last_error: str | None = None

    def setup(self) -> None:
        sender = self._given_sender or make_sender(self.slack, self.secrets, self.send_timeout_s)
        self._outbox = SlackOutbox(self.store, sender, renderer=Renderer(self.dashboard_url))
        self._stepper = _Stepper(self, self._outbox, self.step_timeout_s)
        self.actor_ref.tell(Step())

    def teardown(self) -> None:
        if self._outbox is not None:
            self._outbox.stop()
        if self._stepper is not None:
            self._stepper.close(self.send_timeout_s + 1.0)

    def receive(self, message: Any) -> Any:
        match message:
            case Step():
                if not self._busy and self._stepper is not None:
                    self._busy = True
                    self._stepper.request()
            case _Stepped(generation=generation) if generation != self.generation:
                pass  # salvaged from a failed incarnation: its worker is gone
            case _Stepped(result=result, error=error):
                self._busy = False
                if error is not None:
                    self._last_error = f"{type(error).__name__}: {error}"
                    raise error
                assert result is not None
                self._count(result)
                self.actor_ref.tell(Step())
            case GetNotifier():
                return self._status()
            case _:
                return super().receive(message)
        return None

    def _count(self, result: StepResult) -> None:
        self._stats["steps"] += 1
        self._stats["sent"] += result.sent
        self._stats["failed"] += result.failed
        self._stats["stale"] += result.stale

    def _status(self) -> dict[str, Any]:
        outbox = self._outbox
        return {
            "sender": outbox.sender.kind if outbox is not None else None,
            "enabled": outbox.sender.enabled if outbox is not None else False,
            "checkpoint": outbox.checkpoint if outbox is not None else None,
            **self._stats,
            "last_error": self._last_error,
        }
