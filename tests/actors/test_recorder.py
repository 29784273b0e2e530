"""Recording supervision events into the real event store."""

from __future__ import annotations

import logging
from pathlib import Path

import pykka
import pytest

from actors.recorder import ListRecorder, StoreRecorder
from actors.supervisor import Supervisor
from eventstore import SQLiteEventStore
from tests.actors.support import FAST, Control, wait_until, worker_spec


def test_store_recorder_appends_in_order_to_the_named_stream(tmp_path: Path) -> None:
    with SQLiteEventStore(tmp_path / "events.db") as store:
        recorder = StoreRecorder(store)
        for n in range(50):
            recorder.record("actor-w", "Tick", {"n": n})
        wait_until(lambda: store.stream_version("actor-w") == 50)
        events = store.read_stream("actor-w")
        assert [e.data["n"] for e in events] == list(range(50))
        assert {e.type for e in events} == {"Tick"}


def test_store_recorder_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SQLiteEventStore(tmp_path / "events.db")
    recorder = StoreRecorder(store)
    recorder.record("actor-w", "Unencodable", {"value": object()})
    store.close()
    recorder.record("actor-w", "AfterClose", {})
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("Unencodable" in m for m in messages)
    assert any("AfterClose" in m for m in messages)


def test_supervision_events_land_in_the_store(tmp_path: Path) -> None:
    with SQLiteEventStore(tmp_path / "events.db") as store:
        spec = worker_spec("w", Control())
        root = Supervisor("root", [spec], backoff=FAST, recorder=StoreRecorder(store))
        root.launch()
        try:
            wait_until(lambda: spec.handle.state == "running")
            spec.handle.tell("crash")
            wait_until(lambda: spec.handle.restarts == 1 and spec.handle.state == "running")
        finally:
            root.actor_ref.stop(timeout=5)
        wait_until(lambda: store.stream_version("supervisor-root") == 2)
        types = [e.type for e in store.read_stream("actor-w")]
        assert types == [
            "ActorStarting",
            "ActorStarted",
            "ActorFailed",
            "ActorRestarting",
            "ActorStarting",
            "ActorStarted",
            "ActorStopped",
        ]
        failed = store.read_stream("actor-w")[2].data
        assert failed["error_type"] == "ValueError"
        assert "boom" in failed["traceback"]
        sup = [e.type for e in store.read_stream("supervisor-root")]
        assert sup == ["SupervisorStarted", "SupervisorStopped"]


def test_list_recorder_filters() -> None:
    recorder = ListRecorder()
    recorder.record("a", "X", {"n": 1})
    recorder.record("b", "Y", {"n": 2})
    assert recorder.types() == ["X", "Y"]
    assert [e.data["n"] for e in recorder.events(stream="b")] == [2]
    assert recorder.events(type="X")[0].stream == "a"
    recorder.clear()
    assert recorder.events() == []
    pykka.ActorRegistry.stop_all()
