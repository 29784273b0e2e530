"""The OpenAPI 3.1 document of the GPT Action (GET /openapi.json), generated from the operation
catalogue: every operation whose HttpBinding has an operation_id, and POST /webhook with the
body of the operations it dispatches to. The owner's decisions (approve, reject, pause...)
carry no operation_id and stay out of it: a model may not approve its own patches."""

from __future__ import annotations

import re
from typing import Any

from adapters.operations import schemas as s
from adapters.operations.catalogue import BY_NAME, CATALOGUE, WEBHOOK_RESPONSES, webhook_input
from adapters.operations.model import Operation

ERROR = {"$ref": "#/components/schemas/Error"}
_COMMON = {
    "400": "Malformed request: error.details.field names the field to fix.",
    "401": "Missing or wrong bearer token.",
    "429": "Too many requests: wait Retry-After seconds.",
}
_V4A_EXAMPLE = (
    "*** Begin Patch\n*** Update File: src/app.py\n@@ def greet(name):\n"
    '-    return "Hello " + name\n+    return f"Hello, {name}!"\n*** End Patch\n'
)
_INTRO = (
    "Change code in the developer's local workspace safely. Workflow: GET /tree to find "
    "files, GET /files to read one (note its sha256), POST /webhook with a patch (dry_run "
    "first when unsure), then read the answer: on 422 every failing hunk is listed with the "
    "closest lines actually in the file; fix those hunks and resend."
)


def _json(schema: Any, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _responses(op: Operation, errors: dict[str, str], ok: str) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": ok, "content": _json(op.output)}}
    for status, when in {**errors, **_COMMON}.items():
        out[status] = {"description": when, "content": _json(ERROR)}
    return out


def _parameters(op: Operation) -> list[dict[str, Any]]:
    assert op.http is not None
    in_path = {op.http.params.get(p, p): p for p in re.findall(r"\{(\w+)\}", op.http.path)}
    required = set(op.input.get("required", ()))
    params = []
    for field, schema in op.input["properties"].items():
        described = {k: v for k, v in schema.items() if k != "description"}
        param: dict[str, Any] = {
            "name": in_path.get(field, field),
            "in": "path" if field in in_path else "query",
            "required": field in in_path or field in required,
            "schema": described,
        }
        if "description" in schema:
            param["description"] = schema["description"]
        if described.get("type") == "array":
            param.update(style="form", explode=True)
        params.append(param)
    return params


def _operation(op: Operation) -> dict[str, Any]:
    assert op.http is not None
    assert op.http.operation_id is not None
    item: dict[str, Any] = {
        "operationId": op.http.operation_id,
        "summary": op.summary,
        "description": op.description,
    }
    params = _parameters(op)
    if params:
        item["parameters"] = params
    errors = dict(op.http.responses)
    if op.http.method == "GET":
        ok = "The answer."
        if "200" in errors:  # the binding says what its 200 means (and its other statuses)
            ok = errors.pop("200")
            for status, when in list(errors.items()):
                if not status.startswith("4"):
                    errors.pop(status)
                    item.setdefault("x-statuses", {})[status] = when
        item["responses"] = _responses(op, errors, ok)
        for status, when in item.pop("x-statuses", {}).items():
            item["responses"][status] = {"description": when, "content": _json(s.ANY_OBJECT)}
    return item


def _webhook() -> dict[str, Any]:
    apply = BY_NAME["apply_patch"]
    responses = _responses(apply, WEBHOOK_RESPONSES, "The outcome.")
    responses["202"] = {
        "description": "Accepted, still in progress (status queued).",
        "content": _json(apply.output),
    }
    example = {
        "id": "fix-greeting-1",
        "format": "v4a",
        "patch": _V4A_EXAMPLE,
        "description": "Friendlier greeting",
    }
    return {
        "operationId": "applyPatch",
        "summary": "Apply (or dry-run, or roll back) a patch in a workspace",
        "description": apply.description,
        "x-openai-isConsequential": True,
        "requestBody": {"required": True, "content": _json(webhook_input(), example)},
        "responses": responses,
    }


def document(server_url: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {"/webhook": {"post": _webhook()}}
    for op in CATALOGUE:
        if op.http is None or op.http.operation_id is None:
            continue
        paths.setdefault(op.http.path, {})[op.http.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ghost-runner", "version": version, "description": _INTRO},
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": s.ERROR},
        },
    }
