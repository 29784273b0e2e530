"""One session as GPT has it, end to end: real HTTP against a real ghost-node subprocess, a real
Python workspace whose pytest suite the node runs, Slack at a loopback fake, the dashboard in
headless Chromium, and the operator's `bin/ghost` as subprocesses (SPEC §3, §4, §5, §7).

The steps are the module's tests, in order, on one node (module fixture): GPT reads the tree
and a file, patches against the file's hash (applied, tests pass), sends a patch written
against stale content (422 with the failing hunk and the closest lines), resends it corrected
(applied), sends one that breaks the tests (failed, rolled back, the file as before); Slack was
told; the dashboard shows all of it; `ghost audit --json` reports every patch; `ghost rollback`
undoes the applied ones through the running node; the node stops cleanly and
`ghost replay --verify` finds the chain and the workspace consistent. A step whose predecessor
did not pass is skipped, not failed, so that the first failure is the one reported.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.slack.fake_slack import FakeSlack
from tests.adapters.web.support import GHOST, Client, Reply, write_workspace
from tests.node_process import NodeProcess

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.timeout(90)

CALC = '''\
"""A tiny calculator."""


def add(a, b):
    return a + b


def mul(a, b):
    return a * b
'''
TEST_CALC = """\
from calc import add, mul


def test_add():
    assert add(2, 3) == 5


def test_mul():
    assert mul(2, 3) == 6
"""
# 1: typed signature for add (GPT read calc.py and sends its hash as `base`).
TYPED = "def add(a: int, b: int) -> int:"
PATCH_TYPED = f"""\
*** Begin Patch
*** Update File: calc.py
@@
-def add(a, b):
+{TYPED}
     return a + b
*** End Patch
"""
# 2: written against the original file (its `def add(a, b):` context is gone): 422.
PATCH_STALE = """\
*** Begin Patch
*** Update File: calc.py
@@
 def add(a, b):
-    return a + b
+    \"\"\"The sum of a and b.\"\"\"
+    return a + b
*** End Patch
"""
# 3: the same change, corrected from the 422's closest lines.
PATCH_CORRECTED = f"""\
*** Begin Patch
*** Update File: calc.py
@@
 {TYPED}
-    return a + b
+    \"\"\"The sum of a and b.\"\"\"
+    return a + b
*** End Patch
"""
# 4: breaks test_mul: the node must roll it back.
PATCH_BREAKING = """\
*** Begin Patch
*** Update File: calc.py
@@ def mul(a, b):
-    return a * b
+    return a ** b
*** End Patch
"""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _until(predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class Session:
    root: Path
    workspace: Path
    node: NodeProcess
    slack: FakeSlack
    api: Client
    passed: set[str] = field(default_factory=set)
    ids: dict[str, str] = field(default_factory=dict)  # step -> patch id
    contents: dict[str, str] = field(default_factory=dict)  # step -> calc.py after it

    @property
    def calc(self) -> str:
        return (self.workspace / "calc.py").read_text()

    def need(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.passed]
        if missing:
            pytest.skip(f"an earlier step of the session did not pass: {', '.join(missing)}")

    def webhook(self, patch: str, description: str, **extra: Any) -> Reply:
        body = {"patch": patch, "description": description, "author": "gpt", **extra}
        return self.api.post("/webhook", body)

    def ghost(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(GHOST), "--state-dir", str(self.node.state_dir), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    root = tmp_path_factory.mktemp("gpt-session")
    ws = write_workspace(root / "ws", {"calc.py": CALC, "test_calc.py": TEST_CALC})
    test_command = [sys.executable, "-m", "pytest", "-q"]
    (root / "ghost.toml").write_text(
        "[node]\nport = 0\n\n"
        f'[[workspace]]\nname = "main"\npath = "ws"\ntest_command = {json.dumps(test_command)}\n'
        "test_timeout_s = 60\n\n"
        '[slack]\nwebhook_url_env = "SLACK_WEBHOOK_URL"\n'
    )
    slack = FakeSlack().start()
    node = NodeProcess(
        root,
        "--config",
        str(root / "ghost.toml"),
        env={
            "SLACK_WEBHOOK_URL": slack.webhook_url,
            # The workspace's pytest needs none of this venv's plugins (schemathesis alone
            # costs seconds per run); a user's project would not have them either.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTEST_ADDOPTS": "",
        },
    )
    try:
        yield Session(root, ws, node, slack, node.client(timeout=60))
    finally:
        node.stop()
        slack.stop()


def test_gpt_reads_the_tree_and_a_file(session: Session) -> None:
    tree = session.api.get("/tree")
    assert tree.status == 200, tree.raw
    paths = {f["path"] for f in tree.json["files"]}
    assert {"calc.py", "test_calc.py"} <= paths, tree.json
    assert not any(p.startswith(".ghost/") for p in paths), paths
    assert tree.json["truncated"] is False

    read = session.api.get("/files?path=calc.py")
    assert read.status == 200, read.raw
    body = read.json
    assert body["content"] == CALC
    assert body["sha256"] == _sha(CALC)
    assert body["size"] == len(CALC.encode())
    session.contents["base"] = body["sha256"]
    session.passed.add("read")


def test_patch_against_the_read_hash_applies_and_tests_pass(session: Session) -> None:
    session.need("read")
    reply = session.webhook(PATCH_TYPED, "type add()", base={"calc.py": session.contents["base"]})
    assert reply.status == 200, reply.raw
    answer = reply.json
    assert answer["status"] == "applied", answer
    assert answer["tests"]["status"] == "passed", answer["tests"]
    assert answer["tests"]["exit_code"] == 0
    assert "2 passed" in answer["tests"]["output_tail"]
    (changed,) = answer["files"]
    expected = CALC.replace("def add(a, b):", TYPED)
    assert changed == {
        "path": "calc.py",
        "action": "update",
        "before_sha256": _sha(CALC),
        "after_sha256": _sha(expected),
    }
    assert f"+{TYPED}" in answer["diff"]
    assert "-def add(a, b):" in answer["diff"]
    assert session.calc == expected
    session.ids["typed"] = answer["patch_id"]
    session.contents["typed"] = expected
    session.passed.add("typed")


def test_stale_patch_answers_422_with_the_closest_lines_then_applies_corrected(
    session: Session,
) -> None:
    session.need("typed")
    stale = session.webhook(PATCH_STALE, "document add()")
    assert stale.status == 422, stale.raw
    error = stale.error
    assert error["code"] == "does_not_apply", error
    assert stale.json["status"] == "rejected"
    (failure,) = error["details"]["failures"]
    assert failure["path"] == "calc.py"
    assert failure["hunk_index"] == 0
    assert " def add(a, b):" in failure["hunk"]
    assert failure["reason"] == "not_found"
    closest = {c["line"]: c["text"] for c in failure["closest"]}
    # The region the hunk was meant for, as it really is now, with 1-based line numbers.
    lines = session.calc.splitlines()
    assert closest.get(4) == TYPED == lines[3], failure["closest"]
    assert closest.get(5) == "    return a + b" == lines[4], failure["closest"]
    assert session.calc == session.contents["typed"], "a rejected patch wrote something"
    session.ids["stale"] = stale.json["patch_id"]

    # GPT rewrites the context from the closest lines and resends.
    fixed = session.webhook(PATCH_CORRECTED, "document add()")
    assert fixed.status == 200, fixed.raw
    answer = fixed.json
    assert answer["status"] == "applied", answer
    assert answer["tests"]["status"] == "passed", answer["tests"]
    expected = session.contents["typed"].replace(
        f"{TYPED}\n", f'{TYPED}\n    """The sum of a and b."""\n'
    )
    assert session.calc == expected
    assert answer["files"][0]["before_sha256"] == _sha(session.contents["typed"])
    assert answer["files"][0]["after_sha256"] == _sha(expected)
    session.ids["corrected"] = answer["patch_id"]
    session.contents["corrected"] = expected
    session.passed.add("corrected")


def test_patch_that_breaks_the_tests_is_rolled_back(session: Session) -> None:
    session.need("corrected")
    before = session.calc
    reply = session.webhook(PATCH_BREAKING, "faster mul()")
    assert reply.status == 200, reply.raw
    answer = reply.json
    assert answer["status"] == "rolled_back", answer
    tests = answer["tests"]
    assert tests["status"] == "failed", tests
    assert tests["exit_code"] not in (0, None), tests
    assert "test_mul" in tests["output_tail"], tests["output_tail"]
    assert "a ** b" in answer["diff"]  # what it would have done
    assert session.calc == before, "the failed patch was not rolled back on disk"
    patch = session.api.get(f"/patches/{answer['patch_id']}")
    assert patch.status == 200, patch.raw
    assert patch.json["status"] == "rolled_back"
    session.ids["breaking"] = answer["patch_id"]
    session.passed.add("breaking")


def test_slack_was_told_about_the_applied_and_the_rolled_back_patch(session: Session) -> None:
    session.need("breaking")

    def about(pid: str) -> list[str]:
        return [r.text for r in session.slack.accepted() if pid in json.dumps(r.payload)]

    applied = _until(lambda: about(session.ids["typed"]), "Slack told of the first patch")
    assert any("applied" in text for text in applied), applied
    broken = session.ids["breaking"]

    def failed_and_rolled_back() -> list[str] | None:
        texts = about(broken)
        joined = " ".join(texts)
        return texts if "failed" in joined and "rolled back" in joined else None

    texts = _until(failed_and_rolled_back, "Slack told of the failed tests and the rollback")
    assert texts
    secret = session.slack.webhook_url
    assert all(secret not in json.dumps(r.payload) for r in session.slack.received)
    session.passed.add("slack")


def test_dashboard_shows_the_patches_and_the_event_feed(session: Session) -> None:
    session.need("breaking")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (apt-get install chromium): dashboard part not run")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed: dashboard part not run")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{session.node.port}"
    problems: list[str] = []
    statuses = {
        session.ids["typed"]: "applied",
        session.ids["stale"]: "rejected",
        session.ids["corrected"]: "applied",
        session.ids["breaking"]: "rolled_back",
    }
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on(
                "console",
                lambda msg: problems.append(msg.text) if msg.type == "error" else None,
            )
            page.goto(f"{base}/dashboard?token={session.node.token}")
            assert page.url == f"{base}/dashboard"
            page.locator("#app").wait_for(state="visible")
            page.locator("#feed-status[data-status='ok']").wait_for()
            for pid, status in statuses.items():
                row = page.locator(
                    f"#patches tr[data-patch-id='{pid}'][data-patch-status='{status}']"
                )
                row.wait_for()
                assert row.locator(".badge").first.inner_text() == status
            failed_row = page.locator(f"#patches tr[data-patch-id='{session.ids['breaking']}']")
            assert failed_row.locator("td.desc").inner_text() == "faster mul()"
            assert "failed" in failed_row.inner_text()  # its tests column
            # The live feed carries the session's facts.
            for kind in ("PatchApplied", "PatchRejected", "TestsFinished", "PatchRolledBack"):
                page.locator(f"#events li[data-type='{kind}']").first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "e2e-session-1-patches.png"), full_page=True)

            # The rolled-back patch's detail: failed tests, the diff it would have made.
            failed_row.click()
            detail = page.locator(f"#detail[data-patch-id='{session.ids['breaking']}']")
            detail.wait_for()
            assert detail.get_attribute("data-patch-status") == "rolled_back"
            assert "+    return a ** b" in detail.locator(".diff").inner_text()
            assert "test_mul" in detail.locator(".tests").inner_text()
            page.screenshot(path=str(ARTIFACTS / "e2e-session-2-rolled-back.png"), full_page=True)
        finally:
            browser.close()
    assert not problems, problems


def test_ghost_audit_reports_every_patch_with_its_outcome(session: Session) -> None:
    session.need("breaking")
    run = session.ghost("audit", "--json")
    assert run.returncode == 0, run.stderr
    rows = {r["patch_id"]: r for r in map(json.loads, run.stdout.splitlines())}
    expected = {
        session.ids["typed"]: ("applied", "passed", "type add()"),
        session.ids["stale"]: ("rejected", None, "document add()"),
        session.ids["corrected"]: ("applied", "passed", "document add()"),
        session.ids["breaking"]: ("rolled_back", "failed", "faster mul()"),
    }
    assert set(rows) == set(expected), rows
    for pid, (status, tests, description) in expected.items():
        row = rows[pid]
        assert (row["status"], row["tests"], row["description"]) == (status, tests, description)
        assert row["author"] == "gpt"
        assert row["workspace"] == "main"
    assert rows[session.ids["stale"]]["error"], "a rejected patch says why"
    for pid in (session.ids["typed"], session.ids["corrected"], session.ids["breaking"]):
        assert rows[pid]["files"] == ["calc.py"]
    session.passed.add("audit")


def test_ghost_rollback_through_the_running_node_restores_the_file(session: Session) -> None:
    session.need("breaking")
    typed, corrected = session.ids["typed"], session.ids["corrected"]
    # The first patch's file has changed since (the corrected patch): refused, with the path.
    refused = session.ghost("rollback", typed)
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert "calc.py" in refused.stderr, refused.stderr
    assert session.calc == session.contents["corrected"]

    # Newest first: each rollback restores the content before its patch.
    undo = session.ghost("rollback", corrected)
    assert undo.returncode == 0, (undo.stdout, undo.stderr)
    assert f"rolled back patch {corrected}" in undo.stdout
    assert session.calc == session.contents["typed"]
    # A dry run first: the rollback's effect as a diff, nothing written.
    look = session.ghost("rollback", "--dry-run", typed)
    assert look.returncode == 0, (look.stdout, look.stderr)
    assert f"would roll back patch {typed}" in look.stdout
    assert f"-{TYPED}\n+def add(a, b):" in look.stdout, look.stdout
    assert session.calc == session.contents["typed"]
    undo = session.ghost("rollback", typed)
    assert undo.returncode == 0, (undo.stdout, undo.stderr)
    assert f"rolled back patch {typed}" in undo.stdout
    assert session.calc == CALC

    # The node did them (online): its API knows, and so does the audit.
    for pid in (typed, corrected):
        assert session.api.get(f"/patches/{pid}").json["status"] == "rolled_back"
    audit = session.ghost("audit", "--json", "--patch", typed)
    assert audit.returncode == 0, audit.stderr
    assert json.loads(audit.stdout)["status"] == "rolled_back"
    session.passed.add("rollback")


def test_node_stops_cleanly_and_replay_verifies(session: Session) -> None:
    session.need("rollback")
    assert session.node.stop() == 0
    assert not (session.node.state_dir / "node.json").exists()
    run = session.ghost("replay", "--verify")
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert "hash chain ok" in run.stdout
    assert "workspaces match the events" in run.stdout
    as_json = session.ghost("replay", "--verify", "--json")
    assert as_json.returncode == 0, as_json.stderr
    verify = json.loads(as_json.stdout)["verify"]
    assert verify["ok"] is True
    assert verify["chain"]["ok"] is True
    assert verify["drift"] == []
    # The state rebuilt from the events alone: every patch of the session and its outcome.
    assert json.loads(as_json.stdout)["state"]["patches"] == {"rejected": 1, "rolled_back": 3}
    assert session.calc == CALC
