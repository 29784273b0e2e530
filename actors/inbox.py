"""Salvaging the inbox of an actor that died, so told messages are not silently lost.

pykka drops the told messages left in a dead actor's inbox (and fails its asks with
ActorDeadError). We take them out first: tells go to the next incarnation, asks fail at once
with ChildUnavailableError.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

from pykka.messages import _ActorStop

from actors.errors import ChildUnavailableError

log = logging.getLogger(__name__)


def salvage(inbox: object, name: str) -> tuple[Any, ...]:
    """Empty `inbox` (a thread-safe queue) and return the told messages, in order.

    Safe to call from another thread while the owner is stuck: get_nowait never blocks even if
    the owner wakes up and competes for the same envelopes.
    """
    if not isinstance(inbox, queue.Queue | queue.SimpleQueue):
        return ()  # another kind of inbox: leave it to pykka
    told: list[Any] = []
    while True:
        try:
            envelope = inbox.get_nowait()
        except queue.Empty:
            break
        message = envelope.message
        reply_to = envelope.reply_to
        if isinstance(message, _ActorStop):
            if reply_to is not None:
                reply_to.set(None)  # "stopped" is the answer a stop request waits for
        elif reply_to is None:
            told.append(message)
        else:
            error = ChildUnavailableError(name, "failed", "the actor died before answering")
            reply_to.set_exception(exc_info=(ChildUnavailableError, error, None))
    if told:
        log.info("salvaged %d told message(s) of dead actor %s", len(told), name)
    return tuple(told)
