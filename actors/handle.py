"""ChildHandle: the stable address of a supervised child, across its restarts.

Callers hold the handle, never a raw ActorRef (which dies with each incarnation). The handle
answers at once when the child is not serving: asks raise ChildUnavailableError instead of
hanging; tells are kept (bounded, in order) while the child is starting or in backoff and are
delivered to the next incarnation, or rejected with ChildUnavailableError when the buffer is full
or the child is not coming back (stopped, fatal). Nothing is dropped silently.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from pykka import ActorDeadError, ActorRef, Future

from actors.errors import ChildUnavailableError
from actors.states import COMING_BACK, ActorState

DEFAULT_BUFFER = 1000


class ChildHandle:
    """Thread-safe; any thread may tell/ask. Only the owning supervisor updates it."""

    def __init__(self, name: str, buffer_size: int = DEFAULT_BUFFER) -> None:
        if buffer_size < 0:
            raise ValueError(f"buffer_size must be >= 0, got {buffer_size}")
        self.name = name
        self.buffer_size = buffer_size
        self._lock = threading.Lock()
        self._owner: object = None
        self._ref: ActorRef[Any] | None = None
        # Not started yet counts as "coming": a daemon may wire handles before the tree starts.
        self._state = ActorState.STARTING
        self._buffer: deque[Any] = deque()
        self._restarts = 0

    def __repr__(self) -> str:
        return f"<ChildHandle {self.name} {self._state} restarts={self._restarts}>"

    # --- for callers ---------------------------------------------------------------------------
    @property
    def state(self) -> ActorState:
        return self._state

    @property
    def restarts(self) -> int:
        return self._restarts

    @property
    def buffered(self) -> int:
        with self._lock:
            return len(self._buffer)

    @property
    def ref(self) -> ActorRef[Any] | None:
        """The current incarnation's ref while RUNNING, else None. Do not keep it."""
        with self._lock:
            return self._ref if self._state is ActorState.RUNNING else None

    def tell(self, message: Any) -> None:
        with self._lock:
            if self._state is ActorState.RUNNING and self._ref is not None and not self._buffer:
                try:
                    self._ref.tell(message)
                except ActorDeadError:
                    pass  # died before its supervisor noticed: keep it for the next one
                else:
                    return
            elif self._state is not ActorState.RUNNING and self._state not in COMING_BACK:
                raise ChildUnavailableError(self.name, self._state, "not coming back")
            if len(self._buffer) >= self.buffer_size:
                raise ChildUnavailableError(
                    self.name, self._state, f"{self.buffer_size} messages already waiting"
                )
            self._buffer.append(message)

    def ask_future(self, message: Any) -> Future[Any]:
        """A pykka Future for the answer; raises ChildUnavailableError at once if not serving."""
        ref = self._serving_ref()
        future: Future[Any] = ref.ask(message, block=False)
        return future

    def ask(self, message: Any, timeout: float | None = None) -> Any:
        """Ask and wait up to `timeout` (pykka.Timeout after it)."""
        ref = self._serving_ref()
        try:
            return ref.ask(message, timeout=timeout)
        except ActorDeadError as exc:
            raise ChildUnavailableError(self.name, "failed", "died while asked") from exc

    def _serving_ref(self) -> ActorRef[Any]:
        with self._lock:
            ref, state = self._ref, self._state
        if state is not ActorState.RUNNING or ref is None or not ref.is_alive():
            raise ChildUnavailableError(self.name, state)
        return ref

    # --- for the owning supervisor -------------------------------------------------------------
    def claim(self, owner: object) -> None:
        """Make `owner` (a supervisor instance) the only one whose updates count from now on,
        so that a previous, abandoned incarnation of the supervisor cannot clobber the state."""
        with self._lock:
            self._owner = owner

    def update(
        self,
        owner: object,
        state: ActorState,
        ref: ActorRef[Any] | None = None,
        pending: Iterable[Any] = (),
    ) -> None:
        """Enter `state`. With RUNNING and a ref, deliver the kept messages first, in order.
        `pending` (salvaged from a dead incarnation) goes before anything kept since."""
        with self._lock:
            if owner is not self._owner:
                return
            salvaged = list(pending)
            if salvaged:
                # Salvaged messages may push the buffer past its bound: they were accepted
                # once already, so they are kept; the bound only refuses new tells.
                self._buffer.extendleft(reversed(salvaged))
            self._state = state
            self._ref = ref if state is ActorState.RUNNING else None
            if self._ref is not None:
                self._flush(self._ref)

    def count_restart(self, owner: object) -> None:
        with self._lock:
            if owner is self._owner:
                self._restarts += 1

    def _flush(self, ref: ActorRef[Any]) -> None:
        while self._buffer:
            try:
                ref.tell(self._buffer[0])
            except ActorDeadError:
                return  # died already: the rest waits for the next incarnation
            self._buffer.popleft()
