"""WatcherActor under a real Supervisor, with a real SQLiteEventStore and real files."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest

from actors.daemon import _expect_writes
from actors.edge import watcher_specs
from actors.handle import ChildHandle
from actors.recorder import StoreRecorder
from actors.spec import ChildSpec
from actors.states import ActorState
from actors.supervisor import Supervisor
from actors.watcher import (
    ExpectWrites,
    GetWatchInfo,
    WatcherActor,
    expect_writes,
    expect_writes_via,
    expectations_of,
    known_state,
    workspace_expectations,
)
from adapters.config import Config, WorkspaceConfig
from adapters.watching import ChangeBatch
from eventstore import RecordedEvent, SQLiteEventStore
from eventstore.protocol import EventStore
from tests.actors.support import wait_until

STREAM = "workspace-main"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    with SQLiteEventStore(tmp_path / "events.db") as s:
        yield s


@pytest.fixture
def ws(tmp_path: Path) -> WorkspaceConfig:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("x = 1\n")
    (root / "README.md").write_text("# hi\n")
    (root / "debug.log").write_text("excluded\n")
    return WorkspaceConfig(name="main", path=root)


@pytest.fixture
def run(
    store: SQLiteEventStore, ws: WorkspaceConfig, start_supervisor: Callable[..., Supervisor]
) -> Iterator[Callable[[], Supervisor]]:
    """Starts the watcher under a supervisor; checks that stopping leaves no thread behind."""
    baseline = threading.active_count()
    started: list[Supervisor] = []

    def start() -> Supervisor:
        recorder = StoreRecorder(store)
        [spec] = watcher_specs(Config(workspaces=(ws,)), store, recorder, debounce_s=0.05)
        sup = start_supervisor("core", [spec], recorder=recorder)
        started.append(sup)
        wait_until(lambda: info(sup)["ready"], what="first rescan")
        # The rescan's batches were told before it was ready, so they are recorded by the
        # time a later ask is answered.
        info(sup)
        return sup

    yield start
    for sup in started:
        sup.actor_ref.stop(timeout=10)
    wait_until(lambda: threading.active_count() <= baseline, what="threads to end")


def info(sup: Supervisor) -> dict[str, Any]:
    result: dict[str, Any] = sup.handle("watcher.main").ask(GetWatchInfo(), timeout=5)
    return result


def changes(store: SQLiteEventStore) -> list[RecordedEvent]:
    return [e for e in store.read_stream(STREAM) if e.type == "FilesChanged"]


def wait_change(store: SQLiteEventStore, path: str, kind: str) -> dict[str, Any]:
    """The event data of the first recorded change of `path` of `kind`."""

    def find() -> dict[str, Any] | None:
        for event in changes(store):
            for change in event.data["paths"]:
                if change["path"] == path and change["kind"] == kind:
                    return {**event.data, "change": change}
        return None

    wait_until(find, what=f"{kind} {path}")
    found = find()
    assert found is not None
    return found


def test_first_start_records_a_baseline_then_edits(
    run: Callable[[], Supervisor], store: SQLiteEventStore, ws: WorkspaceConfig
) -> None:
    sup = run()
    [baseline] = changes(store)
    assert baseline.data["baseline"] is True
    assert baseline.data["source"] == "rescan"
    assert {c["path"]: c["sha256"] for c in baseline.data["paths"]} == {
        "src/app.py": sha("x = 1\n"),
        "README.md": sha("# hi\n"),
    }

    (ws.path / "src" / "app.py").write_text("x = 2\n")
    found = wait_change(store, "src/app.py", "modified")
    assert found["source"] == "external"
    assert found["change"]["sha256"] == sha("x = 2\n")
    assert "initial" not in found
    watch = info(sup)
    assert watch["observer"] in ("inotify", "polling", "native")
    assert watch["patterns"]["include"] == list(ws.include)
    assert watch["last_changes"][-1]["path"] == "src/app.py"


def test_changes_while_stopped_are_reported_on_restart(
    run: Callable[[], Supervisor], store: SQLiteEventStore, ws: WorkspaceConfig
) -> None:
    first = run()
    first.actor_ref.stop(timeout=10)
    (ws.path / "src" / "app.py").write_text("x = 3\n")
    (ws.path / "new.py").write_text("y = 1\n")
    (ws.path / "README.md").unlink()
    (ws.path / "other.log").write_text("excluded\n")

    run()
    modified = wait_change(store, "src/app.py", "modified")
    assert modified["source"] == "rescan"
    assert modified["initial"] is True
    assert "baseline" not in modified
    assert modified["change"]["sha256"] == sha("x = 3\n")
    assert wait_change(store, "new.py", "created")["change"]["sha256"] == sha("y = 1\n")
    assert wait_change(store, "README.md", "deleted")["change"]["sha256"] is None
    assert known_state(store, "main") == {"src/app.py": sha("x = 3\n"), "new.py": sha("y = 1\n")}


def test_expected_writes_carry_the_patch_source(
    run: Callable[[], Supervisor], store: SQLiteEventStore, ws: WorkspaceConfig
) -> None:
    sup = run()
    handle = sup.handle("watcher.main")
    handle.tell(ExpectWrites({"src/app.py": sha("x = 4\n")}, "patch:p1"))
    expect = expect_writes_via(handle)
    expect({"src/gone.py": None, "src/made.py": sha("z\n")}, "patch:p2")
    (ws.path / "src" / "gone.py").write_text("bye\n")
    wait_change(store, "src/gone.py", "created")  # before p2 is announced as its deletion
    info(sup)  # the messages above are handled once the ask answers

    (ws.path / "src" / "app.py").write_text("x = 4\n")
    (ws.path / "src" / "made.py").write_text("z\n")
    (ws.path / "src" / "gone.py").unlink()
    assert wait_change(store, "src/app.py", "modified")["source"] == "patch:p1"
    assert wait_change(store, "src/made.py", "created")["source"] == "patch:p2"
    assert wait_change(store, "src/gone.py", "deleted")["source"] == "patch:p2"

    # Content nobody announced, even on an announced path, stays external.
    handle.tell(ExpectWrites({"src/app.py": sha("x = 5\n")}, "patch:p3"))
    info(sup)
    (ws.path / "src" / "app.py").write_text("x = 6\n")
    wait_until(lambda: changes(store)[-1].data["paths"][0]["sha256"] == sha("x = 6\n"))
    assert changes(store)[-1].data["source"] == "external"


def test_a_supervised_restart_reconciles_from_the_store(
    run: Callable[[], Supervisor], store: SQLiteEventStore, ws: WorkspaceConfig
) -> None:
    sup = run()
    handle = sup.handle("watcher.main")
    ref = handle.ref
    assert ref is not None
    ref.stop(timeout=5)  # a normal exit: the permanent child is started again
    (ws.path / "late.py").write_text("late\n")
    wait_until(lambda: handle.restarts == 1 and handle.state == "running", what="restart")
    assert wait_change(store, "late.py", "created")["source"] in ("rescan", "external")
    events = [c["path"] for e in changes(store) for c in e.data["paths"]]
    assert events.count("late.py") == 1


# --- attribution does not wait in the mailbox (RELIABILITY.md O4) ---------------------------------
class GatedStore:
    """The real store, except that FilesChanged appends wait while the gate is closed: the
    watcher actor's thread is then stuck recording a batch, with its mailbox filling up."""

    def __init__(self, store: SQLiteEventStore) -> None:
        self._store = store
        self._open = threading.Event()
        self._open.set()
        self.blocked = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def append(self, *args: Any, **kwargs: Any) -> Any:
        if not self._open.is_set():
            self.blocked.set()
            self._open.wait(30)
        return self._store.append(*args, **kwargs)

    def close_gate(self) -> None:
        self.blocked.clear()
        self._open.clear()

    def open_gate(self) -> None:
        self._open.set()


def test_announced_writes_are_attributed_while_the_actor_is_busy(
    store: SQLiteEventStore, ws: WorkspaceConfig, start_supervisor: Callable[..., Supervisor]
) -> None:
    reported: list[ChangeBatch] = []

    class Probe(WatcherActor):
        def _on_batch(self, batch: ChangeBatch) -> None:  # the flusher thread
            reported.append(batch)
            super()._on_batch(batch)

    gated = GatedStore(store)
    recorder = StoreRecorder(store)
    spec = ChildSpec(
        "watcher.main", partial(Probe, ws, cast(EventStore, gated), recorder, debounce_s=0.05)
    )
    sup = start_supervisor("core", [spec], recorder=recorder)
    try:
        wait_until(lambda: info(sup)["ready"], what="first rescan")
        info(sup)
        gated.close_gate()
        (ws.path / "README.md").write_text("# someone else\n")
        wait_until(gated.blocked.is_set, what="the actor to be stuck recording a batch")

        # What PatchFlow calls just before writing, then the write itself.
        _expect_writes(spec, {"src/app.py": sha("x = 9\n")}, "patch:p9")
        (ws.path / "src" / "app.py").write_text("x = 9\n")

        def sources() -> list[str]:
            return [b.source for b in reported for c in b.changes if c.sha256 == sha("x = 9\n")]

        wait_until(sources, what="the flusher to report the write while the actor is stuck")
        assert sources() == ["patch:p9"]
    finally:
        gated.open_gate()
    assert wait_change(store, "src/app.py", "modified")["source"] == "patch:p9"
    assert wait_change(store, "README.md", "modified")["source"] == "external"


def test_a_batch_told_behind_the_stop_is_still_recorded(
    store: SQLiteEventStore, ws: WorkspaceConfig, start_supervisor: Callable[..., Supervisor]
) -> None:
    """pykka drops told messages that wait behind a stop. A batch the flusher hands over
    while the actor is busy and its stop is already queued must still be recorded (by
    teardown), or the last edits before a clean stop are lost until the next start. Without
    the fix this test fails every time: the edit is never recorded."""
    told: list[ChangeBatch] = []
    recorded: list[ChangeBatch] = []

    def edits(batches: list[ChangeBatch]) -> list[ChangeBatch]:
        return [b for b in batches for c in b.changes if c.sha256 == sha("x = 2\n")]

    class Probe(WatcherActor):
        def _on_batch(self, batch: ChangeBatch) -> None:  # the flusher thread
            super()._on_batch(batch)
            told.append(batch)

        def _record_batch(self, batch: ChangeBatch, initial: bool) -> None:
            recorded.append(batch)
            super()._record_batch(batch, initial)

    gated = GatedStore(store)
    recorder = StoreRecorder(store)
    spec = ChildSpec(
        "watcher.main", partial(Probe, ws, cast(EventStore, gated), recorder, debounce_s=0.05)
    )
    sup = start_supervisor("core", [spec], recorder=recorder)
    stopper = threading.Thread(target=lambda: sup.actor_ref.stop(timeout=20))
    try:
        wait_until(lambda: info(sup)["ready"], what="first rescan")
        info(sup)
        ref = spec.handle.ref
        assert ref is not None
        gated.close_gate()
        (ws.path / "README.md").write_text("# first\n")
        wait_until(gated.blocked.is_set, what="the actor to be stuck recording a batch")
        queued = ref.actor_inbox.qsize()
        stopper.start()
        wait_until(lambda: ref.actor_inbox.qsize() > queued, what="the stop to be queued")
        (ws.path / "src" / "app.py").write_text("x = 2\n")
        wait_until(lambda: edits(told), what="the flusher to hand over the batch behind the stop")
    finally:
        gated.open_gate()
    stopper.join(20)
    assert not stopper.is_alive()
    assert spec.handle.state == "stopped"
    assert wait_change(store, "README.md", "modified")["source"] == "external"
    assert wait_change(store, "src/app.py", "modified")["change"]["sha256"] == sha("x = 2\n")
    # ...by recording the very batch that waited behind the stop, not by luck of a later flush.
    [behind] = edits(told)
    assert any(b is behind for b in recorded)


def test_announcements_reach_the_live_watcher_across_restarts(
    run: Callable[[], Supervisor], store: SQLiteEventStore, ws: WorkspaceConfig
) -> None:
    sup = run()
    handle = sup.handle("watcher.main")
    expect = expect_writes_via(handle)
    shared = expectations_of(handle)
    assert shared is workspace_expectations(ws)

    ref = handle.ref
    assert ref is not None
    ref.stop(timeout=5)  # a normal exit: the permanent child is started again
    wait_until(lambda: handle.restarts == 1 and handle.state == "running", what="restart")
    # As after any start: the new incarnation's first rescan is done, so the write below is
    # seen by its observer, not raced by the rescan (which may report it as "rescan").
    wait_until(lambda: info(sup)["ready"], what="the new incarnation's first rescan")
    info(sup)
    assert expectations_of(handle) is shared  # the new incarnation's Watcher uses it too
    expect({"src/app.py": sha("x = 7\n")}, "patch:p7")
    (ws.path / "src" / "app.py").write_text("x = 7\n")
    assert wait_change(store, "src/app.py", "modified")["source"] == "patch:p7"


def test_writes_announced_while_the_watcher_is_down_go_to_its_next_start(
    run: Callable[[], Supervisor], store: SQLiteEventStore, ws: WorkspaceConfig
) -> None:
    first = run()
    handle = first.handle("watcher.main")
    assert expectations_of(handle) is not None
    first.actor_ref.stop(timeout=10)
    assert handle.state == "stopped"

    # Down, not coming back under this handle: announcing neither fails nor blocks...
    started = time.monotonic()
    expect_writes(handle, {"src/app.py": sha("x = 8\n")}, "patch:p8")
    assert time.monotonic() - started < 1
    (ws.path / "src" / "app.py").write_text("x = 8\n")
    # ...and the next watcher of the workspace attributes the write in its start rescan.
    run()
    found = wait_change(store, "src/app.py", "modified")
    assert (found["source"], found.get("initial")) == ("patch:p8", True)


def test_announcing_to_a_watcher_that_never_ran_never_fails() -> None:
    handle = ChildHandle("watcher.gone")
    owner = object()
    handle.claim(owner)
    handle.update(owner, ActorState.FATAL)
    expect_writes(handle, {"a.py": None}, "patch:p1")  # logged, not raised
    assert expectations_of(handle) is None
