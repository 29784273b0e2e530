"""Dashboard sessions (the hostile-input issue's "by design" list): the cookie was derived from
the token, the same for every sign-in, and could not be ended without changing the token. Now
each sign-in is its own session: sign-out ends it, `ghost sessions revoke` ends them all, a
restarted node still knows them, and a forged or ended cookie is refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.adapters.web.support import GHOST
from tests.node_process import NodeProcess

pytestmark = pytest.mark.timeout(120)


def sign_in(node: NodeProcess) -> str:
    reply = node.client().get(f"/dashboard?token={node.token}", auth=False)
    assert reply.status == 303, reply.raw[:200]
    cookie = reply.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert node.token not in cookie
    return cookie.split(";")[0]  # ghost_session=...


def as_cookie(node: NodeProcess, cookie: str) -> int:
    return node.client().get("/patches", headers={"Cookie": cookie}, auth=False).status


def test_each_sign_in_is_its_own_session_and_each_can_end(
    make_node: Callable[..., NodeProcess],
) -> None:
    node = make_node()
    first, second = sign_in(node), sign_in(node)
    assert first != second
    assert as_cookie(node, first) == 200
    assert as_cookie(node, "ghost_session=forged") == 401
    headers = {"Cookie": first}
    assert (
        node.client().request("DELETE", "/dashboard/session", headers=headers, auth=False).status
        == 403
    )  # no CSRF
    csrf = node.client().get("/dashboard/session", headers=headers, auth=False).json["csrf"]
    out = node.client().request(
        "DELETE", "/dashboard/session", headers={**headers, "X-Ghost-CSRF": csrf}, auth=False
    )
    assert out.status == 200
    assert out.json == {"signed_out": True}
    assert as_cookie(node, first) == 401  # ended
    assert as_cookie(node, second) == 200  # the other one goes on


def test_sessions_survive_a_restart_and_revoke_ends_them_all(
    make_node: Callable[..., NodeProcess],
) -> None:
    node = make_node()
    cookies = [sign_in(node) for _ in range(3)]
    node.stop()
    restarted = make_node_again(node)
    try:
        assert all(as_cookie(restarted, c) == 200 for c in cookies)
        done = subprocess.run(
            [
                sys.executable,
                str(GHOST),
                "--state-dir",
                str(restarted.state_dir),
                "sessions",
                "revoke",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "3 dashboard session(s) ended" in done.stdout
        assert all(as_cookie(restarted, c) == 401 for c in cookies)
        assert restarted.client().get("/patches").status == 200  # the token still works
        stored = (restarted.state_dir / "sessions").read_text()
        assert all(c.split("=", 1)[1] not in stored for c in cookies)  # only hashes, if any
    finally:
        restarted.stop()


def make_node_again(node: NodeProcess) -> NodeProcess:
    return NodeProcess(
        node.workspace, "--config", str(node.workspace / "ghost.toml"), env={"GHOST_HTTP_RATE": "0"}
    )
