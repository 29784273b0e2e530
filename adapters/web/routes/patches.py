"""GET /patches, GET /patches/{id}, POST /patches/{id}/approve|reject|rollback (SPEC §4)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from adapters.ledger.projection import tests_of
from adapters.web.app import WebApp
from adapters.web.errors import ApiError, invalid
from adapters.web.http import ApiRequest, ApiResponse
from adapters.web.patch_index import summary
from adapters.web.routes.outcomes import settle
from eventstore.catalogue import patch_stream

STATUSES = (
    "received",
    "queued",
    "rejected",
    "dry_run",
    "pending_approval",
    "approved",
    "applying",
    "applied",
    "failed",
    "rolled_back",
)
MAX_DIFF_CHARS = 200_000


def list_patches(app: WebApp, req: ApiRequest) -> Deferred[ApiResponse]:
    status = req.arg("status")
    if status is not None and status not in STATUSES:
        raise invalid("status", f"expected one of {', '.join(STATUSES)}")
    workspace = req.arg("workspace")
    if workspace is not None and workspace not in app.services.workspaces:
        raise ApiError(
            404,
            "not_found",
            f"no workspace {workspace!r}",
            {"workspaces": sorted(app.services.workspaces)},
        )
    limit = req.int_arg("limit", 50, 1, 500)

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


def get_patch(app: WebApp, req: ApiRequest) -> Deferred[ApiResponse]:
    pid = req.params["id"]
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


def _decide(app: WebApp, req: ApiRequest, action: str) -> Deferred[ApiResponse]:
    pid = req.params["id"]
    body: dict[str, Any] = req.json_body() if req.body.strip() else {}
    allowed = {"reason", "force", "dry_run"} if action == "rollback" else {"reason"}
    for key, value in body.items():
        if key not in allowed:
            raise invalid(key, f"unknown field; expected {', '.join(sorted(allowed))}")
        if key == "reason" and not isinstance(value, str):
            raise invalid(key, "expected a string")
        if key in ("force", "dry_run") and not isinstance(value, bool):
            raise invalid(key, "expected true or false")
    # decide() reads the patch's stream: a store read, so off the reactor thread.
    decided = app.in_thread(
        app.services.patches.decide,
        action,
        pid,
        f"api:{req.principal.how}",
        reason=str(body.get("reason", "")),
        force=bool(body.get("force", False)),
        dry_run=bool(body.get("dry_run", False)),
    )
    decided.addCallback(lambda future: app.wait_future(future, app.config.wait_s))
    return decided.addCallback(lambda done: settle(app, pid, done, submitted=False))


def approve(app: WebApp, req: ApiRequest) -> Deferred[ApiResponse]:
    return _decide(app, req, "approve")


def reject(app: WebApp, req: ApiRequest) -> Deferred[ApiResponse]:
    return _decide(app, req, "reject")


def rollback(app: WebApp, req: ApiRequest) -> Deferred[ApiResponse]:
    return _decide(app, req, "rollback")
