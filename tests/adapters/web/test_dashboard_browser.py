"""The dashboard in a real headless Chromium against a real ghost-node (SPEC §4, GET /dashboard).

Signs in with `?token=`, then: a patch sent to POST /webhook appears live (no reload), is
approved from the page (inline confirmation, CSRF header) and written to disk, then rolled back
from the page and the file restored. Screenshots of each step go to tests/artifacts/.

Needs Debian's chromium (`apt-get install chromium`) and the `playwright` package; never
`playwright install` (its browser download is not used)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.node_process import NodeProcess

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "tests" / "artifacts"
SUPPORT = Path(__file__).resolve().parent / "dashboard_support"
FAKE_TUNNEL = SUPPORT / "fake_tunnel.py"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BEFORE = "hello\nworld\n"
AFTER_LINE = "ghost <b>was</b> here"  # markup in a diff: shown as text, never parsed
AFTER = f"hello\n{AFTER_LINE}\n"
PATCH = f"--- a/hello.md\n+++ b/hello.md\n@@ -1,2 +1,2 @@\n hello\n-world\n+{AFTER_LINE}\n"
CSRF_PROBE = "/patches/nope/approve"
# Untrusted text the page must show as text: an element here would be an injection.
DESCRIPTION = 'greet the ghost <img src=x onerror="window.__pwned=1">'

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt install chromium)"),
    pytest.mark.timeout(120),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


@dataclass
class RunningNode:
    proc: subprocess.Popen[bytes]
    base: str
    token: str
    workspace: Path


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "hello.md").write_text(BEFORE)
    config = tmp_path / "ghost.toml"
    tunnel = [sys.executable, str(FAKE_TUNNEL), str(tmp_path / ".ghost" / "node.json")]
    config.write_text(
        "[node]\nport = 0\n\n"
        f'[[workspace]]\nname = "main"\npath = "{ws}"\napproval = "manual"\n\n'
        f'[[tunnel]]\nname = "local"\ncommand = {json.dumps(tunnel)}\n'
        'url_pattern = "http://127\\\\.0\\\\.0\\\\.1:[0-9]+"\n'
    )
    running = NodeProcess(tmp_path, "--config", str(config))
    try:
        yield RunningNode(running.proc, f"http://127.0.0.1:{running.port}", running.token, ws)
    finally:
        running.stop()


def _post_webhook(node: RunningNode, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{node.base}/webhook",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {node.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def _until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_dashboard_live_patch_approve_and_rollback(node: RunningNode) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("dashboard-*.png"):
        old.unlink()
    problems: list[str] = []

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

            def console(msg: Any) -> None:
                url = msg.location.get("url", "")
                if msg.type == "error" and not url.endswith(CSRF_PROBE):  # that 403 is expected
                    problems.append(f"console {msg.type}: {msg.text} ({url})")

            page.on("console", console)

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)

            # Sign in: the token becomes a cookie and leaves the address bar.
            page.goto(f"{node.base}/dashboard?token={node.token}")
            assert page.url == f"{node.base}/dashboard"
            cookies = {c["name"]: c for c in context.cookies()}
            assert cookies["ghost_session"]["httpOnly"] is True
            assert cookies["ghost_session"]["sameSite"] == "Strict"
            assert node.token not in cookies["ghost_session"]["value"]
            page.locator("#app").wait_for(state="visible")
            page.locator("#feed-status[data-status='ok']").wait_for()
            page.locator("#actors tr").first.wait_for()
            page.locator("#node-status[data-status='ok']").wait_for(timeout=20_000)
            assert page.locator("#no-patches").is_visible()
            page.evaluate("window.__sameDocument = true")
            shot("1-signed-in")

            # A cookie POST without the CSRF header is refused.
            status = page.evaluate(f"fetch('{CSRF_PROBE}', {{method: 'POST'}}).then(r => r.status)")
            assert status == 403

            # A patch arrives through the webhook and shows up live.
            answer = _post_webhook(
                node,
                {"format": "unified", "patch": PATCH, "description": DESCRIPTION, "author": "gpt"},
            )
            assert answer["status"] == "pending_approval", answer
            pid = answer["patch_id"]
            row = page.locator(f"#patches tr[data-patch-id='{pid}']")

            def row_with(status: str) -> Any:
                return page.locator(
                    f"#patches tr[data-patch-id='{pid}'][data-patch-status='{status}']"
                )

            row.wait_for()
            assert row.locator(".badge").inner_text() == "pending_approval"
            assert row.locator("td.desc").inner_text() == DESCRIPTION
            assert row.locator("img").count() == 0
            page.locator("#events li[data-type='PatchPendingApproval']").first.wait_for()
            assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
            assert (node.workspace / "hello.md").read_text() == BEFORE
            shot("2-patch-arrived")

            # Its detail: the coloured diff, as text.
            row.click()
            detail = page.locator(f"#detail[data-patch-id='{pid}']")
            detail.wait_for()
            assert detail.locator(".diff .line.del").inner_text().strip() == "-world"
            assert detail.locator(".diff .line.add").inner_text().strip() == "+" + AFTER_LINE
            assert detail.locator(".diff .line.hunk").count() == 1
            assert detail.locator(".diff b, .desc img").count() == 0
            shot("3-detail")

            # Approve, with the inline confirmation; the file changes on disk.
            detail.locator("button[data-action='approve']").click()
            confirm = detail.locator("button[data-confirm='approve']")
            confirm.wait_for()
            shot("4-confirm-approve")
            confirm.click()
            _until(lambda: (node.workspace / "hello.md").read_text() == AFTER, "the patch on disk")
            page.locator("#detail[data-patch-status='applied']").wait_for()
            row_with("applied").wait_for()
            page.locator("#events li[data-type='PatchApplied']").first.wait_for()
            assert "null" not in detail.inner_text()
            shot("5-applied")

            # Roll back from the page; the file is restored.
            detail.locator("button[data-action='rollback']").click()
            detail.locator("button[data-confirm='rollback']").click()
            _until(lambda: (node.workspace / "hello.md").read_text() == BEFORE, "the rollback")
            page.locator("#detail[data-patch-status='rolled_back']").wait_for()
            row_with("rolled_back").wait_for()
            page.locator("#events li[data-type='PatchRolledBack']").first.wait_for()
            assert detail.locator("button[data-action]").count() == 0
            assert page.evaluate("window.__pwned === undefined") is True
            assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
            shot("6-rolled-back")
        finally:
            browser.close()

    assert not problems, problems


def test_dashboard_shows_tunnels(node: RunningNode) -> None:
    def actors() -> dict[str, Any]:
        request = urllib.request.Request(
            f"{node.base}/health", headers={"Authorization": f"Bearer {node.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            found: dict[str, Any] = json.loads(response.read()).get("actors", {})
            return found

    deadline = time.monotonic() + 10
    while "tunnel.local" not in actors():
        assert time.monotonic() < deadline, "ghost-node did not start the [[tunnel]] actor"
        time.sleep(0.2)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{node.base}/dashboard?token={node.token}")
            tunnel = page.locator("#tunnels li[data-tunnel='local']")
            tunnel.locator(".badge").wait_for()
            link = tunnel.locator("a").first
            link.wait_for()
            assert link.inner_text().startswith("http://127.0.0.1:")
            # The test command (configured, detected or none with its reason), as /health says.
            page.wait_for_function(
                "document.getElementById('node-meta').textContent.includes('tests (')"
            )
        finally:
            browser.close()


def test_dashboard_without_session_offers_sign_in(node: RunningNode) -> None:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{node.base}/dashboard")
            page.locator("#signin").wait_for(state="visible")
            assert page.locator("#app").is_hidden()
            # The sign-in form is the ?token= flow.
            page.fill("#signin input[name='token']", node.token)
            page.click("#signin button[type='submit']")
            page.locator("#app").wait_for(state="visible")
            assert page.url == f"{node.base}/dashboard"
        finally:
            browser.close()


def test_wrong_token_is_refused(node: RunningNode) -> None:
    request = urllib.request.Request(f"{node.base}/dashboard?token=wrong")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401
    assert "set-cookie" not in {k.lower() for k in caught.value.headers}
