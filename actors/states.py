"""Lifecycle states of a supervised actor and the event recorded on entering each.

Modelled on Supervisor's (supervisord) process states: an actor is STARTING until its setup()
finished, RUNNING while it serves, in BACKOFF while waiting to be restarted, STOPPED when
stopped on purpose (or exited normally and is not to be restarted), FATAL when it failed and
will not be restarted.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class ActorState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    FATAL = "fatal"


# The event type recorded in `actor-<name>` when a child enters the state.
STATE_EVENTS: Mapping[ActorState, str] = MappingProxyType(
    {
        ActorState.STARTING: "ActorStarting",
        ActorState.RUNNING: "ActorStarted",
        ActorState.BACKOFF: "ActorRestarting",
        ActorState.STOPPED: "ActorStopped",
        ActorState.FATAL: "ActorFatal",
    }
)

# The event type recorded in `supervisor-<name>` when a supervisor itself enters the state.
SUPERVISOR_EVENTS: Mapping[ActorState, str] = MappingProxyType(
    {
        ActorState.RUNNING: "SupervisorStarted",
        ActorState.STOPPED: "SupervisorStopped",
        ActorState.FATAL: "SupervisorGaveUp",
    }
)

# A failure is not a state but a fact recorded before the state change it causes.
ACTOR_FAILED = "ActorFailed"

# States in which a ChildHandle keeps told messages for later instead of rejecting them.
COMING_BACK: frozenset[ActorState] = frozenset({ActorState.STARTING, ActorState.BACKOFF})
