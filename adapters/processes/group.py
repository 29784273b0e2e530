"""A child process in its own process group, its output captured, and a clean way to end it.

Why the care:
- The child runs in a new session (start_new_session=True), so one killpg() reaches every
  process it spawned that stayed in its group, and a signal meant for it never hits the node.
- The leader is not reaped until terminate(): a pid that is still a zombie cannot be reused, so
  killpg() can never signal some unrelated process group that inherited the number.
- Output is read by one thread per child through a selector with a short timeout, so the thread
  can always be stopped, even when an escaped grandchild keeps the pipe open forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

import psutil

from adapters.processes import tree
from adapters.processes.capture import StreamCapture
from adapters.processes.env import clean_env

log = logging.getLogger(__name__)

Command = Sequence[str] | str
Stream = Literal["stdout", "stderr"]
LineHandler = Callable[[Stream, str], None]

_KILL_WAIT_S = 5.0  # after SIGKILL only an uninterruptible sleep (D state) can delay an exit
_DRAIN_S = 1.0  # how long terminate() lets the reader collect what the dead left in the pipes
_HAS_WAITID = hasattr(os, "waitid")


class ProcessStartError(OSError):
    """The command could not be started (not found, not executable, bad cwd)."""


@dataclass(frozen=True, slots=True)
class ExitStatus:
    exit_code: int | None  # set when the process exited by itself
    signal: int | None  # set when a signal ended it

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        # subprocess's convention: a negative return code is the signal that killed it.
        return cls(None, -returncode) if returncode < 0 else cls(returncode, None)

    @property
    def returncode(self) -> int:
        return self.exit_code if self.exit_code is not None else -(self.signal or 0)

    def describe(self) -> str:
        if self.exit_code is None and self.signal is None:
            return "exit status unknown"
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name}"
        return f"exit code {self.exit_code}"


def argv_of(command: Command) -> list[str]:
    """A string is a shell command line (as in the config); a sequence is an argv list."""
    return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)


class ProcessGroup:
    """One started command. Create with `ProcessGroup.start(...)`; always end with
    `terminate()` (or use it as a context manager), which also reaps it."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        captures: dict[Stream, StreamCapture],
    ) -> None:
        self._proc = proc
        self.pid = proc.pid
        self.pgid = proc.pid  # new session: the leader's pid is the group id
        self.captures = captures
        self._exit: ExitStatus | None = None
        self._reaped = False
        self._lock = threading.RLock()
        self._stop_reading = threading.Event()
        # Daemon: a node that exits without terminate() must not hang on a blocked reader.
        self._reader = threading.Thread(target=self._pump, name=f"output-{proc.pid}", daemon=True)
        self._reader.start()

    @classmethod
    def start(
        cls,
        command: Command,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        merge_stderr: bool = False,
        tail_bytes: int = 64 * 1024,
        keep_bytes: int = 0,
        on_line: LineHandler | None = None,
    ) -> ProcessGroup:
        """Start `command`. `env` None means the node's environment without its secrets.
        `keep_bytes` > 0 keeps a full copy of stdout up to that size (test output).
        `merge_stderr` sends stderr into stdout, keeping the order a terminal would show.
        `on_line(stream, line)` runs on the reader thread: keep it short (the child blocks
        when its pipe is full) and do not call terminate() from it."""
        argv = argv_of(command)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(clean_env() if env is None else env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            where = f" in {os.fspath(cwd)}" if cwd is not None else ""
            raise ProcessStartError(
                e.errno, f"cannot start {argv[0]!r}{where}: {e.strerror or e}"
            ) from e

        def capture(stream: Stream) -> StreamCapture:
            handler = None if on_line is None else (lambda line: on_line(stream, line))
            keep = keep_bytes if stream == "stdout" else 0
            return StreamCapture(tail_bytes=tail_bytes, keep_bytes=keep, on_line=handler)

        streams: list[Stream] = ["stdout"] if merge_stderr else ["stdout", "stderr"]
        return cls(proc, {s: capture(s) for s in streams})

    # --- state ---------------------------------------------------------------------------

    def poll(self) -> ExitStatus | None:
        """The leader's exit status once it has exited (without reaping it), else None."""
        if self._exit is None:
            self._exit = self._peek()
        return self._exit

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        """Wait for the leader to exit; None if it is still running after `timeout` seconds.
        Its grandchildren may still run: terminate() ends them."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while (status := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            left = 0.05 if deadline is None else max(0.0, deadline - time.monotonic())
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)
        return status

    @property
    def running(self) -> bool:
        return self.poll() is None

    def processes(self) -> list[psutil.Process]:
        """Every live process of this child: leader, descendants, group members."""
        if self._reaped:
            return tree.group_members(self.pgid)
        return tree.family(self.pid, self.pgid)

    # --- ending it -----------------------------------------------------------------------

    def terminate(self, grace_s: float = 5.0) -> ExitStatus:
        """SIGTERM every process of the child, SIGKILL whatever is left after `grace_s`,
        reap the leader and stop the reader thread. Safe to call again (returns the same)."""
        with self._lock:
            if self._reaped:
                assert self._exit is not None
                return self._exit
            # Snapshot the tree while parent links still exist: it finds descendants that
            # left the group, which killpg() would miss.
            escaped = [p for p in self.processes() if p.pid != self.pid]
            self._signal(signal.SIGTERM, escaped)
            if not self._all_gone(grace_s, escaped):
                self._signal(signal.SIGKILL, escaped)
                if not self._all_gone(_KILL_WAIT_S, escaped):
                    log.warning("pid %d: processes survive SIGKILL (D state?)", self.pid)
            self._proc.wait()
            self._reaped = True
            self._exit = ExitStatus.from_returncode(self._proc.returncode)
            self._stop_reader()
            return self._exit

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.terminate()

    def _signal(self, sig: signal.Signals, others: list[psutil.Process]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)
        for proc in others:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.send_signal(sig)  # psutil refuses if the pid was reused meanwhile

    def _all_gone(self, timeout: float, others: list[psutil.Process]) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            # The leader counts as gone once it exited: it stays a zombie until we reap it.
            alive = [p for p in tree.group_members(self.pgid) if p.pid != self.pid]
            alive += [p for p in others if tree.is_live(p)]
            if self.poll() is not None and not alive:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _peek(self) -> ExitStatus | None:
        if self._reaped:
            return self._exit
        if not _HAS_WAITID:  # pragma: no cover - fallback that reaps (no pid pinning)
            rc = self._proc.poll()
            return None if rc is None else ExitStatus.from_returncode(rc)
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            # terminate() reaped it in another thread (the lock waits for it to finish), or
            # someone called os.wait() behind our back.
            with self._lock:
                return self._exit if self._reaped else ExitStatus(None, None)
        if info is None:
            return None
        if info.si_code == os.CLD_EXITED:
            return ExitStatus(info.si_status, None)
        return ExitStatus(None, info.si_status)

    # --- output --------------------------------------------------------------------------

    def _pump(self) -> None:
        pipes = {"stdout": self._proc.stdout, "stderr": self._proc.stderr}
        selector = selectors.DefaultSelector()
        try:
            for stream, capture in self.captures.items():
                pipe = pipes[stream]
                assert pipe is not None
                os.set_blocking(pipe.fileno(), False)
                selector.register(pipe.fileno(), selectors.EVENT_READ, capture)
            while selector.get_map() and not self._stop_reading.is_set():
                for key, _ in selector.select(timeout=0.1):
                    try:
                        data = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if data:
                        key.data.feed(data)
                    else:
                        selector.unregister(key.fd)
        finally:
            selector.close()
            for capture in self.captures.values():
                capture.close()
            for pipe in pipes.values():
                if pipe is not None:
                    pipe.close()

    def _stop_reader(self) -> None:
        # EOF comes once every writer is dead; give it a moment, then stop regardless.
        if threading.current_thread() is self._reader:  # terminate() from a line callback
            self._stop_reading.set()
            return
        self._reader.join(_DRAIN_S)
        self._stop_reading.set()
        self._reader.join()
