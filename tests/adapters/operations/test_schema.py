"""The input checks every front door shares (adapters/operations/schema.py): each refusal is a
400 naming the field, in the same words wherever the input came from."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.operations import schema
from adapters.operations.catalogue import BY_NAME, webhook_input
from adapters.web.errors import ApiError

WEBHOOK = webhook_input()


def refusal(s: dict[str, Any], value: Any) -> tuple[str, str]:
    with pytest.raises(ApiError) as caught:
        schema.check(s, value)
    assert caught.value.status == 400
    assert caught.value.code == "invalid"
    return caught.value.details["field"], caught.value.message


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"patch": 5}, "patch", "expected a string or an object, got a number"),
        ({"dry_run": "yes"}, "dry_run", "expected true or false, got a string"),
        ({"surprise": 1}, "surprise", "unknown field; expected one of command"),
        ({"command": "dance"}, "command", "expected one of patch, rollback, run_tests, status"),
        ({"files": [{"content": "x"}]}, "files[0].path", "missing"),
        ({"files": [{"path": "a", "mode": 1}]}, "files[0].mode", "unknown key"),
        ({"patch": {"pattern": "a", "flags": "i"}}, "patch.flags", "unknown key"),
        ({"base": {"a.py": 5}}, "base['a.py']", "expected a string"),
        ({"id": "x" * 201}, "id", "longer than 200 characters"),
        ({"wait_s": 4000}, "wait_s", "must be between 0 and 3600"),
        ({"wait_s": True}, "wait_s", "expected a number, got a boolean"),
    ],
)
def test_a_bad_webhook_body_names_its_field(body: dict[str, Any], field: str, words: str) -> None:
    named, message = refusal(WEBHOOK, body)
    assert named == field
    assert words in message


def test_nulls_are_not_given() -> None:
    schema.check(WEBHOOK, {"patch": "x", "dry_run": None, "description": None})


def test_an_operations_required_fields_and_alternatives() -> None:
    apply = BY_NAME["apply_patch"].input
    assert refusal(apply, {"dry_run": True}) == ("patch", "patch: missing: send 'patch' or 'files'")
    schema.check(apply, {"files": [{"path": "a.py", "content": "x"}]})
    assert refusal(BY_NAME["rollback_patch"].input, {"force": True})[0] == "patch_id"
    assert refusal(BY_NAME["pause"].input, {"now": 1}) == (
        "now",
        "now: unknown field; this operation takes no fields",
    )


def test_a_query_string_is_read_as_the_schemas_types() -> None:
    listing = BY_NAME["list_patches"].input
    assert schema.from_query(listing, {"limit": ["5"]}) == {"limit": 5}
    assert schema.from_query(listing, {}) == {"limit": 50}  # the default
    assert schema.from_query(listing, {"limit": [""], "status": ["applied"]}) == {
        "limit": 50,
        "status": "applied",
    }
    assert refusal_query(listing, {"limit": ["many"]}) == "limit"
    assert refusal_query(listing, {"limit": ["501"]}) == "limit"
    assert refusal_query(listing, {"status": ["lost"]}) == "status"
    assert refusal_query(listing, {"limit": ["1", "2"]}) == "limit"
    events = BY_NAME["events"].input
    assert schema.from_query(events, {"type": ["A,B", "C"]})["type"] == ["A", "B", "C"]
    # a path parameter counts as given: get_patch's required patch_id
    assert schema.from_query(BY_NAME["get_patch"].input, {}, {"patch_id": "p1"}) == {
        "patch_id": "p1"
    }


def refusal_query(s: dict[str, Any], query: dict[str, list[str]]) -> str:
    with pytest.raises(ApiError) as caught:
        schema.from_query(s, query)
    assert caught.value.status == 400
    field: str = caught.value.details["field"]
    return field
