"""adapters/twisted_bridge.py: with a fake reactor (Clock + a thread-safe callFromThread queue)
in-process, and with a real reactor and real pykka actors in subprocesses (a reactor cannot be
restarted within one process)."""

from __future__ import annotations

import queue
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from adapters.twisted_bridge import deferred_from_future, install_shutdown, reply_deferred

ROOT = Path(__file__).resolve().parents[2]


class FakeReactor(Clock):
    """Clock for time; callFromThread queues (thread-safe) until the test runs them, like the
    reactor thread picking them up; a real thread pool for deferToThreadPool."""

    def __init__(self) -> None:
        super().__init__()
        self.from_threads: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue()
        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="fake-reactor")
        self.triggers: list[tuple[str, str, Callable[[], Any]]] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        self.from_threads.put((lambda: f(*args, **kw), ()))

    def getThreadPool(self) -> ThreadPool:
        return self.pool

    def addSystemEventTrigger(
        self, phase: str, event: str, f: Callable[..., Any], *args: Any, **kw: Any
    ) -> int:
        self.triggers.append((phase, event, lambda: f(*args, **kw)))
        return len(self.triggers)

    def run_queued(self, until: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("condition not reached")
            try:
                f, _ = self.from_threads.get(timeout=min(remaining, 0.05))
            except queue.Empty:
                continue
            f()


@pytest.fixture
def reactor() -> Iterator[FakeReactor]:
    r = FakeReactor()
    r.pool.start()
    yield r
    r.pool.stop()


def result_of(d: defer.Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


# ------------------------------------------------------------------------------- ReplySlot


def test_reply_from_another_thread(reactor: FakeReactor) -> None:
    slot = reply_deferred(reactor)
    out = result_of(slot.deferred)
    t = threading.Thread(target=slot.resolve, args=(42,))
    t.start()
    t.join()
    assert out == []  # nothing touches the Deferred outside the reactor thread
    reactor.run_queued(lambda: bool(out))
    assert out == [42]


def test_second_resolve_is_ignored(reactor: FakeReactor) -> None:
    slot = reply_deferred(reactor)
    out = result_of(slot.deferred)
    assert slot.resolve("first") is True
    assert slot.resolve("second") is False
    assert slot.fail(RuntimeError("late")) is False
    assert slot.done
    reactor.run_queued(lambda: bool(out))
    assert out == ["first"]
    assert reactor.from_threads.empty()


def test_fail_carries_the_exception(reactor: FakeReactor) -> None:
    slot = reply_deferred(reactor)
    out = result_of(slot.deferred)
    slot.fail(ValueError("bad patch"))
    reactor.run_queued(lambda: bool(out))
    (failure,) = out
    assert isinstance(failure, Failure)
    assert isinstance(failure.value, ValueError)
    assert str(failure.value) == "bad patch"


def test_complete_with(reactor: FakeReactor) -> None:
    ok = reply_deferred(reactor)
    bad = reply_deferred(reactor)
    out_ok, out_bad = result_of(ok.deferred), result_of(bad.deferred)
    ok.complete_with(lambda x: x * 2, 21)
    bad.complete_with(lambda: 1 / 0)
    reactor.run_queued(lambda: bool(out_ok and out_bad))
    assert out_ok == [42]
    assert isinstance(out_bad[0].value, ZeroDivisionError)


def test_timeout_then_late_answer_is_dropped(reactor: FakeReactor) -> None:
    slot = reply_deferred(reactor, timeout=2.0)
    out = result_of(slot.deferred)
    reactor.advance(1.9)
    assert out == []
    reactor.advance(0.2)
    (failure,) = out
    assert isinstance(failure.value, defer.TimeoutError)
    assert slot.resolve("too late") is True  # the actor cannot know; nothing breaks
    reactor.run_queued(lambda: reactor.from_threads.empty())
    assert len(out) == 1


def test_cancelled_then_answer_is_dropped(reactor: FakeReactor) -> None:
    slot = reply_deferred(reactor)
    out = result_of(slot.deferred)
    slot.deferred.cancel()
    assert isinstance(out[0].value, defer.CancelledError)
    slot.fail(RuntimeError("after cancel"))
    reactor.run_queued(lambda: reactor.from_threads.empty())
    assert len(out) == 1


def test_answer_before_timeout_cancels_the_timer(reactor: FakeReactor) -> None:
    slot = reply_deferred(reactor, timeout=5.0)
    out = result_of(slot.deferred)
    slot.resolve("fast")
    reactor.run_queued(lambda: bool(out))
    assert out == ["fast"]
    assert reactor.getDelayedCalls() == []


# ---------------------------------------------------------------------- deferred_from_future


class Echo(pykka.ThreadingActor):
    def echo(self, value: Any, delay: float = 0.0) -> Any:
        time.sleep(delay)
        return value

    def boom(self) -> None:
        raise KeyError("boom")


@pytest.fixture
def echo() -> Iterator[Any]:
    ref = Echo.start()
    yield ref.proxy()
    ref.stop()


def test_future_value(reactor: FakeReactor, echo: Any) -> None:
    out = result_of(deferred_from_future(echo.echo("hi"), 5.0, reactor))
    reactor.run_queued(lambda: bool(out))
    assert out == ["hi"]


def test_future_exception(reactor: FakeReactor, echo: Any) -> None:
    out = result_of(deferred_from_future(echo.boom(), 5.0, reactor))
    reactor.run_queued(lambda: bool(out))
    assert isinstance(out[0].value, KeyError)


def test_future_timeout(reactor: FakeReactor, echo: Any) -> None:
    out = result_of(deferred_from_future(echo.echo("slow", delay=0.5), 0.05, reactor))
    reactor.run_queued(lambda: bool(out))
    assert isinstance(out[0].value, defer.TimeoutError)


# ---------------------------------------------------------------------------- install_shutdown


def test_shutdown_trigger_runs_stop_off_the_reactor_thread(reactor: FakeReactor) -> None:
    ran_in: list[str] = []
    handle = install_shutdown(reactor, lambda: ran_in.append(threading.current_thread().name), 5)
    ((phase, event, trigger),) = reactor.triggers
    assert (phase, event) == ("before", "shutdown")
    out = result_of(trigger())
    reactor.run_queued(lambda: bool(out))
    assert out == [None]
    assert ran_in == ["ghost-shutdown"]
    assert handle.finished.is_set()
    assert not handle.timed_out
    assert reactor.getDelayedCalls() == []


def test_shutdown_timeout_and_errors_never_block_the_exit(reactor: FakeReactor) -> None:
    release = threading.Event()
    handle = install_shutdown(reactor, release.wait, 3)
    out = result_of(reactor.triggers[0][2]())
    reactor.advance(3)
    assert out == [None]
    assert handle.timed_out
    release.set()
    assert handle.finished.wait(5)
    reactor.run_queued(lambda: reactor.from_threads.empty())  # the late completion is harmless

    def fails() -> None:
        raise RuntimeError("stop failed")

    handle2 = install_shutdown(reactor, fails, 3)
    out2 = result_of(reactor.triggers[1][2]())
    reactor.run_queued(lambda: bool(out2))
    assert out2 == [None]
    assert isinstance(handle2.error, RuntimeError)


# ------------------------------------------------------------------- real reactor, subprocess

REAL = textwrap.dedent(
    """
    import sys, threading, time
    sys.path.insert(0, sys.argv[1])
    import pykka
    from twisted.internet import reactor, defer
    from adapters.twisted_bridge import reply_deferred, deferred_from_future, install_shutdown

    class Worker(pykka.ThreadingActor):
        def work(self, slot, value):
            # the actor's own thread resolves the slot
            slot.resolve((value, threading.current_thread() is not threading.main_thread()))
        def slow(self, value):
            time.sleep(0.05)
            return value
        def on_stop(self):
            # needs the reactor while stopping: deadlocks if stop_all runs on the reactor thread
            from twisted.internet import threads
            threads.blockingCallFromThread(reactor, lambda: None)
            print("on_stop done", flush=True)

    proxy = Worker.start().proxy()
    handle = install_shutdown(reactor, lambda: pykka.ActorRegistry.stop_all(timeout=5), 5)

    @defer.inlineCallbacks
    def main():
        heartbeat = []
        loop = __import__("twisted.internet.task", fromlist=["LoopingCall"]).LoopingCall(
            lambda: heartbeat.append(1))
        loop.start(0.01)
        slot = reply_deferred(reactor, timeout=5)
        proxy.work(slot, "v")
        value = yield slot.deferred
        print("slot", value, flush=True)
        got = yield deferred_from_future(proxy.slow("f"), 5, reactor)
        print("future", got, flush=True)
        loop.stop()
        print("reactor alive", len(heartbeat) > 0, flush=True)
        reactor.stop()

    reactor.callWhenRunning(main)
    reactor.run()
    print("stopped", handle.finished.is_set(), handle.timed_out, flush=True)
    """
)


def test_real_reactor_end_to_end() -> None:
    result = subprocess.run(
        [sys.executable, "-c", REAL, str(ROOT)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "slot ('v', True)",
        "future f",
        "reactor alive True",
        "on_stop done",
        "stopped True False",
    ], result.stdout + result.stderr
