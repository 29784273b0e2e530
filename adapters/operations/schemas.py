"""The JSON Schemas of the catalogue's inputs and outputs (SPEC §4): the checks of every front
door and the documents (/openapi.json, MCP tools) are made from these, and from nothing else.
Descriptions are written for a model reading them: what to call first, how to fix an error."""

from __future__ import annotations

from typing import Any

from adapters.ledger.status import OUTCOME_STATUSES, PUBLIC_STATUSES

Schema = dict[str, Any]

MAX_ID = 200
MAX_TEXT = 10_000
FORMATS = ["v4a", "unified", "search_replace", "files", "hybrid"]


def obj(properties: Schema, *required: str, **more: Any) -> Schema:
    """A closed object: a field it does not name is a 400 that names it."""
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update(more)
    return schema


def text(description: str = "", max_length: int | None = None, **more: Any) -> Schema:
    schema: Schema = {"type": "string", **more}
    if max_length is not None:
        schema["maxLength"] = max_length
    if description:
        schema["description"] = description
    return schema


def flag(description: str = "", **more: Any) -> Schema:
    schema: Schema = {"type": "boolean", **more}
    if description:
        schema["description"] = description
    return schema


def integer(description: str, minimum: int, maximum: int, default: int) -> Schema:
    return {
        "type": "integer",
        "minimum": minimum,
        "maximum": maximum,
        "default": default,
        "description": description,
    }


WORKSPACE = text("Workspace name; optional when the node has one workspace.", 64)
PATCH_ID = text("The patch_id the node answered with.", MAX_ID)
WAIT_S = {
    "type": "number",
    "minimum": 0,
    "maximum": 3600,
    "description": "Seconds to wait for the outcome before answering 202 queued (at most the "
    "node's own wait).",
}

HYBRID = obj(
    {
        "pattern": {"type": "string"},
        "replacement": {"type": "string"},
        "regex": {"type": "boolean"},
        "count": {"type": "integer"},
    }
)

APPLY_INPUT = obj(
    {
        "id": text(
            "Your idempotency key. Resending the same id with the same body returns the first "
            "answer without applying twice; the same id with another body is a 409.",
            MAX_ID,
        ),
        "workspace": WORKSPACE,
        "format": {
            "type": "string",
            "enum": FORMATS,
            "description": "Detected when absent. Prefer v4a (*** Begin Patch).",
        },
        "patch": {
            "oneOf": [{"type": "string"}, HYBRID],
            "description": "The patch text (v4a, unified diff, or SEARCH/REPLACE blocks). "
            "Context lines must match the file as GET /files returned it.",
        },
        "files": {
            "type": "array",
            "description": "Whole files (format files): full new content, or delete: true.",
            "items": obj(
                {
                    "path": text(max_length=4096),
                    "content": {"type": ["string", "null"]},
                    "delete": {"type": "boolean"},
                },
                "path",
            ),
        },
        "base": {
            "type": "object",
            "additionalProperties": text(max_length=64),
            "description": "{path: sha256} of the contents you read with GET /files; a file "
            "changed since then makes the patch a 409 conflict instead of a wrong edit.",
        },
        "dry_run": flag("Check and show the diff without writing anything.", default=False),
        "run_tests": flag(default=True),
        "rollback_on_failure": flag(
            "Undo the patch when the tests fail (default: the workspace's setting)."
        ),
        "description": text("Why: shown to the developer.", MAX_TEXT),
        "author": text(max_length=200),
        # the legacy hybrid block's own fields
        "role": text(max_length=200),
        "target_file": text(max_length=4096),
    },
    anyOf=[{"required": ["patch"]}, {"required": ["files"]}],
)

DECISION_INPUT = obj({"patch_id": PATCH_ID, "reason": text("Why: recorded.", MAX_TEXT)}, "patch_id")
ROLLBACK_INPUT = obj(
    {
        "patch_id": PATCH_ID,
        "workspace": WORKSPACE,
        "reason": text("Why: recorded.", MAX_TEXT),
        "force": flag("Override the refusal when files changed since the patch."),
        "dry_run": flag("Show the rollback's diff without writing anything."),
    },
    "patch_id",
)
WORKSPACE_INPUT = obj({"workspace": WORKSPACE})
NO_INPUT = obj({})

FILE_OUTCOME = {
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
TESTS = {
    "type": "object",
    "description": "Never null: a patch whose tests did not run says why (status skipped, reason).",
    "properties": {
        "status": {"type": "string"},
        "reason": {"type": "string"},
        "exit_code": {"type": ["integer", "null"]},
        "duration_s": {"type": "number"},
        "output_tail": {"type": "string"},
    },
}
OUTCOME = {
    "type": "object",
    "properties": {
        "patch_id": {"type": "string"},
        "status": {"type": "string", "enum": [str(s) for s in OUTCOME_STATUSES]},
        "files": {"type": "array", "items": FILE_OUTCOME},
        "diff": {"type": "string", "description": "Unified diff of the effect."},
        "tests": TESTS,
        "position": {"type": "integer"},
    },
    "required": ["patch_id", "status"],
}
PATCHES = {
    "type": "object",
    "properties": {
        "patches": {"type": "array", "items": {"type": "object"}},
        "total": {"type": "integer"},
    },
}
PATCH_STATUS = {"type": "string", "enum": [str(s) for s in PUBLIC_STATUSES]}
FILE = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "sha256": {"type": "string"},
        "size": {"type": "integer"},
        "content": {"type": "string"},
    },
    "required": ["path", "sha256", "size", "content"],
}
TREE = {
    "type": "object",
    "properties": {
        "files": {"type": "array", "items": {"type": "object"}},
        "count": {"type": "integer"},
        "truncated": {"type": "boolean"},
    },
}
EVENT = {
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
EVENTS = {
    "type": "object",
    "properties": {"events": {"type": "array", "items": EVENT}, "next_after": {"type": "integer"}},
    "required": ["events", "next_after"],
}
HEALTH = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ok", "degraded", "down"]}},
    "required": ["status"],
}
TEST_RUN = {
    "type": "object",
    "properties": {
        "workspace": {"type": "string"},
        "run_id": {"type": "string"},
        "status": {"type": "string"},
        "tests": TESTS,
        "position": {"type": "integer"},
    },
}
PAUSED = {
    "type": "object",
    "properties": {"paused": {"type": "boolean"}, "applied": {"type": ["integer", "null"]}},
    "required": ["paused"],
}
ANY_OBJECT: Schema = {"type": "object"}
ERROR = {
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
