"""Every operation the node offers, declared once (SPEC §4). The router serves each from its
HttpBinding, POST /webhook dispatches to four of them by `command`, Slack's `/ghost` and the
CLI reach them through those doors, and /openapi.json is generated from here
(adapters/web/openapi.py); the MCP tools of SPEC §8 are to be made from the same records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.operations import schemas as s
from adapters.operations.model import HttpBinding, Operation, Scope
from adapters.web.routes import events, files, health, node_control, patches, watch, webhook

_BAD_WORKSPACE = {"404": "Unknown workspace."}
_DECISION_ERRORS = {
    "404": "No such patch.",
    "409": "The patch is not in a state for this (or its files changed since).",
    "503": "The workspace is not available; retry.",
}


def _decision(name: str, verb: str, summary: str, **hints: bool) -> Operation:
    handler = {"approve": patches.approve, "reject": patches.reject}[name]
    return Operation(
        name=name,
        summary=summary,
        description=f"The owner's decision: {verb} a patch waiting for approval (approval = "
        '"manual"). Not in the GPT Action: a model may not approve its own patches.',
        input=s.DECISION_INPUT,
        output=s.OUTCOME,
        scope=Scope.ADMIN,
        handler=handler,
        http=HttpBinding(
            "POST", f"/patches/{{id}}/{name}", responses=_DECISION_ERRORS, params={"id": "patch_id"}
        ),
        **hints,
    )


CATALOGUE: tuple[Operation, ...] = (
    Operation(
        name="status",
        summary="Node health: actors, tunnels, services, uptime, availability",
        description="The full health document, as GET /health gives it with credentials.",
        input=s.WORKSPACE_INPUT,
        output=s.HEALTH,
        scope=Scope.READ,
        handler=health.status,
        read_only=True,
        idempotent=True,
    ),
    Operation(
        name="health",
        summary="Node health: actors, tunnels, uptime, availability",
        description="Without credentials only {status}; with them the full document.",
        input=s.NO_INPUT,
        output=s.HEALTH,
        scope=Scope.READ,
        handler=health.get_health,
        http=HttpBinding(
            "GET", "/health", "getHealth", {"200": "Healthy or degraded.", "503": "Down."}, "open"
        ),
        read_only=True,
        idempotent=True,
    ),
    Operation(
        name="list_files",
        summary="List the files of a workspace",
        description="Include/exclude rules applied. glob narrows it: '*.py' (any depth) or "
        "'src/**/*.ts'. truncated: true means there are more; narrow the glob.",
        input=s.obj(
            {
                "workspace": s.WORKSPACE,
                "glob": s.text("A glob like *.py or src/**/*.ts.", 200),
                "limit": s.integer("At most this many files.", 1, 10_000, files.DEFAULT_TREE_LIMIT),
            }
        ),
        output=s.TREE,
        scope=Scope.READ,
        handler=files.list_files,
        http=HttpBinding("GET", "/tree", "listFiles", _BAD_WORKSPACE),
        read_only=True,
        idempotent=True,
    ),
    Operation(
        name="read_file",
        summary="Read one file of a workspace before patching it",
        description="Returns the exact content and its sha256; put the sha256 in applyPatch's "
        "base to be safe against concurrent edits.",
        input=s.obj(
            {
                "path": s.text("Path relative to the workspace, e.g. src/app.py.", 4096),
                "workspace": s.WORKSPACE,
            },
            "path",
        ),
        output=s.FILE,
        scope=Scope.READ,
        handler=files.read_file,
        http=HttpBinding(
            "GET",
            "/files",
            "readFile",
            {
                "403": "The path is outside the sandbox (excluded, binary...).",
                "404": "No such file or workspace.",
            },
        ),
        read_only=True,
        idempotent=True,
    ),
    Operation(
        name="list_patches",
        summary="List recent patches, newest first",
        description="Use it to find a patch id or to see what was applied.",
        input=s.obj(
            {
                "status": {**s.PATCH_STATUS, "description": "Only patches in this status."},
                "workspace": s.text("Only this workspace.", 64),
                "limit": s.integer("At most this many (1-500).", 1, 500, 50),
            }
        ),
        output=s.PATCHES,
        scope=Scope.READ,
        handler=patches.list_patches,
        http=HttpBinding("GET", "/patches", "listPatches", _BAD_WORKSPACE),
        read_only=True,
        idempotent=True,
    ),
    Operation(
        name="get_patch",
        summary="One patch: status, files, diff, tests, events",
        description="Poll this after a 202 queued answer until the status is final (applied, "
        "rejected, failed, rolled_back, dry_run).",
        input=s.obj({"patch_id": s.PATCH_ID}, "patch_id"),
        output=s.ANY_OBJECT,
        scope=Scope.READ,
        handler=patches.get_patch,
        http=HttpBinding(
            "GET", "/patches/{id}", "getPatch", {"404": "No such patch."}, params={"id": "patch_id"}
        ),
        read_only=True,
        idempotent=True,
    ),
    Operation(
        name="apply_patch",
        summary="Apply (or dry-run) a patch in a workspace",
        description="Send a patch; the node checks every hunk before writing anything, writes "
        "all files or none, runs the tests and rolls back on failure. 200: the outcome. 202: "
        "still running (status queued); poll getPatch. 422: the patch does not apply: "
        "error.details lists each failing hunk with the file, the hunk, and the closest lines "
        "with line numbers. 409: the file changed since you read it (base) or the id was "
        "reused. 403: the path is outside the sandbox.",
        input=s.APPLY_INPUT,
        output=s.OUTCOME,
        scope=Scope.PATCH,
        handler=webhook.apply_patch,
        idempotent=True,  # by its id: the same id and body answer the first outcome again
    ),
    Operation(
        name="rollback_patch",
        summary="Undo an applied patch",
        description="Puts every file of the patch back as it was before it. Refused (409) with "
        "the files changed since, unless force; dry_run shows the diff it would make.",
        input=s.ROLLBACK_INPUT,
        output=s.OUTCOME,
        scope=Scope.PATCH,
        handler=patches.rollback,
        http=HttpBinding(
            "POST", "/patches/{id}/rollback", responses=_DECISION_ERRORS, params={"id": "patch_id"}
        ),
        destructive=True,
    ),
    Operation(
        name="run_tests",
        summary="Run a workspace's tests as the files are now",
        description="Between patches (never during one); changes nothing. 202 when they outlast "
        "wait_s: their TestsFinished lands in the stream tests-<workspace>.",
        input=s.WORKSPACE_INPUT,
        output=s.TEST_RUN,
        scope=Scope.PATCH,
        handler=webhook.run_tests,
    ),
    _decision("approve", "apply", "Approve a pending patch (it is applied)"),
    _decision("reject", "refuse", "Reject a pending or queued patch", destructive=True),
    Operation(
        name="pause",
        summary="Pause every workspace: patches queue until resume",
        description="The owner's switch. Not in the GPT Action: a model that could pause the "
        "node could also stop the human from reviewing what it sends.",
        input=s.NO_INPUT,
        output=s.PAUSED,
        scope=Scope.ADMIN,
        handler=node_control.pause,
        http=HttpBinding("POST", "/pause"),
        idempotent=True,
    ),
    Operation(
        name="resume",
        summary="Resume: apply what was queued, in order",
        description="`applied` counts the queued patches applied (null: still in progress).",
        input=s.NO_INPUT,
        output=s.PAUSED,
        scope=Scope.ADMIN,
        handler=node_control.resume,
        http=HttpBinding("POST", "/resume"),
        idempotent=True,
    ),
    Operation(
        name="rotate_token",
        summary="Rotate the node token",
        description="A new random node token, written where the node keeps it and taken at "
        "once: the old one is refused from then on, and dashboard sessions end. From the "
        "node's own machine only (`ghost token --rotate`).",
        input=s.NO_INPUT,
        output={
            "type": "object",
            "properties": {
                "rotated": {"type": "boolean"},
                "sessions_ended": {"type": "integer"},
            },
        },
        scope=Scope.ADMIN,
        handler=node_control.rotate_token,
        http=HttpBinding("POST", "/token/rotate", loopback_only=True),
        destructive=True,
    ),
    Operation(
        name="events",
        summary="A page of the node's events (audit trail)",
        description="Pass next_after as after to read the next page. With Accept: "
        "text/event-stream the live feed instead (resumable with Last-Event-ID).",
        input=s.obj(
            {
                "after": s.integer("Events after this position.", 0, 2**62, 0),
                "limit": s.integer("Page size (1-1000).", 1, events.MAX_PAGE, 100),
                "type": {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 2000},
                    "description": "Only these event types (comma-separated, or repeated).",
                },
                "stream": s.text("Only this stream, e.g. patch-<id>.", 200),
            }
        ),
        output=s.EVENTS,
        scope=Scope.READ,
        handler=events.get_events,
        http=HttpBinding("GET", "/events", "listEvents"),
        read_only=True,
        idempotent=True,
    ),
    Operation(
        name="watch",
        summary="Each workspace's watcher: patterns, observer, last changes, warnings",
        description="As each WatcherActor reports itself.",
        input=s.NO_INPUT,
        output=s.ANY_OBJECT,
        scope=Scope.READ,
        handler=watch.get_watch,
        http=HttpBinding("GET", "/watch"),
        read_only=True,
        idempotent=True,
    ),
)

BY_NAME: Mapping[str, Operation] = {op.name: op for op in CATALOGUE}

# POST /webhook (SPEC §4): `command` picks the operation; its body may carry any of their fields.
WEBHOOK_COMMANDS: Mapping[str, str] = {
    "patch": "apply_patch",
    "rollback": "rollback_patch",
    "run_tests": "run_tests",
    "status": "status",
}
WEBHOOK_RESPONSES = {
    "403": "A path is outside the workspace sandbox.",
    "404": "Unknown workspace or patch.",
    "409": "Conflict: file changed since base, or id reused.",
    "413": "Body over the size limit.",
    "422": "The patch does not apply: see error.details.",
    "503": "The workspace is not available; retry.",
}


def webhook_input() -> dict[str, Any]:
    """The body POST /webhook accepts: `command`, `wait_s`, and every field of the operations
    it dispatches to (each then checks its own required fields)."""
    properties: dict[str, Any] = {
        "command": {
            "type": "string",
            "enum": list(WEBHOOK_COMMANDS),
            "default": "patch",
            "description": "patch: change files. rollback: undo an applied patch (needs "
            "patch_id). run_tests: run the tests as the files are. status: node health.",
        }
    }
    for name in WEBHOOK_COMMANDS.values():
        for field, schema in BY_NAME[name].input["properties"].items():
            properties.setdefault(field, schema)
    properties["wait_s"] = s.WAIT_S
    return s.obj(properties)
