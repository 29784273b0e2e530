"""list_patches, get_patch, and the decisions approve, reject and rollback_patch (SPEC §4)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from adapters.ledger.projection import tests_of
from adapters.ledger.records import Decision
from adapters.operations.model import Call
from adapters.web.app import WebApp
from adapters.web.errors import ApiError
from adapters.web.http import ApiResponse
from adapters.web.patch_index import summary
from adapters.web.routes.outcomes import settle
from eventstore.catalogue import patch_stream

MAX_DIFF_CHARS = 200_000


def list_patches(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    status = call.args.get("status") or None
    workspace = call.args.get("workspace") or None
    if workspace is not None and workspace not in app.services.workspaces:
        raise ApiError(
            404,
            "not_found",
            f"no workspace {workspace!r}",
            {"workspaces": sorted(app.services.workspaces)},
        )
    limit = int(call.args["limit"])

    def select() -> ApiResponse:
        """Thread pool: filter the index, then fold only the page's patches."""
        chosen = [
            b
            for b in reversed(app.index.refresh())  # newest first
            if (status is None or b.status == status)
            and (workspace is None or b.workspace == workspace)
        ]
        views = app.index.views(chosen[:limit])
        return ApiResponse(200, {"patches": [summary(v) for v in views], "total": len(chosen)})

    return app.in_thread(select)


def get_patch(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    pid = str(call.args["patch_id"])
    return app.in_thread(_detail, app, pid).addCallback(lambda body: ApiResponse(200, body))


def _detail(app: WebApp, pid: str) -> dict[str, Any]:
    """Thread pool: the patch from its own stream (always current, unlike the index)."""
    view = app.services.patches.view(pid)
    if view is None:
        raise ApiError(404, "not_found", f"no patch {pid!r}; GET /patches lists them")
    store = app.services.store
    diff = ""
    if view.diff_blob is not None and store.has_blob(view.diff_blob):
        diff = store.get_blob(view.diff_blob).decode("utf-8", "replace")[:MAX_DIFF_CHARS]
    events = [
        {k: v for k, v in e.as_dict().items() if k in ("position", "type", "recorded_at", "data")}
        for e in store.read_stream(patch_stream(pid))
    ]
    tests = dict(tests_of(view))
    return {
        **summary(view),
        "files": [dict(f) for f in view.files],
        "changes": [dict(c) for c in view.changes],
        "diff": diff,
        "tests": tests,
        "error": None if view.error is None else dict(view.error),
        "decisions": [dict(d) for d in view.decisions],
        "rolled_back": view.rolled_back,
        "events": events,
    }


def _decide(app: WebApp, call: Call, decision: Decision) -> Deferred[ApiResponse]:
    pid = str(call.args["patch_id"])
    # decide() reads the patch's stream: a store read, so off the reactor thread.
    decided = app.in_thread(
        app.services.patches.decide,
        decision,
        pid,
        call.by,
        reason=str(call.args.get("reason", "")),
        force=bool(call.args.get("force", False)),
        dry_run=bool(call.args.get("dry_run", False)),
    )
    wait_s = app.config.wait_s if call.wait_s is None else call.wait_s
    decided.addCallback(lambda future: app.wait_future(future, wait_s))
    return decided.addCallback(lambda done: settle(app, pid, done, submitted=False))


def approve(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    return _decide(app, call, Decision.APPROVE)


def reject(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    return _decide(app, call, Decision.REJECT)


def rollback(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    return _decide(app, call, Decision.ROLLBACK)
