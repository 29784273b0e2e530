"""Every endpoint's success and error paths, over real loopback HTTP against a real node."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from tests.adapters.web.support import Client
from tests.node_process import NodeProcess


def add_file(path: str, text: str) -> str:
    body = "".join(f"+{line}\n" for line in text.splitlines())
    return f"*** Begin Patch\n*** Add File: {path}\n{body}*** End Patch\n"


def update(path: str, old: str, new: str) -> str:
    return f"*** Begin Patch\n*** Update File: {path}\n@@\n-{old}\n+{new}\n*** End Patch\n"


def fresh(api: Client, workspace: str = "main", text: str = "a = 1\n") -> str:
    path = f"gen/{uuid.uuid4().hex[:8]}.py"
    reply = api.post("/webhook", {"workspace": workspace, "patch": add_file(path, text)})
    assert reply.status == 200, reply.raw
    return path


# --- health, errors, routing --------------------------------------------------------------------
def test_health_open_reveals_only_status(node: NodeProcess) -> None:
    reply = node.client(token=None).get("/health")
    assert reply.status in (200, 503)
    assert set(reply.json) == {"status"}


def test_health_with_auth_is_full(api: Client) -> None:
    body = api.get("/health").json
    for key in ("status", "actors", "tunnels", "services", "uptime_s", "version", "position"):
        assert key in body
    assert "patch.main" in body["actors"]
    assert set(body["actors"]["patch.main"]) == {"state", "restarts"}
    assert "restart_success_rate" in body["availability"]


def test_unknown_path_and_method_are_json(api: Client) -> None:
    reply = api.get("/nope")
    assert reply.status == 404
    assert reply.error["code"] == "not_found"
    reply = api.request("DELETE", "/patches")
    assert reply.status == 405
    assert reply.headers["allow"] == "GET"
    assert reply.error["code"] == "method_not_allowed"
    assert "request_id" in reply.error["details"]


def test_metrics_are_prometheus_text(api: Client) -> None:
    api.get("/health")
    reply = api.get("/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.raw.decode()
    assert "ghost_http_requests_total" in text
    assert "ghost_sse_clients" in text
    assert "ghost_events_appended_total" in text


# --- webhook: success paths ---------------------------------------------------------------------
def test_patch_applies_and_reads_back(api: Client) -> None:
    path = fresh(api, text="x = 1\n")
    reply = api.post("/webhook", {"patch": update(path, "x = 1", "x = 2"), "workspace": "main"})
    assert reply.status == 200
    body = reply.json
    assert body["status"] == "applied"
    assert body["files"][0]["path"] == path
    assert "+x = 2" in body["diff"]
    got = api.get(f"/files?workspace=main&path={path}").json
    assert got["content"] == "x = 2\n"
    assert (
        got["sha256"] == hashlib.sha256(b"x = 2\n").hexdigest() == body["files"][0]["after_sha256"]
    )
    detail = api.get(f"/patches/{body['patch_id']}").json
    assert detail["status"] == "applied"
    assert detail["diff"]
    assert [e["type"] for e in detail["events"]][-1] == "PatchApplied"


def test_dry_run_writes_nothing(api: Client) -> None:
    path = fresh(api, text="y = 1\n")
    reply = api.post(
        "/webhook", {"workspace": "main", "patch": update(path, "y = 1", "y = 9"), "dry_run": True}
    )
    assert reply.status == 200
    assert reply.json["status"] == "dry_run"
    assert api.get(f"/files?workspace=main&path={path}").json["content"] == "y = 1\n"


def test_status_command(api: Client) -> None:
    reply = api.post("/webhook", {"command": "status"})
    assert reply.status == 200
    assert "actors" in reply.json


def test_idempotent_id(api: Client) -> None:
    path = f"gen/{uuid.uuid4().hex[:8]}.py"
    body = {"workspace": "main", "id": uuid.uuid4().hex, "patch": add_file(path, "z = 1")}
    first = api.post("/webhook", body)
    again = api.post("/webhook", body)
    assert first.status == again.status == 200
    assert first.json["patch_id"] == again.json["patch_id"]
    other = api.post("/webhook", {**body, "description": "different"})
    assert other.status == 409
    assert other.error["code"] == "conflict"


def test_rollback_through_webhook_and_patches_route(api: Client) -> None:
    path = fresh(api, text="r = 1\n")
    applied = api.post("/webhook", {"workspace": "main", "patch": update(path, "r = 1", "r = 2")})
    pid = applied.json["patch_id"]
    dry = api.post(f"/patches/{pid}/rollback", {"dry_run": True})
    assert dry.status == 200
    assert "-r = 2" in dry.json["diff"]
    done = api.post("/webhook", {"command": "rollback", "patch_id": pid})
    assert done.status == 200
    assert done.json["status"] == "rolled_back"
    assert api.get(f"/files?workspace=main&path={path}").json["content"] == "r = 1\n"
    again = api.post(f"/patches/{pid}/rollback")
    assert again.status == 409


# --- webhook: error paths -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"workspace": "main", "patch": 5}, "patch"),
        ({"workspace": "main", "patch": "x", "dry_run": "yes"}, "dry_run"),
        ({"workspace": "main", "patch": "x", "surprise": 1}, "surprise"),
        ({"workspace": "main", "command": "dance"}, "command"),
        ({"workspace": "main", "files": [{"content": "x"}]}, "files[0].path"),
        ({"workspace": "main", "command": "rollback"}, "patch_id"),
        ({"workspace": "main"}, "patch"),
    ],
)
def test_invalid_bodies_name_the_field(api: Client, body: dict[str, object], field: str) -> None:
    reply = api.post("/webhook", body)
    assert reply.status == 400
    assert reply.error["code"] == "invalid"
    assert reply.error["details"]["field"] == field


def test_malformed_json_and_non_object(api: Client) -> None:
    assert api.post("/webhook", b"{nope").status == 400
    assert api.post("/webhook", b"[1,2]").status == 400
    assert api.post("/webhook", b"").status == 400


def test_several_workspaces_need_a_name(api: Client) -> None:
    reply = api.post("/webhook", {"patch": add_file("q.py", "q = 1")})
    assert reply.status == 400
    assert reply.error["details"]["workspaces"]


def test_unknown_workspace_is_404(api: Client) -> None:
    assert api.post("/webhook", {"workspace": "nope", "patch": "x"}).status == 404


def test_patch_that_does_not_apply_lists_every_hunk(api: Client) -> None:
    path = fresh(api, text="a = 1\nb = 2\n")
    patch = (
        f"*** Begin Patch\n*** Update File: {path}\n@@\n-a = 100\n+a = 3\n@@\n-b = 200\n+b = 4\n"
        "*** End Patch\n"
    )
    reply = api.post("/webhook", {"workspace": "main", "patch": patch})
    assert reply.status == 422
    body = reply.json
    assert body["error"]["code"] == "does_not_apply"
    assert body["status"] == "rejected"
    assert body["patch_id"]
    assert len(body["error"]["details"]["failures"]) == 2


def test_base_conflict_is_409(api: Client) -> None:
    path = fresh(api, text="c = 1\n")
    reply = api.post(
        "/webhook",
        {"workspace": "main", "patch": update(path, "c = 1", "c = 2"), "base": {path: "0" * 64}},
    )
    assert reply.status == 409
    assert reply.error["code"] == "conflict"


def test_sandbox_violation_is_403(api: Client) -> None:
    reply = api.post("/webhook", {"workspace": "main", "patch": add_file("../escape.py", "e")})
    assert reply.status in (403, 422)
    assert reply.error["code"] in ("sandbox", "invalid")
    reply = api.post("/webhook", {"workspace": "main", "patch": add_file(".git/hooks/x", "e")})
    assert reply.status == 403
    assert reply.error["code"] == "sandbox"


def test_run_tests_command_runs_the_workspace_tests(api: Client) -> None:
    reply = api.post("/webhook", {"workspace": "slow", "command": "run_tests"})
    assert reply.status == 200, reply.raw
    assert reply.json["status"] == "passed"
    assert reply.json["tests"]["exit_code"] == 0
    run_id = reply.json["run_id"]
    events = api.get("/events?stream=tests-slow&limit=1000").json["events"]
    finished = [e for e in events if e["type"] == "TestsFinished"]
    assert finished[-1]["data"]["run_id"] == run_id
    assert finished[-1]["position"] == reply.json["position"]
    # A workspace without a test command says so, and which setting to fix.
    reply = api.post("/webhook", {"workspace": "main", "command": "run_tests"})
    assert reply.status in (400, 422)
    assert "test_command" in reply.error["message"]


# --- queued, approval ---------------------------------------------------------------------------
def test_busy_workspace_answers_202_then_patch_tells(api: Client) -> None:
    path = f"gen/{uuid.uuid4().hex[:8]}.py"
    reply = api.post(
        "/webhook", {"workspace": "slow", "patch": add_file(path, "s = 1"), "wait_s": 0.3}
    )
    assert reply.status == 202
    assert reply.json["status"] == "queued"
    pid = reply.json["patch_id"]
    deadline = time.monotonic() + 15
    status = ""
    while time.monotonic() < deadline:
        status = api.get(f"/patches/{pid}").json["status"]
        if status in ("applied", "failed", "rolled_back"):
            break
        time.sleep(0.2)
    assert status == "applied"


def test_manual_approval_approve_and_reject(api: Client) -> None:
    one = api.post("/webhook", {"workspace": "manual", "patch": add_file("m1.py", "m = 1")})
    assert one.status == 200
    assert one.json["status"] == "pending_approval"
    approved = api.post(f"/patches/{one.json['patch_id']}/approve")
    assert approved.status == 200
    assert approved.json["status"] == "applied"
    two = api.post("/webhook", {"workspace": "manual", "patch": add_file("m2.py", "m = 2")})
    rejected = api.post(f"/patches/{two.json['patch_id']}/reject", {"reason": "no"})
    assert rejected.status == 200
    assert rejected.json["status"] == "rejected"
    assert api.post(f"/patches/{two.json['patch_id']}/approve").status == 409
    assert api.post("/patches/nope/approve").status == 404
    assert api.post(f"/patches/{two.json['patch_id']}/reject", {"force": True}).status == 400


def test_patch_list_filters(api: Client) -> None:
    fresh(api)
    listed = api.get("/patches?workspace=main&status=applied&limit=2").json
    assert len(listed["patches"]) <= 2
    assert all(p["status"] == "applied" and p["workspace"] == "main" for p in listed["patches"])
    assert api.get("/patches?status=weird").status == 400
    assert api.get("/patches?limit=0").status == 400
    assert api.get("/patches?workspace=nope").status == 404
    assert api.get("/patches/doesnotexist").status == 404


# --- files and tree -----------------------------------------------------------------------------
def test_files_errors(api: Client) -> None:
    assert api.get("/files?workspace=main").status == 400
    assert api.get("/files?workspace=main&path=missing.py").status == 404
    for bad in ("../etc/passwd", "/etc/passwd", ".git/config", "notes.log"):
        reply = api.get(f"/files?workspace=main&path={bad}")
        assert reply.status == 403, bad
        assert reply.error["code"] == "sandbox"
    assert api.get("/files?workspace=zzz&path=app.py").status == 404
    assert api.get("/files?path=app.py").status == 400  # several workspaces


def test_tree_include_exclude_glob_and_cap(api: Client) -> None:
    body = api.get("/tree?workspace=manual").json
    paths = {f["path"] for f in body["files"]}
    assert {"app.py", "util.py", "src/deep/mod.py", "README.md"} <= paths
    assert "notes.log" not in paths
    assert not any(p.startswith(".ghost") for p in paths)
    only = api.get("/tree?workspace=manual&glob=src/**/*.py").json
    assert [f["path"] for f in only["files"]] == ["src/deep/mod.py"]
    capped = api.get("/tree?workspace=manual&limit=1").json
    assert capped["count"] == 1
    assert capped["truncated"] is True
    assert api.get("/tree?workspace=manual&limit=abc").status == 400


# --- events -------------------------------------------------------------------------------------
def test_events_pages_and_filters(api: Client) -> None:
    first = api.get("/events?limit=3").json
    assert len(first["events"]) == 3
    assert first["next_after"] == first["events"][-1]["position"]
    second = api.get(f"/events?after={first['next_after']}&limit=3").json
    assert second["events"][0]["position"] > first["next_after"]
    typed = api.get("/events?type=NodeStarted").json
    assert typed["events"]
    assert all(e["type"] == "NodeStarted" for e in typed["events"])
    streamed = api.get("/events?stream=node&limit=5").json
    assert all(e["stream"] == "node" for e in streamed["events"])
    assert api.get("/events?after=-1").status == 400
    assert api.get("/events?type=bad%20type").status == 400


# --- /patch loopback only, slack off ------------------------------------------------------------
def test_local_patch_endpoint_refuses_forwarded_requests(api: Client) -> None:
    ok = api.post(
        "/patch", {"workspace": "main", "patch": add_file(f"l{uuid.uuid4().hex}.py", "l")}
    )
    assert ok.status == 200
    forwarded = api.post(
        "/patch", {"workspace": "main", "patch": "x"}, headers={"X-Forwarded-For": "1.2.3.4"}
    )
    assert forwarded.status == 403


def test_slack_commands_off_without_secret(api: Client) -> None:
    assert api.post("/slack/commands", b"command=%2Fghost&text=status").status == 404


def test_requests_are_not_logged_one_line_each(node: NodeProcess, api: Client) -> None:
    """The access log is at DEBUG: at the default level a request writes no log line (a line
    per request cost a quarter of the reactor's time under load)."""
    for _ in range(5):
        assert api.get("/health").status == 200
    assert '"GET /health' not in node.stderr_path.read_text(errors="replace")
