"""The single-thread timer that paces restarts and periodic ticks."""

from __future__ import annotations

import threading
import time

import pytest

from actors.scheduler import Scheduler
from tests.actors.support import wait_until


def test_callbacks_run_in_due_order_not_submission_order() -> None:
    scheduler = Scheduler("t")
    fired: list[str] = []
    try:
        scheduler.call_later(0.06, lambda: fired.append("late"))
        scheduler.call_later(0.02, lambda: fired.append("early"))
        scheduler.call_later(0.0, lambda: fired.append("now"))
        wait_until(lambda: len(fired) == 3)
    finally:
        scheduler.close()
    assert fired == ["now", "early", "late"]


def test_delay_is_respected() -> None:
    scheduler = Scheduler("t")
    fired: list[float] = []
    began = time.monotonic()
    try:
        scheduler.call_later(0.05, lambda: fired.append(time.monotonic()))
        wait_until(lambda: fired)
    finally:
        scheduler.close()
    assert 0.049 <= fired[0] - began < 0.2


def test_cancelled_timers_do_not_fire() -> None:
    scheduler = Scheduler("t")
    fired: list[int] = []
    try:
        handle = scheduler.call_later(0.02, lambda: fired.append(1))
        scheduler.call_later(0.04, lambda: fired.append(2))
        handle.cancel()
        assert scheduler.pending == 1
        wait_until(lambda: fired)
    finally:
        scheduler.close()
    assert fired == [2]


def test_a_failing_callback_does_not_stop_the_others() -> None:
    scheduler = Scheduler("t")
    fired: list[int] = []

    def boom() -> None:
        raise RuntimeError("callback bug")

    try:
        scheduler.call_later(0.0, boom)
        scheduler.call_later(0.01, lambda: fired.append(1))
        wait_until(lambda: fired)
    finally:
        scheduler.close()


def test_close_ends_the_thread_and_refuses_new_timers() -> None:
    before = threading.active_count()
    scheduler = Scheduler("t")
    scheduler.call_later(10.0, lambda: None)
    assert threading.active_count() == before + 1
    scheduler.close()
    assert threading.active_count() == before
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.call_later(0.0, lambda: None)
