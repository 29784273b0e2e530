"""No 5xx for anything a caller can send: hypothesis-generated bodies, headers and query
strings, schemathesis against /openapi.json, and the document itself validated as OpenAPI 3.1.
The node must answer /health afterwards."""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adapters.web.support import Client
from tests.node_process import NodeProcess

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "command",
    "id",
    "workspace",
    "format",
    "patch",
    "files",
    "base",
    "dry_run",
    "run_tests",
    "rollback_on_failure",
    "description",
    "author",
    "wait_s",
    "patch_id",
    "force",
]
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
header_text = st.text(alphabet=string.printable.strip() + " ", max_size=60)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=bodies)
def test_webhook_bodies_never_5xx(api: Client, body: dict[str, Any]) -> None:
    body.setdefault("wait_s", 1)
    if isinstance(body.get("workspace"), str):
        body["workspace"] = "main"
    reply = api.post("/webhook", body)
    assert reply.status < 500 or reply.status == 501, reply.raw
    if reply.status >= 400:
        assert set(reply.json["error"]) == {"code", "message", "details"}


@FUZZ
@given(raw=st.binary(max_size=300))
def test_raw_bytes_never_5xx(api: Client, raw: bytes) -> None:
    reply = api.post("/webhook", raw)
    assert reply.status < 500


@FUZZ
@given(
    name=st.sampled_from(
        [
            "Authorization",
            "X-Ghost-Timestamp",
            "X-Ghost-Signature",
            "Accept",
            "Last-Event-ID",
            "Cookie",
            "X-Forwarded-For",
            "Content-Type",
        ]
    ),
    value=header_text,
    path=st.sampled_from(["/health", "/patches", "/events", "/tree", "/files", "/webhook"]),
    query=st.text(alphabet=string.ascii_letters + string.digits + "=&%-_.*/", max_size=40),
)
def test_headers_and_queries_never_5xx(
    node: NodeProcess, name: str, value: str, path: str, query: str
) -> None:
    client = node.client(token=None, timeout=5)
    headers = {name: value}
    if name != "Authorization":
        headers["Authorization"] = f"Bearer {node.token}"
    if name == "Accept":
        headers[name] = value.replace("text/event-stream", "")  # streams never end
    method = "POST" if path == "/webhook" else "GET"
    reply = client.request(method, f"{path}?{query}", b"{}" if method == "POST" else None, headers)
    assert reply.status < 500, (reply.status, reply.raw[:300])


# The string classes of the hostile-input issue: lone surrogates, control and bidi characters,
# very long lines (of plain, escape or multi-byte characters), and text with a surrogate tail.
hostile_text = st.one_of(
    st.text(alphabet=st.characters(categories=("Cs", "Cc", "Cf")), min_size=1, max_size=20),
    st.builds(
        lambda c, n: c * n,
        st.sampled_from(["a", "\x1b", "\u202e", "\u00e9", "\r", "\x00"]),
        st.integers(1_000, 200_000),
    ),
    st.text(max_size=30).map(lambda t: t + "\ud800"),
)


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


TEXT_FIELDS = ["id", "description", "author", "patch", "workspace", "patch_id"]


@FUZZ
@given(field=st.sampled_from(TEXT_FIELDS), value=hostile_text, path_value=hostile_text)
def test_hostile_strings_never_5xx(api: Client, field: str, value: str, path_value: str) -> None:
    body: dict[str, Any] = {
        "patch": "*** Begin Patch\n*** Add File: fuzz.py\n+x = 1\n*** End Patch\n",
        "dry_run": True,
        "wait_s": 1,
        "workspace": "main",
        field: value,
    }
    reply = api.post("/webhook", body)
    assert reply.status < 500, reply.raw[:300]
    if _lone_surrogate(json.loads(json.dumps(value))):  # (a pair in JSON is one character)
        assert reply.status == 400, reply.raw[:300]
        assert reply.json["error"]["details"]["field"] == field
    files = {"format": "files", "dry_run": True, "workspace": "main", "wait_s": 1}
    files["files"] = [{"path": path_value[:4096], "content": value}]
    reply = api.post("/webhook", files)
    assert reply.status < 500, reply.raw[:300]


@FUZZ
@given(glob=st.text(alphabet="a*?/[]!b.", min_size=1, max_size=200))
def test_globs_never_5xx_nor_hang(api: Client, glob: str) -> None:
    reply = api.get(f"/tree?workspace=main&glob={quote(glob)}")
    assert reply.status in (200, 400), reply.raw[:300]


def test_openapi_document_is_valid(api: Client) -> None:
    from openapi_spec_validator import validate

    doc = api.get("/openapi.json?server=https://example.trycloudflare.com").json
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": "https://example.trycloudflare.com"}]
    ops = {op["operationId"]: op for path in doc["paths"].values() for op in path.values()}
    assert {
        "applyPatch",
        "listPatches",
        "getPatch",
        "readFile",
        "listFiles",
        "listEvents",
        "getHealth",
    } <= set(ops)
    assert ops["applyPatch"]["x-openai-isConsequential"] is True
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert api.get("/openapi.json?server=ftp://x").status == 400


def _operations(node: NodeProcess) -> list[Any]:
    schemathesis = pytest.importorskip("schemathesis")
    doc = node.client().get("/openapi.json").json
    return [result.ok() for result in schemathesis.openapi.from_dict(doc).get_all_operations()]


def test_schemathesis(node: NodeProcess) -> None:
    """Each operation of /openapi.json with schemathesis-generated cases (hypothesis drives
    them; schemathesis's pytest plugin does not load under pytest 9, so the strategies are
    used directly). Every answer: no 5xx, a documented status, the error shape on errors."""
    from schemathesis.checks import not_a_server_error

    calls: list[str] = []

    def run(op: Any) -> None:
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            if isinstance(case.body, dict):
                case.body["wait_s"] = 1  # a test command may run: do not wait long
            calls.append(op.path)
            response = case.call(
                base_url=f"http://127.0.0.1:{node.port}",
                headers={"Authorization": f"Bearer {node.token}"},
                timeout=30,
            )
            case.validate_response(response, checks=(not_a_server_error,))
            documented = set(op.definition.raw["responses"])
            assert str(response.status_code) in documented, (op.path, response.status_code)
            if response.status_code >= 400:
                assert set(json.loads(response.content)["error"]) == {"code", "message", "details"}

        check()

    operations = _operations(node)
    for op in operations:
        run(op)
    assert set(calls) == {op.path for op in operations}
    assert len(calls) >= 5 * len(operations)


def test_node_is_healthy_after_fuzzing(api: Client) -> None:
    reply = api.get("/health")
    assert reply.status == 200, reply.raw
    assert reply.json["actors"]["patch.main"]["state"] == "running"
    # hostile strings never crashed an actor (they once crash-looped the patch actor)
    assert reply.json["actors"]["patch.main"]["restarts"] == 0, reply.json["actors"]
