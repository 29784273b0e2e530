"""The OpenAPI 3.1 document for the GPT-facing operations (GET /openapi.json), importable as a
ChatGPT Action. Descriptions are written for a model reading them: what to call first, what
an error means, how to fix it in one round."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(ERROR)}


_ERRORS = {
    "400": _error("Malformed request: error.details.field names the field to fix."),
    "401": _error("Missing or wrong bearer token."),
    "429": _error("Too many requests: wait Retry-After seconds."),
}

_FILE_OUTCOME = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "action": {"type": "string", "enum": ["add", "update", "delete", "move"]},
        "before_sha256": {"type": ["string", "null"]},
        "after_sha256": {"type": ["string", "null"]},
        "move_from": {"type": "string"},
    },
    "required": ["path", "action"],
}

_OUTCOME = {
    "type": "object",
    "properties": {
        "patch_id": {"type": "string"},
        "status": {
            "type": "string",
            "enum": [
                "applied",
                "dry_run",
                "pending_approval",
                "queued",
                "rejected",
                "failed",
                "rolled_back",
            ],
        },
        "files": {"type": "array", "items": _FILE_OUTCOME},
        "diff": {"type": "string", "description": "Unified diff of the effect."},
        "tests": {
            "type": ["object", "null"],
            "properties": {
                "status": {"type": "string"},
                "exit_code": {"type": ["integer", "null"]},
                "duration_s": {"type": "number"},
                "output_tail": {"type": "string"},
            },
        },
        "position": {"type": "integer"},
    },
    "required": ["patch_id", "status"],
}

_V4A_EXAMPLE = (
    "*** Begin Patch\n*** Update File: src/app.py\n@@ def greet(name):\n"
    '-    return "Hello " + name\n+    return f"Hello, {name}!"\n*** End Patch\n'
)

_PATCH_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "command": {
            "type": "string",
            "enum": ["patch", "rollback", "status"],
            "default": "patch",
            "description": "patch: change files. rollback: undo an applied patch (needs "
            "patch_id). status: node health.",
        },
        "id": {
            "type": "string",
            "maxLength": 200,
            "description": "Your idempotency key. Resending the same id with the same body "
            "returns the first answer without applying twice; the same id with another body "
            "is a 409.",
        },
        "workspace": {
            "type": "string",
            "description": "Workspace name; optional when the node has one workspace.",
        },
        "format": {
            "type": "string",
            "enum": ["v4a", "unified", "search_replace", "files", "hybrid"],
            "description": "Detected when absent. Prefer v4a (*** Begin Patch).",
        },
        "patch": {
            "type": "string",
            "description": "The patch text (v4a, unified diff, or SEARCH/REPLACE blocks). "
            "Context lines must match the file as GET /files returned it.",
        },
        "files": {
            "type": "array",
            "description": "Whole files (format files): full new content, or delete: true.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "path": {"type": "string"},
                    "content": {"type": "string"},
                    "delete": {"type": "boolean"},
                },
                "required": ["path"],
            },
        },
        "base": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "{path: sha256} of the contents you read with GET /files; a file "
            "changed since then makes the patch a 409 conflict instead of a wrong edit.",
        },
        "dry_run": {
            "type": "boolean",
            "default": False,
            "description": "Check and show the diff without writing anything.",
        },
        "run_tests": {"type": "boolean", "default": True},
        "rollback_on_failure": {
            "type": "boolean",
            "description": "Undo the patch when the tests fail (default: the workspace's setting).",
        },
        "description": {"type": "string", "description": "Why: shown to the developer."},
        "author": {"type": "string"},
        "patch_id": {"type": "string", "description": "For command rollback."},
        "force": {"type": "boolean", "description": "For rollback: override drift refusal."},
        "wait_s": {
            "type": "number",
            "minimum": 0,
            "maximum": 20,
            "description": "Seconds to wait for the outcome before answering 202 queued.",
        },
    },
}

_EVENT = {
    "type": "object",
    "properties": {
        "position": {"type": "integer"},
        "event_id": {"type": "string"},
        "stream": {"type": "string"},
        "version": {"type": "integer"},
        "type": {"type": "string"},
        "recorded_at": {"type": "string"},
        "data": {"type": "object"},
        "meta": {"type": "object"},
    },
}


def _param(name: str, description: str, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def document(server_url: str, version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ghost-runner",
            "version": version,
            "description": "Change code in the developer's local workspace safely. Workflow: "
            "GET /tree to find files, GET /files to read one (note its sha256), POST /webhook "
            "with a patch (dry_run first when unsure), then read the answer: on 422 every "
            "failing hunk is listed with the closest lines actually in the file; fix those "
            "hunks and resend.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/webhook": {
                "post": {
                    "operationId": "applyPatch",
                    "summary": "Apply (or dry-run, or roll back) a patch in a workspace",
                    "description": "Send a patch; the node checks every hunk before writing "
                    "anything, writes all files or none, runs the tests and rolls back on "
                    "failure. 200: the outcome. 202: still running (status queued); poll "
                    "getPatch. 422: the patch does not apply: error.details lists each failing "
                    "hunk with the file, the hunk, and the closest lines with line numbers. "
                    "409: the file changed since you read it (base) or the id was reused. "
                    "403: the path is outside the sandbox.",
                    "x-openai-isConsequential": True,
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            _PATCH_REQUEST,
                            {
                                "id": "fix-greeting-1",
                                "format": "v4a",
                                "patch": _V4A_EXAMPLE,
                                "description": "Friendlier greeting",
                            },
                        ),
                    },
                    "responses": {
                        "200": {"description": "The outcome.", "content": _json(_OUTCOME)},
                        "202": {
                            "description": "Accepted, still in progress (status queued).",
                            "content": _json(_OUTCOME),
                        },
                        "403": _error("A path is outside the workspace sandbox."),
                        "404": _error("Unknown workspace or patch."),
                        "409": _error("Conflict: file changed since base, or id reused."),
                        "413": _error("Body over the size limit."),
                        "422": _error("The patch does not apply: see error.details."),
                        "503": _error("The workspace is not available; retry."),
                        **_ERRORS,
                    },
                }
            },
            "/patches": {
                "get": {
                    "operationId": "listPatches",
                    "summary": "List recent patches, newest first",
                    "description": "Use it to find a patch id or to see what was applied.",
                    "parameters": [
                        _param("status", "Only patches in this status."),
                        _param("workspace", "Only this workspace."),
                        _param(
                            "limit",
                            "At most this many (1-500).",
                            type="integer",
                            minimum=1,
                            maximum=500,
                            default=50,
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "Patches.",
                            "content": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "patches": {"type": "array", "items": {"type": "object"}},
                                        "total": {"type": "integer"},
                                    },
                                }
                            ),
                        },
                        "404": _error("Unknown workspace."),
                        **_ERRORS,
                    },
                }
            },
            "/patches/{id}": {
                "get": {
                    "operationId": "getPatch",
                    "summary": "One patch: status, files, diff, tests, events",
                    "description": "Poll this after a 202 queued answer until the status is "
                    "final (applied, rejected, failed, rolled_back, dry_run).",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "patch_id from applyPatch.",
                        }
                    ],
                    "responses": {
                        "200": {"description": "The patch.", "content": _json({"type": "object"})},
                        "404": _error("No such patch."),
                        **_ERRORS,
                    },
                }
            },
            "/files": {
                "get": {
                    "operationId": "readFile",
                    "summary": "Read one file of a workspace before patching it",
                    "description": "Returns the exact content and its sha256; put the sha256 "
                    "in applyPatch's base to be safe against concurrent edits.",
                    "parameters": [
                        _param("path", "Path relative to the workspace, e.g. src/app.py.", True),
                        _param("workspace", "Workspace name (optional with one workspace)."),
                    ],
                    "responses": {
                        "200": {
                            "description": "The file.",
                            "content": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "path": {"type": "string"},
                                        "sha256": {"type": "string"},
                                        "size": {"type": "integer"},
                                        "content": {"type": "string"},
                                    },
                                    "required": ["path", "sha256", "size", "content"],
                                }
                            ),
                        },
                        "403": _error("The path is outside the sandbox (excluded, binary...)."),
                        "404": _error("No such file or workspace."),
                        **_ERRORS,
                    },
                }
            },
            "/tree": {
                "get": {
                    "operationId": "listFiles",
                    "summary": "List the files of a workspace",
                    "description": "Include/exclude rules applied. glob narrows it: '*.py' "
                    "(any depth) or 'src/**/*.ts'. truncated: true means there are more; "
                    "narrow the glob.",
                    "parameters": [
                        _param("workspace", "Workspace name (optional with one workspace)."),
                        _param("glob", "A glob like *.py or src/**/*.ts."),
                        _param(
                            "limit",
                            "At most this many files.",
                            type="integer",
                            minimum=1,
                            maximum=10000,
                            default=2000,
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "Files.",
                            "content": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "files": {"type": "array", "items": {"type": "object"}},
                                        "count": {"type": "integer"},
                                        "truncated": {"type": "boolean"},
                                    },
                                }
                            ),
                        },
                        "404": _error("No such workspace."),
                        **_ERRORS,
                    },
                }
            },
            "/events": {
                "get": {
                    "operationId": "listEvents",
                    "summary": "A page of the node's events (audit trail)",
                    "description": "Pass next_after as after to read the next page.",
                    "parameters": [
                        _param(
                            "after",
                            "Events after this position.",
                            type="integer",
                            minimum=0,
                            default=0,
                        ),
                        _param(
                            "limit",
                            "Page size (1-1000).",
                            type="integer",
                            minimum=1,
                            maximum=1000,
                            default=100,
                        ),
                        _param("type", "Only these event types (comma-separated)."),
                        _param("stream", "Only this stream, e.g. patch-<id>."),
                    ],
                    "responses": {
                        "200": {
                            "description": "A page.",
                            "content": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "events": {"type": "array", "items": _EVENT},
                                        "next_after": {"type": "integer"},
                                    },
                                    "required": ["events", "next_after"],
                                }
                            ),
                        },
                        **_ERRORS,
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "getHealth",
                    "summary": "Node health: actors, tunnels, uptime, availability",
                    "responses": {
                        "200": {
                            "description": "Healthy or degraded.",
                            "content": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "status": {
                                            "type": "string",
                                            "enum": ["ok", "degraded", "down"],
                                        }
                                    },
                                    "required": ["status"],
                                }
                            ),
                        },
                        "503": {"description": "Down.", "content": _json({"type": "object"})},
                        **_ERRORS,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "details": {"type": "object"},
                            },
                            "required": ["code", "message", "details"],
                        }
                    },
                    "required": ["error"],
                }
            },
        },
    }
