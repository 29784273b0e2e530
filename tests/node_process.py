"""A real `bin/ghost-node` process for tests: the one harness every suite starts nodes with.

`NodeProcess(cwd, *args)` runs `ghost-node --port 0 *args` in `cwd` with a clean environment
(none of the caller's NOTIFY_/WATCHDOG_/GHOST_/SLACK_/FAKETIME variables or LD_PRELOAD: a
test passes what it wants in `env`). By default it waits until the node serves: its
node.json names the process's pid and its port accepts connections; then `port`, `token`
and `client()` are set. `wait=False` returns at once (a test of a node that must fail to
start, or that reads its events while it starts). Its stderr goes to a file
(`stderr_path`), never a pipe nobody drains (a full pipe blocks the node's next log line);
`capture=True` pipes stdout and stderr instead, for `output()`. Every node started is
killed by `reap_nodes()` if its test left it running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from eventstore import RecordedEvent, SQLiteEventStore, StoreError
from tests.adapters.web.support import Client, Reply

ROOT = Path(__file__).resolve().parents[1]
NODE = ROOT / "bin" / "ghost-node"
GHOST = ROOT / "bin" / "ghost"

_SCRUBBED = ("NOTIFY_", "WATCHDOG_", "GHOST_", "SLACK_", "FAKETIME")
_STARTED: list[NodeProcess] = []


def clean_env() -> dict[str, str]:
    """This process's environment without anything that would configure a node."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED) and k != "LD_PRELOAD"
    }


def started_count() -> int:
    return len(_STARTED)


def reap_nodes(since: int = 0) -> None:
    """Kill every node started after the first `since` that is still running (a test that
    failed half-way left it)."""
    while len(_STARTED) > since:
        node = _STARTED.pop()
        if node.proc.poll() is None:
            node.kill()


class NodeProcess:
    def __init__(
        self,
        cwd: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
        wait: bool = True,
        capture: bool = False,
        ready_timeout_s: float = 30.0,
    ) -> None:
        self.workspace = cwd
        self.state_dir = state_dir or cwd / ".ghost"
        self.stderr_path = cwd / "ghost-node.stderr"
        self._stderr: IO[bytes] | None = None
        if capture:
            out: Any = subprocess.PIPE
            err: Any = subprocess.PIPE
        else:
            self._stderr = self.stderr_path.open("ab")
            out, err = subprocess.DEVNULL, self._stderr
        self.proc = subprocess.Popen(
            [sys.executable, str(NODE), "--port", "0", *args],
            cwd=cwd,
            env={**clean_env(), "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=out,
            stderr=err,
            text=capture,
        )
        _STARTED.append(self)
        self.port = 0
        self.token = ""
        if wait:
            self.wait_ready(ready_timeout_s)

    @property
    def pid(self) -> int:
        return self.proc.pid

    # --- starting ------------------------------------------------------------------------------
    def stderr_tail(self, n: int = 4000) -> str:
        if not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")[-n:]

    def wait_ready(self, timeout: float = 30.0) -> None:
        node_json = self.state_dir / "node.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"ghost-node exited {self.proc.returncode}: {self.stderr_tail()}"
                )
            try:
                info = json.loads(node_json.read_text())
                if info.get("pid") == self.proc.pid:
                    port = int(info["port"])
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        self.port = port
                        self.token = (self.state_dir / "token").read_text().strip()
                        return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"ghost-node did not serve in {timeout:g} s: {self.stderr_tail()}")

    # --- talking to it -------------------------------------------------------------------------
    def client(self, **kw: Any) -> Client:
        kw.setdefault("token", self.token)
        kw.setdefault("timeout", 30.0)
        return Client(self.port, **kw)

    def health(self, timeout: float = 10.0) -> Reply:
        return self.client(timeout=timeout).get("/health")

    def wait_healthy(self, timeout: float = 30.0, actors: Iterable[str] = ()) -> dict[str, Any]:
        """GET /health 200 with status ok, and every named actor running."""
        wanted = set(actors)

        def ok() -> dict[str, Any] | None:
            try:
                reply = self.health(timeout=5)
            except OSError:
                return None
            if reply.status != 200:
                return None
            body: dict[str, Any] = reply.json
            running = {n for n, a in body.get("actors", {}).items() if a.get("state") == "running"}
            return body if body.get("status") == "ok" and wanted <= running else None

        found: dict[str, Any] = until(ok, f"a healthy node ({sorted(wanted)} running)", timeout)
        return found

    def wait_watchers_ready(self, timeout: float = 30.0) -> None:
        """Every watcher finished its start rescan (so later edits are live changes)."""

        def ready() -> bool:
            try:
                reply = self.client(timeout=5).get("/watch")
            except OSError:
                return False
            if reply.status != 200:
                return False
            watchers = reply.json.get("watchers", [])
            return bool(watchers) and all(w.get("ready") for w in watchers)

        until(ready, "the watchers' start rescans", timeout)

    # --- its events ----------------------------------------------------------------------------
    def events(self) -> list[RecordedEvent]:
        db = self.state_dir / "events.db"
        if not db.exists():
            return []
        try:
            with SQLiteEventStore(db, readonly=True) as store:
                return store.read_all()
        except StoreError:
            return []  # the node has created the file but not its schema yet

    def wait_for(
        self, predicate: Callable[[list[RecordedEvent]], bool], timeout: float = 20
    ) -> list[RecordedEvent]:
        deadline = time.monotonic() + timeout
        events: list[RecordedEvent] = []
        while time.monotonic() < deadline:
            events = self.events()
            if predicate(events):
                return events
            if self.proc.poll() is not None and predicate(self.events()):
                return self.events()
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout}s; events: {[e.type for e in events]}")

    # --- stopping ------------------------------------------------------------------------------
    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def output(self) -> tuple[str, str]:
        """stdout and stderr of a node started with `capture=True`, once it has exited."""
        out, err = self.proc.communicate(timeout=20)
        return out, err

    def stop(self, timeout: float = 30.0, strict: bool = False) -> int:
        """SIGTERM, then the exit code; `strict`: a node that ignores SIGTERM fails the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self._close()
                if strict:
                    raise AssertionError(
                        f"ghost-node ignored SIGTERM: {self.stderr_tail()}"
                    ) from None
        self._close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        if self._stderr is not None:
            self._stderr.close()


def until(check: Callable[[], Any], what: str, timeout: float = 30.0, every: float = 0.05) -> Any:
    """The first truthy value of `check()` within `timeout`, else an AssertionError saying
    `what` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
