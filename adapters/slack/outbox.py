"""The Slack outbox: every interesting event reaches Slack at least once, across restarts.

Delivery order for each message: send (with retries) -> append NotificationSent/Failed ->
save the checkpoint. The checkpoint only moves past a message once Slack accepted it (or it was
given up on and recorded), so a crash repeats at most the message in flight. On start the
outbox also reads its own last record: when a crash fell between the record and the checkpoint,
the record wins and nothing is repeated; only a crash between Slack's "ok" and the record's
commit can repeat a message.

A message that can never be delivered (a permanent error, or retries exhausted) is recorded as
NotificationFailed and skipped: one broken message must not hold back every later one.

Threading: `run_once` blocks (poll, HTTP, backoff waits) and belongs to one thread (the
notifier actor's); `stop` may be called from any thread and cuts a backoff wait short.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.slack.message import SlackMessage, clip
from adapters.slack.render import CANDIDATE_TYPES, OWN_TYPES, Renderer
from adapters.slack.sender import SlackSender, SlackSendError
from eventstore.catalogue import EventType
from eventstore.events import NewEvent, RecordedEvent
from eventstore.protocol import EventStore, Subscription

log = logging.getLogger(__name__)

_SEED_SPAN = 5000  # positions before the checkpoint replayed into the crash-loop detector
_MAX_RECORDED_POSITIONS = 200


class _Stopped(Exception):
    """stop() was called during a backoff wait: leave the message for the next start."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one `run_once` did, for the actor's metrics and for tests."""

    events: int = 0
    sent: int = 0
    failed: int = 0
    stale: int = 0
    disabled: bool = False


@dataclass(slots=True)
class _Pending:
    message: SlackMessage
    checkpoint_after: int  # where the checkpoint may go once this message is done
    # Set once Slack answered for good: if recording it then fails (store trouble), the next
    # step records it again instead of sending the message a second time.
    outcome: tuple[str, int, SlackSendError | None] | None = None


class SlackOutbox:
    def __init__(
        self,
        store: EventStore,
        sender: SlackSender,
        subscriber: str = "slack",
        renderer: Renderer | None = None,
        *,
        stream: str = "notifier-slack",
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        max_retry_after_s: float = 900.0,
        max_age_s: float | None = 24 * 3600.0,
        batch: int = 100,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.subscriber = subscriber
        self.renderer = renderer or Renderer()
        self.stream = stream
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.max_age_s = max_age_s
        self.batch = batch
        self._clock = clock
        self._stopping = threading.Event()
        self._sleep = sleep or self._interruptible_sleep
        self._subscription: Subscription | None = None
        self._checkpoint = 0
        self._pending: deque[_Pending] = deque()
        self._said_disabled = False

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def checkpoint(self) -> int:
        return self._checkpoint

    def stop(self) -> None:
        self._stopping.set()
        if self._subscription is not None:
            self._subscription.close()  # wakes a poll in progress

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _start(self) -> Subscription:
        checkpoint = self.store.load_checkpoint(self.subscriber)
        recorded = self._last_recorded_through()
        if recorded > checkpoint:
            # Crashed after recording a delivery but before saving the checkpoint.
            self.store.save_checkpoint(self.subscriber, recorded)
            checkpoint = recorded
        self._checkpoint = checkpoint
        history = self.store.read_all(
            after=max(0, checkpoint - _SEED_SPAN), types=[EventType.SERVICE_EXITED]
        )
        self.renderer.seed([e for e in history if e.position <= checkpoint])
        self._subscription = self.store.subscribe(after=checkpoint, types=sorted(CANDIDATE_TYPES))
        if self._stopping.is_set():
            self._subscription.close()
        return self._subscription

    def _last_recorded_through(self) -> int:
        version = self.store.stream_version(self.stream)
        if version == 0:
            return 0
        last = self.store.read_stream(self.stream, after_version=version - 1)
        if not last or last[0].data.get("subscriber") != self.subscriber:
            return 0
        through = last[0].data.get("through")
        return through if isinstance(through, int) else 0

    # --- one step ----------------------------------------------------------------------------
    def run_once(self, timeout: float | None = 1.0) -> StepResult:
        """Deliver what is pending, else wait up to `timeout` for new events and deliver those."""
        if self._stopping.is_set():
            return StepResult()
        if not self.sender.enabled:
            return self._idle(timeout)
        subscription = self._subscription or self._start()
        events, stale = 0, 0
        if not self._pending:
            polled = subscription.poll(timeout=timeout, max_count=self.batch)
            events = len(polled)
            stale = self._queue(polled, subscription.position)
        sent = failed = 0
        while self._pending and not self._stopping.is_set():
            item = self._pending[0]
            try:
                item.outcome = item.outcome or self._deliver(item.message)
            except _Stopped:
                break
            self._record(item, *item.outcome)
            self._pending.popleft()
            ok = item.outcome[0] == EventType.NOTIFICATION_SENT
            sent, failed = sent + ok, failed + (not ok)
        return StepResult(events, sent, failed, stale)

    def _idle(self, timeout: float | None) -> StepResult:
        if not self._said_disabled:
            self._said_disabled = True
            reason = getattr(self.sender, "reason", "no sender configured")
            log.info("Slack notifications are off (%s); events stay unsent until enabled", reason)
        self._sleep(1.0 if timeout is None else timeout)
        return StepResult(disabled=True)

    def _queue(self, events: Sequence[RecordedEvent], through: int) -> int:
        fresh: list[RecordedEvent] = []
        stale: list[RecordedEvent] = []
        horizon = None if self.max_age_s is None else self._clock() - self.max_age_s
        for event in events:
            if event.type in OWN_TYPES or event.stream == self.stream:
                continue
            old = horizon is not None and event.recorded_at.timestamp() < horizon
            (stale if old else fresh).append(event)
        if stale:
            # Old news (the node ran with Slack off, or was down for a day): not worth a ping.
            log.info("Slack: %d events older than %.0f s not sent", len(stale), self.max_age_s)
            self.renderer.seed(stale)
        messages = self.renderer.render(fresh)
        for i, message in enumerate(messages):
            last = i == len(messages) - 1
            self._pending.append(
                _Pending(message, through if last else max(message.positions, default=through))
            )
        if not messages and through > self._checkpoint:
            self._save_checkpoint(through)
        return len(stale)

    # --- delivery ----------------------------------------------------------------------------
    def _deliver(self, message: SlackMessage) -> tuple[str, int, SlackSendError | None]:
        """Send with retries: (event type to record, attempts, the last error if it failed)."""
        attempts = 0
        rate_limited = 0
        while True:
            attempts += 1
            try:
                self.sender.send(message)
            except SlackSendError as exc:
                rate_limited += exc.retry_after_s is not None
                tries = attempts - rate_limited  # a 429 is Slack pacing us, not a failure
                exhausted = tries >= self.max_attempts or attempts >= 4 * self.max_attempts
                if not exc.retryable or exhausted:
                    log.error("Slack: gave up on a %s message: %s", message.kind, exc)
                    return EventType.NOTIFICATION_FAILED, attempts, exc
                delay = self._delay(max(1, tries), exc.retry_after_s)
                log.warning("Slack: %s; retrying in %.1f s", exc, delay)
                self._sleep(delay)
                if self._stopping.is_set():
                    raise _Stopped from None
            else:
                return EventType.NOTIFICATION_SENT, attempts, None

    def _delay(self, tries: int, retry_after_s: float | None) -> float:
        delay = min(self.max_backoff_s, self.backoff_s * 2.0 ** (tries - 1))
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return delay

    def _record(
        self, item: _Pending, type: str, attempts: int, error: SlackSendError | None
    ) -> None:
        message = item.message
        data: dict[str, Any] = {
            "subscriber": self.subscriber,
            "sender": self.sender.kind,
            "kind": message.kind,
            "positions": list(message.positions[:_MAX_RECORDED_POSITIONS]),
            "through": item.checkpoint_after,
            "attempts": attempts,
            "text": clip(message.text, 200),
        }
        if error is not None:  # SlackSendError texts never carry the URL or token
            data |= {"error": str(error), "retryable": error.retryable}
        meta = {"actor": self.stream, "subscriber": self.subscriber}
        self.store.append(self.stream, [NewEvent(type=type, data=data, meta=meta)])
        self._save_checkpoint(item.checkpoint_after)

    def _save_checkpoint(self, position: int) -> None:
        self.store.save_checkpoint(self.subscriber, position)
        self._checkpoint = position
