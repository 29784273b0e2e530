"""GhostActor: the base class of every supervised actor of ghost-node."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any, Self

import pykka
from pykka import ActorDeadError, ActorRef, ActorRegistry

from actors.errors import ActorExitError
from actors.failure import failure_report
from actors.inbox import salvage
from actors.messages import ChildExited, ChildFailed, ChildStarted, Ping, Pong, Stop

if TYPE_CHECKING:
    from pykka._actor import ActorInbox

log = logging.getLogger(__name__)

# pykka's own messages (stop, proxy calls); everything else goes straight to on_receive.
_PYKKA_MESSAGES = (
    pykka.messages._ActorStop,
    pykka.messages.ProxyCall,
    pykka.messages.ProxyGetAttr,
    pykka.messages.ProxySetAttr,
)


class GhostActor(pykka.ThreadingActor):
    """A pykka ThreadingActor that its supervisor can watch.

    Lifecycle (override the three hooks, not pykka's on_start/on_stop/on_failure):

    - ``__init__`` runs in the *caller's* thread: store configuration only. Open sqlite
      connections, sockets, observers in ``setup()``.
    - ``setup()`` runs first in the actor's own thread. When it returns, the actor tells its
      supervisor ChildStarted and serves messages. If it raises, ``teardown()`` runs, the
      supervisor is told ChildFailed(phase="start") and the actor stops.
    - ``receive(message)`` handles told and asked messages other than Ping (answered with a
      Pong, for liveness checks) and Stop. Proxy method calls work as in pykka.
    - ``teardown()`` runs in the actor's thread on every way out: clean stop, failure, failed
      setup, and after a hung handler finally returns once the supervisor abandoned the actor.

    Failures, as pykka defines them, and what is reported:

    - an exception while handling a *tell* stops the actor: the told messages still queued are
      salvaged, ``teardown()`` runs, and the supervisor is told ChildFailed with them;
    - an exception while handling an *ask* only fails the caller's future; the actor lives on;
    - a BaseException (e.g. ``sys.exit()``) in a handler or in ``setup()`` would make pykka stop
      every actor in the process; here it becomes an ActorExitError and takes down only this
      actor, as any other failure;
    - a handler that never returns cannot be killed (Python has no thread cancellation): the
      supervisor notices the missing Pong and abandons the actor. Long handlers should poll
      ``self.stopping`` and return early.

    An actor without a supervisor (not bound) reports its failures to
    ``on_unsupervised_failure`` instead, which logs them.
    """

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        # queue.SimpleQueue (C, one lock) instead of pykka's queue.Queue (Python, conditions):
        # the inbox is unbounded either way, and put/get/empty are all pykka uses.
        inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        return inbox

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self.name = name or type(self).__name__
        self.generation = 0
        self._parent: ActorRef[Any] | None = None
        self._finished = False  # teardown() ran
        self._failure_reported = False  # then stopping is not a normal exit
        self._launched = False

    # --- wiring, by the supervisor -------------------------------------------------------------
    def bind(self, parent: ActorRef[Any], name: str, generation: int) -> None:
        """Attach to a supervisor before launch(); called by the supervisor, in its thread."""
        self._parent = parent
        self.name = name
        self.generation = generation

    def launch(self) -> ActorRef[Self]:
        """Start this already-built instance, exactly as pykka's ``Actor.start()`` does after
        calling the constructor (so a factory can return an instance with any arguments)."""
        if self._launched:
            raise RuntimeError(f"{self.name} was started already: factories must build new actors")
        ActorRegistry.register(self.actor_ref)
        self._start_actor_loop()
        return self.actor_ref

    def _start_actor_loop(self) -> None:
        # Two loops on one instance would interleave its state: refuse a second start, whether
        # it comes through launch() or pykka's start().
        if self._launched:
            raise RuntimeError(f"{self.name} was started already")
        self._launched = True
        super()._start_actor_loop()

    @property
    def stopping(self) -> bool:
        """True once the actor is stopping, failed, or was abandoned by its supervisor."""
        return self.actor_stopped.is_set()

    # --- hooks for subclasses ------------------------------------------------------------------
    def setup(self) -> None:
        """Acquire resources, in the actor's thread."""

    def receive(self, message: Any) -> Any:
        """Handle one message; the return value answers an ask."""
        return super().on_receive(message)  # pykka logs a warning for unexpected messages

    def teardown(self) -> None:
        """Release resources, in the actor's thread; runs on every way out."""

    # --- pykka hooks ---------------------------------------------------------------------------
    def on_start(self) -> None:
        try:
            self.setup()
        except Exception as exc:
            self._fail_start(exc)
            raise  # pykka logs it and stops the actor (without on_failure)
        except BaseException as exc:
            error = ActorExitError(f"{type(exc).__name__} in setup: {exc}")
            error.__cause__ = exc  # so the recorded traceback shows where it was raised
            self._fail_start(error)
            raise error from exc
        self._notify(ChildStarted(self.name, self.generation, threading.get_ident()))

    def _fail_start(self, exc: BaseException) -> None:
        # Mark stopped first so that refs refuse new tells, then salvage what got in already.
        self.actor_stopped.set()
        pending = salvage(self.actor_inbox, self.name)
        self._finish()
        self._report(failure_report(self.name, self.generation, exc, "start", pending))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            return Pong(self.name, self.generation, message.nonce)
        if isinstance(message, Stop):
            self.stop()
            return None
        return self.receive(message)

    def _handle_receive(self, message: Any) -> Any:
        # pykka's dispatcher (private API, stable since pykka 2): wrapped to keep a
        # BaseException from stopping every actor, and to run teardown after abandonment.
        try:
            if isinstance(message, _PYKKA_MESSAGES):
                result = super()._handle_receive(message)
            else:
                # What pykka would do after four isinstance checks: this is the hot path.
                result = self.on_receive(message)
        except Exception:
            raise
        except BaseException as exc:
            raise ActorExitError(f"{type(exc).__name__}: {exc}") from exc
        if self.actor_stopped.is_set() and not self._finished:
            # Stopped from outside while we were busy (abandoned as hung): clean up now.
            self._finish()
        return result

    def on_stop(self) -> None:
        if not self._finished:
            self._finish()
        if not self._failure_reported:
            self._notify(ChildExited(self.name, self.generation))

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: Any,
    ) -> None:
        pending = salvage(self.actor_inbox, self.name)
        self._finish()
        exc = exception_value or RuntimeError(f"unknown failure ({exception_type})")
        self._report(failure_report(self.name, self.generation, exc, "receive", pending))

    # --- reporting -----------------------------------------------------------------------------
    def _finish(self) -> None:
        self._finished = True
        try:
            self.teardown()
        except Exception:
            log.exception("teardown of %s failed", self.name)

    def _notify(self, message: object) -> None:
        if self._parent is None:
            return
        # ActorDeadError: the supervisor is gone (shutting down); nobody is left to tell.
        with contextlib.suppress(ActorDeadError):
            self._parent.tell(message)

    def _report(self, failed: ChildFailed) -> None:
        self._failure_reported = True
        if self._parent is None:
            self.on_unsupervised_failure(failed)
            return
        try:
            self._parent.tell(failed)
        except ActorDeadError:
            log.error("%s failed after its supervisor stopped: %s", self.name, failed.message)

    def on_unsupervised_failure(self, failed: ChildFailed) -> None:
        """A failure with no supervisor to tell. The root supervisor overrides this."""
        log.error(
            "unsupervised actor %s failed: %s: %s", self.name, failed.error_type, failed.message
        )
