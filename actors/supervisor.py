"""Supervisor: starts children, notices every way they fail, restarts them with backoff, and
escalates when they fail too often.

How each failure is noticed:

- exception while handling a tell, or in setup(): the child (a GhostActor) tells ChildFailed;
- the child stopped on its own: it tells ChildExited (a normal exit; restarted if permanent);
- hung (no Pong within `liveness.timeout_s`, or setup() past `liveness.start_timeout_s`) or
  dead without a word: found by the periodic liveness tick.

A hung thread cannot be killed in Python. The supervisor *abandons* it: it sets the actor's
stop flag (its refs refuse new messages and its loop ends as soon as the stuck handler returns;
then its teardown() runs), takes the waiting messages out of its inbox for the replacement,
records ActorFailed(ActorHungError) with the stuck thread's stack, and starts a replacement
after the backoff. The stuck thread lives on until whatever blocks it returns.

Restarts wait for the backoff delay on the supervisor's timer thread, never in the supervisor's
own thread: it keeps handling messages meanwhile. More than `max_restarts` restarts within
`period_s` (counted per restart decision) make the supervisor give up: it stops all children,
records SupervisorGaveUp, and fails to its own supervisor, which then treats it as any failed
child; a root supervisor (no parent) calls `on_give_up` instead (ghost-node exits with 70).
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pykka
from pykka import ActorRef, ActorRegistry, Future

from actors.backoff import BackoffPolicy, Clock, RestartIntensity
from actors.base import GhostActor
from actors.errors import (
    ActorDiedError,
    ActorHungError,
    StartTimeoutError,
    SupervisorGaveUpError,
)
from actors.failure import TRACEBACK_LINES, failure_report
from actors.handle import ChildHandle
from actors.inbox import salvage
from actors.messages import (
    ChildExited,
    ChildFailed,
    ChildStarted,
    GaveUp,
    LivenessTick,
    Ping,
    RestartChildren,
)
from actors.recorder import EventRecorder, NullRecorder
from actors.scheduler import Scheduler
from actors.spec import ChildSpec, Liveness, Restart, Strategy
from actors.states import ACTOR_FAILED, STATE_EVENTS, SUPERVISOR_EVENTS, ActorState
from eventstore.catalogue import actor_stream, supervisor_stream

log = logging.getLogger(__name__)

GiveUpCallback = Callable[[GaveUp], None]
_ALIVE = frozenset({ActorState.STARTING, ActorState.RUNNING})
_ACTIVE = frozenset({ActorState.STARTING, ActorState.RUNNING, ActorState.BACKOFF})


@dataclass(slots=True)
class _Child:
    """The supervisor's private, mutable view of one child (touched only in its thread)."""

    spec: ChildSpec
    state: ActorState = ActorState.STOPPED
    ref: ActorRef[Any] | None = None
    generation: int = 0
    attempt: int = 0
    launched_at: float = 0.0
    running_since: float | None = None
    thread_id: int = 0
    ping: Future[Any] | None = None
    ping_sent_at: float = 0.0
    token: int = 0
    abandoned: int = 0

    @property
    def name(self) -> str:
        return self.spec.name


class Supervisor(GhostActor):
    """Supervises `children` (started in order, stopped in reverse order).

    A Supervisor is itself a GhostActor, so it can be the child of another Supervisor:
    ``ChildSpec("io", lambda: Supervisor("io", io_specs, ...))``.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        backoff: BackoffPolicy | None = None,
        max_restarts: int = 5,
        period_s: float = 60.0,
        liveness: Liveness | None = None,
        recorder: EventRecorder | None = None,
        on_give_up: GiveUpCallback | None = None,
        stop_timeout_s: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(name)
        names = [spec.name for spec in children]
        if len(set(names)) != len(names):
            raise ValueError(f"supervisor {name}: duplicate child names in {names}")
        self.strategy = strategy
        self.backoff = backoff or BackoffPolicy()
        self.liveness = liveness or Liveness()
        self.stop_timeout_s = stop_timeout_s
        self._specs = tuple(children)
        self._children = {spec.name: _Child(spec) for spec in children}
        self._intensity = RestartIntensity(max_restarts, period_s, clock)
        self._recorder: EventRecorder = recorder or NullRecorder()
        self._on_give_up = on_give_up
        self._clock = clock
        self._scheduler: Scheduler | None = None
        self._tokens = itertools.count(1)
        self._state = ActorState.STARTING
        self._gave_up = False

    # --- public, thread-safe -------------------------------------------------------------------
    @property
    def specs(self) -> tuple[ChildSpec, ...]:
        return self._specs

    @property
    def handles(self) -> Mapping[str, ChildHandle]:
        return {spec.name: spec.handle for spec in self._specs}

    def handle(self, name: str) -> ChildHandle:
        return self._children[name].spec.handle

    # --- public, through ask/proxy ---------------------------------------------------------------
    def children_status(self) -> dict[str, dict[str, Any]]:
        """{name: {state, restarts, generation, abandoned}}; call via ``ref.proxy()``."""
        return {
            c.name: {
                "state": str(c.state),
                "restarts": c.spec.handle.restarts,
                "generation": c.generation,
                "abandoned": c.abandoned,
            }
            for c in self._children.values()
        }

    # --- lifecycle -----------------------------------------------------------------------------
    def setup(self) -> None:
        self._scheduler = Scheduler(f"{self.name}-timers")
        for spec in self._specs:
            spec.handle.claim(self)
        self._state = ActorState.RUNNING
        self._record_self(
            ActorState.RUNNING, children=[s.name for s in self._specs], strategy=str(self.strategy)
        )
        for child in self._children.values():
            self._start(child)
        self._arm_tick()

    def teardown(self) -> None:
        for child in reversed(self._children.values()):
            if child.state in _ACTIVE:
                pending = self._stop_child(child)
                self._enter(child, ActorState.STOPPED, pending, reason="supervisor stopping")
        if self._scheduler is not None:
            self._scheduler.close()
        if not self._gave_up:
            self._state = ActorState.STOPPED
            self._record_self(ActorState.STOPPED)

    def receive(self, message: Any) -> Any:
        match message:
            case ChildStarted():
                self._on_started(message)
            case ChildFailed():
                self._on_failed(message)
            case ChildExited():
                self._on_exited(message)
            case RestartChildren():
                self._on_restart(message)
            case LivenessTick():
                self._on_tick()
            case _:
                return super().receive(message)
        return None

    # --- recording -----------------------------------------------------------------------------
    def _record(self, child: _Child, type: str, **data: Any) -> None:
        self._recorder.record(
            actor_stream(child.name), type, {"actor": child.name, "supervisor": self.name, **data}
        )

    def _record_self(self, state: ActorState, **data: Any) -> None:
        self._recorder.record(
            supervisor_stream(self.name),
            SUPERVISOR_EVENTS[state],
            {"supervisor": self.name, **data},
        )

    def _enter(
        self, child: _Child, state: ActorState, pending: Sequence[Any] = (), **data: Any
    ) -> None:
        """Every state change goes through here: the child, its handle, and an event."""
        child.state = state
        child.spec.handle.update(self, state, child.ref, pending)
        self._record(child, STATE_EVENTS[state], generation=child.generation, **data)

    # --- starting ------------------------------------------------------------------------------
    def _start(self, child: _Child) -> None:
        child.generation += 1
        child.ref = None
        child.ping = None
        child.running_since = None
        self._enter(child, ActorState.STARTING, attempt=child.attempt)
        try:
            actor = child.spec.factory()
            if not isinstance(actor, GhostActor):
                raise TypeError(
                    f"factory of {child.name} returned {type(actor).__name__}, "
                    "not an un-started GhostActor"
                )
            actor.bind(self.actor_ref, child.name, child.generation)
            child.ref = actor.launch()
        except Exception as exc:  # a factory may raise anything: it is the child failing
            log.warning("cannot build %s", child.name, exc_info=True)
            self._failed(child, failure_report(child.name, child.generation, exc, "factory"))
            return
        child.launched_at = self._clock()

    def _current(self, name: str, generation: int) -> _Child | None:
        """The child a report is about, or None when the report is stale (an earlier
        incarnation, or a child we already stopped or replaced)."""
        child = self._children.get(name)
        if child is None or child.generation != generation or child.state not in _ALIVE:
            return None
        return child

    def _on_started(self, msg: ChildStarted) -> None:
        child = self._current(msg.name, msg.generation)
        if child is None or child.state is not ActorState.STARTING:
            return
        child.running_since = self._clock()
        child.thread_id = msg.thread_id
        self._enter(
            child, ActorState.RUNNING, attempt=child.attempt, restarts=child.spec.handle.restarts
        )

    def _on_restart(self, msg: RestartChildren) -> None:
        if self._gave_up:
            return
        for name in msg.names:
            child = self._children[name]
            if child.state is ActorState.BACKOFF and child.token == msg.token:
                self._start(child)

    # --- failing -------------------------------------------------------------------------------
    def _on_failed(self, msg: ChildFailed) -> None:
        child = self._current(msg.name, msg.generation)
        if child is None:
            log.debug("stale failure report ignored: %s", msg)
            return
        self._failed(child, msg)

    def _on_exited(self, msg: ChildExited) -> None:
        child = self._current(msg.name, msg.generation)
        if child is None:
            return
        child.ref = None
        if child.spec.restart is Restart.PERMANENT:
            self._restart(child, "exited normally (permanent child)")
        else:
            self._enter(child, ActorState.STOPPED, reason="exited normally")

    def _failed(self, child: _Child, report: ChildFailed) -> None:
        child.ref = None
        child.ping = None
        self._record(
            child,
            ACTOR_FAILED,
            generation=child.generation,
            error_type=report.error_type,
            message=report.message,
            traceback=report.traceback,
            phase=report.phase,
        )
        if child.spec.restart is Restart.TEMPORARY:
            self._enter(child, ActorState.FATAL, report.pending, reason="temporary child failed")
            return
        self._restart(child, f"{report.error_type}: {report.message}", report.pending)

    def _restart(self, child: _Child, cause: str, pending: Sequence[Any] = ()) -> None:
        if not self._intensity.allow():
            self._give_up(child, cause, pending)
            return
        ran = 0.0 if child.running_since is None else self._clock() - child.running_since
        child.attempt = 1 if ran >= self.backoff.reset_after_s else child.attempt + 1
        delay = self.backoff.delay(child.attempt)
        group: dict[str, Sequence[Any]] = {child.name: pending}  # member -> salvaged messages
        if self.strategy is Strategy.ONE_FOR_ALL:
            for sibling in self._children.values():
                if sibling is child or sibling.state not in _ACTIVE:
                    continue
                salvaged = self._stop_child(sibling)
                if sibling.spec.restart is Restart.TEMPORARY:
                    reason = f"sibling {child.name} restarting"
                    self._enter(sibling, ActorState.STOPPED, salvaged, reason=reason)
                else:
                    group[sibling.name] = salvaged
        token = next(self._tokens)
        ordered = [c for c in self._children.values() if c.name in group]  # spec order
        for member in ordered:
            member.token = token
            member.spec.handle.count_restart(self)
            self._enter(
                member,
                ActorState.BACKOFF,
                group[member.name],
                delay_s=round(delay, 6),
                attempt=child.attempt,
                cause=cause if member is child else f"one_for_all: {child.name} restarting",
            )
        message = RestartChildren(tuple(c.name for c in ordered), token)
        if delay <= 0 or self._scheduler is None:
            self.actor_ref.tell(message)  # no timer thread round trip for zero backoff
        else:
            self._scheduler.call_later(delay, partial(self.actor_ref.tell, message))

    def _stop_child(self, child: _Child) -> tuple[Any, ...]:
        """Stop the child's current incarnation (waiting up to stop_timeout_s for its on_stop),
        abandoning it if it does not stop; returns the told messages salvaged from it."""
        ref, child.ref, child.ping = child.ref, None, None
        if ref is None:
            return ()
        try:
            ref.stop(block=True, timeout=self.stop_timeout_s)
        except pykka.Timeout:
            return self._abandon(child, ref)
        return ()

    def _abandon(self, child: _Child, ref: ActorRef[Any]) -> tuple[Any, ...]:
        # pykka's own stop flag: refs now refuse messages and the actor's loop exits right
        # after the handler it is stuck in returns (GhostActor then runs its teardown).
        ref.actor_stopped.set()
        ActorRegistry.unregister(ref)
        child.abandoned += 1
        log.warning(
            "abandoned %s (generation %d): its thread is stuck", child.name, child.generation
        )
        return salvage(ref.actor_inbox, child.name)

    def _give_up(self, child: _Child, cause: str, pending: Sequence[Any]) -> None:
        self._gave_up = True
        self._state = ActorState.FATAL
        restarts = self._intensity.recent
        reason = "gave up: too many restarts"
        # Nothing of this subtree may outlive the decision: children first, then report.
        self._enter(child, ActorState.FATAL, pending, reason=reason)
        for other in reversed(self._children.values()):
            if other is not child and other.state in _ACTIVE:
                salvaged = self._stop_child(other)
                self._enter(other, ActorState.FATAL, salvaged, reason=reason)
        period = self._intensity.period_s
        self._record_self(
            ActorState.FATAL,
            restarts=restarts,
            max_restarts=self._intensity.max_restarts,
            period_s=period,
            actor=child.name,
            cause=cause,
        )
        error = SupervisorGaveUpError(
            f"supervisor {self.name}: {restarts} restarts within {period}s "
            f"(max {self._intensity.max_restarts}); last: {child.name}: {cause}"
        )
        self._report(failure_report(self.name, self.generation, error, "escalation"))
        self.stop()

    def on_unsupervised_failure(self, failed: ChildFailed) -> None:
        """The root supervisor failed or gave up: nobody above can restart it."""
        log.critical("root supervisor %s gave up: %s", self.name, failed.message)
        if self._on_give_up is None:
            return
        gave_up = GaveUp(
            supervisor=self.name,
            reason=failed.message,
            error_type=failed.error_type,
            restarts=self._intensity.recent,
            period_s=self._intensity.period_s,
        )
        try:
            self._on_give_up(gave_up)
        except Exception:
            log.exception("on_give_up of %s failed", self.name)

    # --- liveness ------------------------------------------------------------------------------
    def _arm_tick(self) -> None:
        interval = self.liveness.interval_s
        if interval is not None and self._scheduler is not None and not self._gave_up:
            self._scheduler.call_later(interval, partial(self.actor_ref.tell, LivenessTick()))

    def _on_tick(self) -> None:
        self._arm_tick()
        now = self._clock()
        for child in list(self._children.values()):
            ref = child.ref
            if ref is None or child.state not in _ALIVE:
                continue
            if child.state is ActorState.STARTING:
                if now - child.launched_at > self.liveness.start_timeout_s:
                    limit = self.liveness.start_timeout_s
                    self._hung(
                        child, ref, StartTimeoutError(f"setup() still running after {limit}s")
                    )
                continue
            self._check_ping(child, ref, now)

    def _check_ping(self, child: _Child, ref: ActorRef[Any], now: float) -> None:
        overdue = now - child.ping_sent_at >= self.liveness.timeout_s
        if child.ping is not None:
            try:
                child.ping.get(timeout=0)
            except pykka.Timeout:
                if overdue:
                    limit = self.liveness.timeout_s
                    self._hung(child, ref, ActorHungError(f"no answer to Ping within {limit}s"))
                return
            except Exception:
                # Dead without a report yet. Its own ChildFailed/ChildExited is normally right
                # behind in our inbox, so wait out the ping deadline before declaring it.
                log.debug("ping of %s failed", child.name, exc_info=True)
                if overdue:
                    pending = salvage(ref.actor_inbox, child.name)
                    error = ActorDiedError("stopped without reporting a failure")
                    report = failure_report(
                        child.name, child.generation, error, "liveness", pending
                    )
                    self._failed(child, report)
                return
        child.ping = ref.ask(Ping(), block=False)
        child.ping_sent_at = now

    def _hung(self, child: _Child, ref: ActorRef[Any], error: Exception) -> None:
        pending = self._abandon(child, ref)
        report = failure_report(child.name, child.generation, error, "liveness", pending)
        stack = _thread_stack(child.thread_id)
        if stack:
            report = ChildFailed(
                report.name,
                report.generation,
                report.error_type,
                report.message,
                f"stuck at:\n{stack}",
                report.phase,
                report.pending,
            )
        self._failed(child, report)


def _thread_stack(thread_id: int) -> str:
    """Where a (stuck) thread is right now: the most useful clue about a hang."""
    frame = sys._current_frames().get(thread_id) if thread_id else None
    if frame is None:
        return ""
    lines = "".join(traceback.format_stack(frame)).rstrip("\n").splitlines()
    return "\n".join(lines[-TRACEBACK_LINES:])
