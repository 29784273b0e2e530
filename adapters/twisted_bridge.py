"""Bridging pykka (actor threads) and Twisted (the reactor thread) without blocking the reactor.

Two ways to get an actor's answer into a Deferred (INTEGRATION.md "Reactor and actors"):

- `reply_deferred(reactor, timeout)` (preferred): a `ReplySlot` goes to the actor inside its
  message; the actor calls `slot.resolve(value)` / `slot.fail(exc)` from its own thread, which
  hops to the reactor with `callFromThread`. No thread is parked while the actor works. The slot
  is first-wins and safe to resolve twice, late, or after the Deferred was cancelled or timed out.
- `deferred_from_future(future, timeout, reactor)`: for a pykka Future from `proxy.method()` or
  `ask(block=False)`. It parks a thread-pool thread in `future.get(timeout)`; the pool is small
  (10 by default), so keep timeouts short and prefer reply slots on hot paths.

Never `await` a pykka Future in a Twisted coroutine: its `__await__` blocks the reactor.

Timeouts of both surface as `twisted.internet.defer.TimeoutError`.

`install_shutdown(reactor, stop_fn, timeout)` runs `stop_fn` (e.g. stopping every actor) in a
'before shutdown' trigger, off the reactor thread and bounded in time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import pykka
from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = [
    "ReplySlot",
    "ShutdownHandle",
    "deferred_from_future",
    "install_shutdown",
    "reply_deferred",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class BridgeReactor(Protocol):
    """The reactor methods used here (IReactorTime + IReactorThreads + IReactorCore subset)."""

    # Positional-only (/): implementations name these parameters differently.
    def callFromThread(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None: ...

    def callLater(self, delay: float, f: Callable[..., Any], /, *args: Any, **kw: Any) -> Any: ...

    def getThreadPool(self) -> Any: ...


class ShutdownReactor(BridgeReactor, Protocol):
    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> Any: ...


class ReplySlot(Generic[T]):
    """The actor's end of a Deferred. `resolve`/`fail` may be called from any thread.

    The first call wins and returns True; later calls are ignored and return False. If the
    Deferred was already cancelled or timed out when the answer reaches the reactor thread, the
    answer is dropped (debug log): nobody is waiting for it any more."""

    def __init__(self, reactor: BridgeReactor, deferred: defer.Deferred[T]) -> None:
        self._reactor = reactor
        self._deferred = deferred
        self._lock = threading.Lock()
        self._done = False

    @property
    def deferred(self) -> defer.Deferred[T]:
        """Touch only from the reactor thread (Deferreds are not thread-safe)."""
        return self._deferred

    @property
    def done(self) -> bool:
        """Was resolve/fail called? (Not whether the Deferred fired: that may be a timeout.)"""
        return self._done

    def _claim(self) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True

    def resolve(self, value: T) -> bool:
        if not self._claim():
            return False
        self._reactor.callFromThread(self._deliver, value, None)
        return True

    def fail(self, error: BaseException | Failure) -> bool:
        if not self._claim():
            return False
        # errback(exc) builds the Failure from the exception's own __traceback__, so doing it
        # later on the reactor thread loses nothing.
        self._reactor.callFromThread(self._deliver, None, error)
        return True

    def complete_with(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> bool:
        """Run `fn` here (the actor's thread) and resolve with its result or its exception."""
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - fn's failure is the waiting caller's answer
            return self.fail(exc)
        return self.resolve(value)

    def _deliver(self, value: T | None, failure: BaseException | Failure | None) -> None:
        # Reactor thread. `called` is true after cancel() or a timeout: drop the late answer
        # instead of raising AlreadyCalledError into the reactor.
        if self._deferred.called:
            log.debug("reply arrived after its Deferred fired (cancelled or timed out)")
            return
        if failure is not None:
            self._deferred.errback(failure)
        else:
            self._deferred.callback(value)  # type: ignore[arg-type]


def reply_deferred(reactor: BridgeReactor, timeout: float | None = None) -> ReplySlot[Any]:
    """A new Deferred and its slot (call from the reactor thread). `slot.deferred` is what the
    web layer returns/chains; `slot` is what goes into the actor's message.

    With `timeout`, the Deferred fails with defer.TimeoutError after that many seconds."""
    d: defer.Deferred[Any] = defer.Deferred()
    if timeout is not None:
        d.addTimeout(timeout, reactor)  # type: ignore[arg-type]
    return ReplySlot(reactor, d)


class Waitable(Protocol[T_co]):
    """What can be waited for with a timeout: a pykka Future (an actor's answer)."""

    def get(self, *, timeout: float | None = None) -> T_co: ...


def deferred_from_future(
    future: Waitable[T], timeout: float, reactor: BridgeReactor
) -> defer.Deferred[T]:
    """A Deferred for a pykka Future, waiting for it in the reactor's thread pool."""

    def wait() -> T:
        try:
            return future.get(timeout=timeout)
        except pykka.Timeout:
            raise defer.TimeoutError(timeout, "pykka future") from None

    return _defer_to_pool(reactor, wait)


def _defer_to_pool(reactor: BridgeReactor, fn: Callable[[], T]) -> defer.Deferred[T]:
    # threads.deferToThreadPool, spelled out so that the reactor is always the one passed in
    # (deferToThread would use the global one) and typed against the small protocol above.
    d: defer.Deferred[T] = defer.Deferred()

    def on_result(success: bool, result: Any) -> None:
        if success:
            reactor.callFromThread(d.callback, result)
        else:
            reactor.callFromThread(d.errback, result)

    reactor.getThreadPool().callInThreadWithCallback(on_result, fn)
    return d


class ShutdownHandle:
    """What `install_shutdown` did: `finished` once stop_fn returned, `timed_out` if it did not
    within the timeout (the daemon may then `os._exit`: actor threads are non-daemon and would
    keep the process alive), `error` if it raised."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.finished = threading.Event()
        self.timed_out = False
        self.error: BaseException | None = None
        self.trigger_id: Any = None


def install_shutdown(
    reactor: ShutdownReactor,
    stop_fn: Callable[[], object],
    timeout: float,
) -> ShutdownHandle:
    """Run `stop_fn` before the reactor shuts down, in its own thread, at most `timeout` s.

    Why a thread: stop_fn (ActorRegistry.stop_all) blocks until actors stop, and an actor's
    on_stop may need the reactor (blockingCallFromThread): run on the reactor thread, that
    deadlocks. Why a dedicated daemon thread rather than the reactor's pool: the pool is joined
    'during shutdown', so a stop_fn stuck past the timeout would hang the exit anyway.
    The trigger's Deferred always succeeds: a failed or slow stop must not prevent the exit."""
    handle = ShutdownHandle()

    def trigger() -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        handle.started.set()

        def run() -> None:
            try:
                stop_fn()
            except BaseException as exc:  # reported to the reactor thread, never lost
                handle.error = exc
                log.exception("shutdown: stop function failed")
            finally:
                handle.finished.set()
                reactor.callFromThread(_fire, d)

        threading.Thread(target=run, name="ghost-shutdown", daemon=True).start()

        def on_timeout() -> None:
            if not d.called:
                handle.timed_out = True
                log.error("shutdown: stop function still running after %.1f s; going on", timeout)
                d.callback(None)

        call = reactor.callLater(timeout, on_timeout)

        def cancel_timer(result: None) -> None:
            if call.active():
                call.cancel()
            return result

        d.addBoth(cancel_timer)
        return d

    handle.trigger_id = reactor.addSystemEventTrigger("before", "shutdown", trigger)
    return handle


def _fire(d: defer.Deferred[None]) -> None:
    if not d.called:
        d.callback(None)
