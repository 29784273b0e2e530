"""Supervision on real threads: every way a child fails is noticed, restarts follow the
policy, and every transition is recorded in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from actors.backoff import BackoffPolicy
from actors.errors import ChildUnavailableError
from actors.messages import GaveUp
from actors.recorder import ListRecorder
from actors.spec import ChildSpec, Liveness, Restart, Strategy
from actors.states import ActorState
from actors.supervisor import Supervisor
from tests.actors.support import Control, Worker, wait_until, worker_spec

Start = Callable[..., Supervisor]


def running(spec: ChildSpec, restarts: int) -> Callable[[], bool]:
    return lambda: spec.handle.state is ActorState.RUNNING and spec.handle.restarts >= restarts


def test_exception_in_a_told_message_restarts_the_child_and_records_it(
    start_supervisor: Start, recorder: ListRecorder
) -> None:
    control = Control()
    spec = worker_spec("w", control)
    start_supervisor("root", [spec])
    spec.handle.tell("crash")
    wait_until(running(spec, 1))
    assert spec.handle.ask(("echo", 42), timeout=2) == 42
    assert recorder.types("actor-w") == [
        "ActorStarting",
        "ActorStarted",
        "ActorFailed",
        "ActorRestarting",
        "ActorStarting",
        "ActorStarted",
    ]
    failed = recorder.events("actor-w", "ActorFailed")[0].data
    assert failed["error_type"] == "ValueError"
    assert failed["message"] == "boom"
    assert failed["phase"] == "receive"
    assert 'raise ValueError("boom")' in failed["traceback"]
    assert len(failed["traceback"].splitlines()) <= 20
    restarting = recorder.events("actor-w", "ActorRestarting")[0].data
    assert restarting["attempt"] == 1
    assert restarting["delay_s"] == pytest.approx(0.01)
    assert control.starts == 2
    assert control.teardowns == 1  # the failed incarnation released its resources


def test_exception_in_setup_is_noticed_and_retried(
    start_supervisor: Start, recorder: ListRecorder
) -> None:
    control = Control(fail_starts=2)
    spec = worker_spec("w", control)
    start_supervisor("root", [spec])
    assert spec.handle.restarts == 2
    failures = recorder.events("actor-w", "ActorFailed")
    assert [f.data["phase"] for f in failures] == ["start", "start"]
    assert [f.data["message"] for f in failures] == ["setup failure 1", "setup failure 2"]
    attempts = [e.data["attempt"] for e in recorder.events("actor-w", "ActorRestarting")]
    assert attempts == [1, 2]
    assert control.teardowns == 2  # teardown also runs after a failed setup


def test_exception_in_an_ask_only_fails_the_caller(
    start_supervisor: Start, recorder: ListRecorder
) -> None:
    spec = worker_spec("w", Control())
    start_supervisor("root", [spec])
    with pytest.raises(KeyError, match="only the caller"):
        spec.handle.ask(("ask-crash",), timeout=2)
    assert spec.handle.ask(("echo", "still here"), timeout=2) == "still here"
    assert spec.handle.restarts == 0
    assert "ActorFailed" not in recorder.types("actor-w")


def test_hung_child_is_abandoned_and_replaced(
    start_supervisor: Start, recorder: ListRecorder, released: list[threading.Event]
) -> None:
    control = Control()
    spec = worker_spec("w", control)
    start_supervisor("root", [spec], liveness=Liveness(interval_s=0.02, timeout_s=0.15))
    stuck = threading.Event()
    released.append(stuck)
    spec.handle.tell(("hang", stuck))
    spec.handle.tell("after-the-hang")  # queued behind the stuck message
    wait_until(running(spec, 1))
    failed = recorder.events("actor-w", "ActorFailed")[0].data
    assert failed["error_type"] == "ActorHungError"
    assert failed["phase"] == "liveness"
    assert "stuck at:" in failed["traceback"]
    assert "event.wait()" in failed["traceback"]  # the stuck thread's own stack
    # the message behind the stuck one was salvaged for the replacement
    wait_until(lambda: control.received == ["after-the-hang"])
    status = spec.handle.ask(("echo", "new"), timeout=2)
    assert status == "new"
    # once the stuck handler returns, the abandoned incarnation ends and cleans up
    stuck.set()
    wait_until(lambda: control.teardowns == 1)


def test_setup_that_never_finishes_is_a_failure(
    start_supervisor: Start, recorder: ListRecorder, released: list[threading.Event]
) -> None:
    gate = threading.Event()
    released.append(gate)
    control = Control(hang_start=gate)
    spec = worker_spec("w", control)
    liveness = Liveness(interval_s=0.02, timeout_s=1.0, start_timeout_s=0.1)
    start_supervisor("root", [spec], wait=False, liveness=liveness)
    wait_until(lambda: recorder.events("actor-w", "ActorFailed"))
    assert recorder.events("actor-w", "ActorFailed")[0].data["error_type"] == "StartTimeoutError"
    gate.set()  # let the next incarnations start
    wait_until(running(spec, 1))


def test_sys_exit_in_a_child_takes_down_only_that_child(
    start_supervisor: Start, recorder: ListRecorder
) -> None:
    a, b = worker_spec("a", Control()), worker_spec("b", Control())
    supervisor = start_supervisor("root", [a, b])
    a.handle.tell("sysexit")
    wait_until(running(a, 1))
    failed = recorder.events("actor-a", "ActorFailed")[0].data
    assert failed["error_type"] == "ActorExitError"
    assert "SystemExit" in failed["message"]
    assert b.handle.ask(("echo", "b"), timeout=2) == "b"
    assert b.handle.restarts == 0
    assert supervisor.actor_ref.is_alive()


@pytest.mark.parametrize(
    ("restart", "after_crash", "after_exit"),
    [
        (Restart.PERMANENT, "ActorStarted", "ActorStarted"),
        (Restart.TRANSIENT, "ActorStarted", "ActorStopped"),
        (Restart.TEMPORARY, "ActorFatal", "ActorStopped"),
    ],
)
def test_restart_types(
    start_supervisor: Start,
    recorder: ListRecorder,
    restart: Restart,
    after_crash: str,
    after_exit: str,
) -> None:
    """permanent: restarted after a crash and a normal exit; transient: only after a crash;
    temporary: never (a crash leaves it FATAL, an exit STOPPED)."""
    crashes = worker_spec("crashes", Control(), restart=restart)
    exits = worker_spec("exits", Control(), restart=restart)
    start_supervisor("root", [crashes, exits])
    crashes.handle.tell("crash")
    exits.handle.tell("exit")
    crash_events = 4 if restart is Restart.TEMPORARY else 6
    exit_events = 5 if restart is Restart.PERMANENT else 3
    wait_until(lambda: len(recorder.types("actor-crashes")) == crash_events)
    wait_until(lambda: len(recorder.types("actor-exits")) == exit_events)
    assert recorder.types("actor-crashes")[-1] == after_crash
    assert recorder.types("actor-exits")[-1] == after_exit
    assert crashes.handle.restarts == (0 if restart is Restart.TEMPORARY else 1)
    assert exits.handle.restarts == (1 if restart is Restart.PERMANENT else 0)
    if restart is not Restart.PERMANENT:
        with pytest.raises(ChildUnavailableError, match="not coming back"):
            exits.handle.tell("anything")


def test_backoff_delays_grow_on_real_timing(
    start_supervisor: Start, recorder: ListRecorder
) -> None:
    control = Control(fail_starts=4)
    spec = worker_spec("w", control)
    backoff = BackoffPolicy(min_s=0.02, max_s=0.1, factor=2.0, jitter=0.0)
    start_supervisor("root", [spec], backoff=backoff, wait=False)
    wait_until(running(spec, 4))
    restarting = recorder.events("actor-w", "ActorRestarting")
    starting = recorder.events("actor-w", "ActorStarting")[1:]
    assert [e.data["delay_s"] for e in restarting] == pytest.approx([0.02, 0.04, 0.08, 0.1])
    waited = [s.at - r.at for r, s in zip(restarting, starting, strict=True)]
    for planned, actual in zip([0.02, 0.04, 0.08, 0.1], waited, strict=True):
        assert planned - 0.002 <= actual < planned + 0.05


def test_one_for_all_restarts_the_siblings(start_supervisor: Start, recorder: ListRecorder) -> None:
    controls = [Control(), Control(), Control()]
    specs = [worker_spec(n, c) for n, c in zip("abc", controls, strict=True)]
    start_supervisor("root", specs, strategy=Strategy.ONE_FOR_ALL)
    specs[1].handle.tell("crash")
    for spec in specs:
        wait_until(running(spec, 1))
    assert [c.starts for c in controls] == [2, 2, 2]
    assert [c.teardowns for c in controls] == [1, 1, 1]
    sibling = recorder.events("actor-a", "ActorRestarting")[0].data
    assert sibling["cause"] == "one_for_all: b restarting"
    assert recorder.types("actor-a") == [
        "ActorStarting",
        "ActorStarted",
        "ActorRestarting",
        "ActorStarting",
        "ActorStarted",
    ]
    # restarted in spec order
    starts = sorted(
        (e.at, e.stream) for e in recorder.events(type="ActorStarting") if e.data["generation"] == 2
    )
    assert [stream for _, stream in starts] == ["actor-a", "actor-b", "actor-c"]


def test_one_for_one_leaves_the_siblings_alone(start_supervisor: Start) -> None:
    a, b = Control(), Control()
    specs = [worker_spec("a", a), worker_spec("b", b)]
    start_supervisor("root", specs)
    specs[0].handle.tell("crash")
    wait_until(running(specs[0], 1))
    assert (a.starts, b.starts) == (2, 1)


def test_asks_during_backoff_fail_fast_and_tells_wait_for_the_restart(
    start_supervisor: Start,
) -> None:
    control = Control()
    spec = worker_spec("w", control)
    backoff = BackoffPolicy(min_s=0.3, max_s=0.3, jitter=0.0)
    start_supervisor("root", [spec], backoff=backoff)
    spec.handle.tell("crash")
    wait_until(lambda: spec.handle.state is ActorState.BACKOFF)
    began = time.monotonic()
    with pytest.raises(ChildUnavailableError, match="'w' is unavailable \\(backoff\\)"):
        spec.handle.ask(("echo", 1), timeout=5)
    with pytest.raises(ChildUnavailableError):
        spec.handle.ask_future(("echo", 1))
    assert time.monotonic() - began < 0.05
    for n in range(5):
        spec.handle.tell(("during-backoff", n))
    assert control.received == []
    wait_until(running(spec, 1))
    wait_until(lambda: len(control.received) == 5)
    assert control.received == [("during-backoff", n) for n in range(5)]


def test_messages_queued_behind_a_crash_reach_the_next_incarnation(
    start_supervisor: Start,
) -> None:
    control = Control()
    spec = worker_spec("w", control)
    start_supervisor("root", [spec])
    spec.handle.tell("crash")
    for n in range(3):
        spec.handle.tell(("queued", n))
    wait_until(lambda: len(control.received) == 3)
    assert control.received == [("queued", n) for n in range(3)]
    assert spec.handle.restarts == 1


def test_a_full_buffer_rejects_loudly(start_supervisor: Start) -> None:
    spec = worker_spec("w", Control(), buffer_size=2)
    backoff = BackoffPolicy(min_s=5.0, max_s=5.0)
    start_supervisor("root", [spec], backoff=backoff)
    spec.handle.tell("crash")
    wait_until(lambda: spec.handle.state is ActorState.BACKOFF)
    spec.handle.tell(1)
    spec.handle.tell(2)
    with pytest.raises(ChildUnavailableError, match="2 messages already waiting"):
        spec.handle.tell(3)


def test_a_failing_factory_counts_as_a_failure(
    start_supervisor: Start, recorder: ListRecorder
) -> None:
    calls = []

    def factory() -> Worker:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("cannot build")
        return Worker(Control())

    spec = ChildSpec("w", factory)
    start_supervisor("root", [spec])
    assert spec.handle.restarts == 2
    phases = [e.data["phase"] for e in recorder.events("actor-w", "ActorFailed")]
    assert phases == ["factory", "factory"]


def test_intensity_exceeded_escalates_to_the_parent(
    start_supervisor: Start, recorder: ListRecorder
) -> None:
    control = Control()
    leaf = worker_spec("leaf", control)

    def inner() -> Supervisor:
        return Supervisor(
            "inner",
            [leaf],
            backoff=BackoffPolicy(0, 0),
            max_restarts=2,
            recorder=recorder,
            liveness=Liveness(interval_s=None),
        )

    given_up: list[GaveUp] = []
    inner_spec = ChildSpec("inner", inner)
    start_supervisor("root", [inner_spec], max_restarts=5, on_give_up=given_up.append)
    wait_until(running(leaf, 0))
    for expected_restarts in (1, 2):
        leaf.handle.tell("crash")
        wait_until(running(leaf, expected_restarts))
    leaf.handle.tell("crash")  # the third within the period: inner gives up
    wait_until(lambda: inner_spec.handle.restarts == 1 and inner_spec.handle.state == "running")
    gave_up = recorder.events("supervisor-inner", "SupervisorGaveUp")
    assert len(gave_up) == 1
    assert gave_up[0].data["restarts"] == 3
    assert gave_up[0].data["max_restarts"] == 2
    assert gave_up[0].data["actor"] == "leaf"
    escalated = recorder.events("actor-inner", "ActorFailed")[0].data
    assert escalated["error_type"] == "SupervisorGaveUpError"
    assert escalated["phase"] == "escalation"
    # the new inner supervisor started a fresh leaf, reachable through the same handle
    wait_until(lambda: len(recorder.events("actor-leaf", "ActorStarted")) == 4)
    wait_until(lambda: leaf.handle.state is ActorState.RUNNING)
    assert control.starts == 4
    assert leaf.handle.ask(("echo", "back"), timeout=2) == "back"
    assert given_up == []


def test_root_giving_up_calls_on_give_up_and_stops_everything(
    start_supervisor: Start, recorder: ListRecorder
) -> None:
    crashing, bystander = Control(), Control()
    specs = [worker_spec("crashing", crashing), worker_spec("bystander", bystander)]
    given_up: list[GaveUp] = []
    root = start_supervisor(
        "root", specs, backoff=BackoffPolicy(0, 0), max_restarts=1, on_give_up=given_up.append
    )
    specs[0].handle.tell("crash")
    wait_until(running(specs[0], 1))
    specs[0].handle.tell("crash")
    wait_until(lambda: given_up)
    assert given_up[0].supervisor == "root"
    assert given_up[0].error_type == "SupervisorGaveUpError"
    assert given_up[0].restarts == 2
    wait_until(lambda: not root.actor_ref.is_alive())
    assert [s.handle.state for s in specs] == [ActorState.FATAL, ActorState.FATAL]
    assert bystander.teardowns == 1
    with pytest.raises(ChildUnavailableError):
        specs[1].handle.tell("x")
    assert recorder.types("supervisor-root") == ["SupervisorStarted", "SupervisorGaveUp"]


def test_root_supervisor_crash_also_gives_up(start_supervisor: Start) -> None:
    given_up: list[GaveUp] = []
    root = start_supervisor("root", [], on_give_up=given_up.append)

    def explode(message: object) -> None:
        raise RuntimeError("bug in the supervisor")

    root.receive = explode  # type: ignore[method-assign]
    root.actor_ref.tell("anything")
    wait_until(lambda: given_up)
    assert given_up[0].error_type == "RuntimeError"


def test_clean_stop_stops_children_in_reverse_order(
    start_supervisor: Start, recorder: ListRecorder
) -> None:
    specs = [worker_spec(n, Control()) for n in "abc"]
    root = start_supervisor("root", specs)
    root.actor_ref.stop(timeout=5)
    stopped = sorted((e.at, e.stream) for e in recorder.events(type="ActorStopped"))
    assert [s for _, s in stopped] == ["actor-c", "actor-b", "actor-a"]
    assert recorder.types("supervisor-root") == ["SupervisorStarted", "SupervisorStopped"]
    assert all(s.handle.state is ActorState.STOPPED for s in specs)


def test_children_status_through_a_proxy(start_supervisor: Start) -> None:
    specs = [worker_spec("a", Control()), worker_spec("b", Control())]
    root = start_supervisor("root", specs)
    specs[1].handle.tell("crash")
    wait_until(running(specs[1], 1))
    status = root.actor_ref.proxy().children_status().get(timeout=2)
    assert status == {
        "a": {"state": "running", "restarts": 0, "generation": 1, "abandoned": 0},
        "b": {"state": "running", "restarts": 1, "generation": 2, "abandoned": 0},
    }


def test_a_factory_returning_a_started_actor_is_refused(
    start_supervisor: Start, recorder: ListRecorder
) -> None:
    shared = Worker(Control())
    shared.launch()
    spec = ChildSpec("shared", lambda: shared)
    start_supervisor("root", [spec], wait=False, max_restarts=1, on_give_up=lambda _: None)
    wait_until(lambda: spec.handle.state is ActorState.FATAL)
    failed = recorder.events("actor-shared", "ActorFailed")[0].data
    assert failed["phase"] == "factory"
    assert "started already" in failed["message"]
