"""The catalogue is the one declaration of each operation: routes, the webhook's commands, the
GPT Action's document and the MCP hints all come from it, and agree with it."""

from __future__ import annotations

from openapi_spec_validator import validate

from adapters.operations.catalogue import BY_NAME, CATALOGUE, WEBHOOK_COMMANDS, webhook_input
from adapters.operations.model import Scope
from adapters.web.dispatch import all_routes
from adapters.web.openapi import document

EXPECTED = {
    "status",
    "health",
    "list_files",
    "read_file",
    "list_patches",
    "get_patch",
    "apply_patch",
    "rollback_patch",
    "run_tests",
    "approve",
    "reject",
    "pause",
    "resume",
    "events",
    "watch",
    "rotate_token",
}


def test_every_operation_is_declared_once_and_whole() -> None:
    names = [op.name for op in CATALOGUE]
    assert len(names) == len(set(names))
    assert set(names) == EXPECTED
    for op in CATALOGUE:
        assert op.summary, op.name
        assert op.description, op.name
        assert op.input["type"] == "object", op.name
        assert "properties" in op.input, op.name
        assert op.input.get("additionalProperties") is False, op.name
        assert "type" in op.output, op.name
        assert isinstance(op.scope, Scope)
        assert callable(op.handler)
        assert not (op.read_only and op.destructive), op.name
        assert set(op.hints) == {"readOnlyHint", "destructiveHint", "idempotentHint"}


def test_scopes_follow_what_an_operation_does() -> None:
    for op in CATALOGUE:
        if op.read_only:
            assert op.scope is Scope.READ, op.name
    assert BY_NAME["apply_patch"].scope is Scope.PATCH
    # the owner's decisions: a model may not approve its own patches
    for name in ("approve", "reject", "pause", "resume", "rotate_token"):
        assert BY_NAME[name].scope is Scope.ADMIN


def test_the_router_serves_each_binding_and_the_webhook() -> None:
    served = {(r.method, r.pattern) for r in all_routes()}
    for op in CATALOGUE:
        if op.http is not None:
            assert (op.http.method, op.http.path) in served, op.name
    assert ("POST", "/webhook") in served
    for command, name in WEBHOOK_COMMANDS.items():
        assert name in BY_NAME, command
    # the webhook's body carries every field of the operations it dispatches to
    fields = set(webhook_input()["properties"])
    for name in WEBHOOK_COMMANDS.values():
        assert set(BY_NAME[name].input["properties"]) <= fields


def test_the_openapi_document_is_made_from_the_catalogue() -> None:
    doc = document("https://example.test", "1.0")
    validate(doc)
    ids = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    declared = {op.http.operation_id for op in CATALOGUE if op.http and op.http.operation_id}
    assert ids == declared | {"applyPatch"}
    listing = doc["paths"]["/patches"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 500
    assert (
        params["status"]["schema"]["enum"]
        == BY_NAME["list_patches"].input["properties"]["status"]["enum"]
    )
    assert doc["paths"]["/patches/{id}"]["get"]["parameters"][0]["in"] == "path"
    body = doc["paths"]["/webhook"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == webhook_input()
    # the owner's decisions stay out of the GPT Action
    assert "/patches/{id}/approve" not in doc["paths"]
    assert "/pause" not in doc["paths"]
