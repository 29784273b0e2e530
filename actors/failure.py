"""Turning an exception into the plain-data ChildFailed report a supervisor records."""

from __future__ import annotations

import traceback
from typing import Any

from actors.messages import ChildFailed

TRACEBACK_LINES = 20


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_LINES) -> str:
    """The last `lines` lines of the formatted traceback: the frames nearest to the error are
    the useful ones, and events must stay small."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def failure_report(
    name: str,
    generation: int,
    exc: BaseException,
    phase: str,
    pending: tuple[Any, ...] = (),
) -> ChildFailed:
    return ChildFailed(
        name=name,
        generation=generation,
        error_type=type(exc).__name__,
        message=str(exc),
        traceback=traceback_tail(exc),
        phase=phase,
        pending=pending,
    )
