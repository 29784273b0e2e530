"""A restart storm must not leak threads or memory."""

from __future__ import annotations

import gc
import logging
import threading
import tracemalloc
from collections.abc import Mapping
from typing import Any

import pytest

from actors.backoff import BackoffPolicy
from actors.spec import Liveness
from actors.supervisor import Supervisor
from tests.actors.support import Control, wait_until, worker_spec


class CountingRecorder:
    """Counts events instead of keeping them, so that only the supervisor's memory is seen."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def record(self, stream: str, type: str, data: Mapping[str, Any]) -> None:
        with self.lock:
            self.count += 1


def crash_and_wait(handle: Any, restarts: int) -> None:
    handle.tell("crash")
    handle.tell(("after", restarts))  # salvaged each time: must reach the next incarnation
    wait_until(lambda: handle.restarts >= restarts and handle.state == "running", timeout=5)


def test_two_hundred_restarts_leak_no_threads_and_bounded_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 200 logged tracebacks would otherwise pile up in pytest's log capture.
    caplog.set_level(logging.CRITICAL)
    caplog.set_level(logging.CRITICAL, logger="pykka")
    gc.collect()
    baseline = threading.active_count()
    control = Control()
    spec = worker_spec("w", control)
    recorder = CountingRecorder()
    supervisor = Supervisor(
        "storm",
        [spec],
        backoff=BackoffPolicy(min_s=0.0, max_s=0.0),
        max_restarts=1_000,
        period_s=60.0,
        liveness=Liveness(interval_s=0.01, timeout_s=5.0),  # the liveness timer runs too
        recorder=recorder,
    )
    ref = supervisor.launch()
    try:
        wait_until(lambda: spec.handle.state == "running")
        for n in range(1, 51):
            crash_and_wait(spec.handle, n)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        peak_threads = 0
        for n in range(51, 201):
            crash_and_wait(spec.handle, n)
            peak_threads = max(peak_threads, threading.active_count())
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    finally:
        ref.stop(timeout=5)
    assert spec.handle.restarts == 200
    assert control.starts == 201
    assert control.teardowns == 201
    wait_until(lambda: len(control.received) == 200)
    assert control.received == [("after", n) for n in range(1, 201)]
    # supervisor + its timer thread + one child at a time (+1 old child finishing its exit)
    assert peak_threads <= baseline + 4
    wait_until(lambda: threading.active_count() == baseline, what="threads back to baseline")
    assert grown < 256 * 1024, f"{grown} bytes retained over 150 restarts"
    assert recorder.count >= 200 * 4
