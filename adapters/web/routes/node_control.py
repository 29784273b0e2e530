"""pause and resume (POST /pause, POST /resume): the operator's switch for every workspace
(`ghost pause`, `ghost resume`), over the same PatchService.set_paused as `/ghost pause` in Slack.

Not in /openapi.json, decided: that document is for the GPT-facing operations (SPEC §4), and a
model that could pause the node could also stop the human from reviewing what it sends. Like
approve/reject/rollback, these are human decisions; they stay out of the Action's schema.

`{"paused": true}` once every workspace's actor has taken the pause; `{"paused": false,
"applied": N}` once the patches queued while paused have been applied (N of them). A resume
whose queue takes longer than `wait_s` (tests running) answers 202 with `"applied": null`: the
resume is recorded, and GET /patches tells the outcomes later."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from twisted.internet.defer import Deferred

from adapters.ledger.records import PatchOutcome
from adapters.operations.model import Call
from adapters.web.app import TIMED_OUT, WebApp
from adapters.web.errors import ApiError
from adapters.web.http import ApiResponse


def rotate_token(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    """A new node token, taken at once: the old one is refused from the answer on, and every
    dashboard session (signed in with the old one) is ended."""
    rotate = app.services.rotate_token
    if rotate is None:
        raise ApiError(
            409,
            "conflict",
            "this node's token comes from GHOST_TOKEN in its environment; change it there",
        )

    write_new: Callable[[], str] = rotate

    def rotated() -> ApiResponse:
        app.auth.set_token(write_new())  # the file first: a crash here leaves the new one
        ended = app.services.sessions.revoke_all()
        return ApiResponse(200, {"rotated": True, "sessions_ended": ended})

    return app.in_thread(rotated)


def pause(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    return _set_paused(app, call, True)


def resume(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    return _set_paused(app, call, False)


def _set_paused(app: WebApp, call: Call, paused: bool) -> Deferred[ApiResponse]:
    # set_paused appends NodePaused/NodeResumed synchronously (a store write): off the reactor.
    asked = app.in_thread(app.services.patches.set_paused, paused, call.by)
    wait_s = app.config.wait_s if call.wait_s is None else call.wait_s
    asked.addCallback(lambda future: app.wait_future(future, wait_s))
    return asked.addCallback(lambda done: _answer(paused, done))


def _answer(paused: bool, done: Any) -> ApiResponse:
    if done is TIMED_OUT:
        # The event is recorded and the message is in each actor's inbox: the switch happens,
        # only its answer (a resume's applied queue) is still on its way.
        return ApiResponse(
            202,
            {
                "paused": paused,
                "applied": None,
                "message": "still in progress; GET /patches tells the outcomes",
            }
            if not paused
            else {"paused": True, "message": "a workspace is busy; it pauses after its patch"},
        )
    assert isinstance(done, Future)
    # set_paused's combined future never fails: a workspace whose actor is down counts as
    # having nothing queued (it rebuilds its paused state from the events when it restarts).
    outcomes: list[PatchOutcome] = done.result()
    if paused:
        return ApiResponse(200, {"paused": True})
    return ApiResponse(200, {"paused": False, "applied": len(outcomes)})
