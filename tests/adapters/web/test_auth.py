"""The auth matrix over HTTP (none, wrong, expired, replayed, good bearer, good HMAC), and the
dashboard cookie/CSRF rules of the auth layer."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from adapters.web.auth import COOKIE_NAME, Authenticator, SignatureMemory, signature_headers
from adapters.web.errors import ApiError
from tests.adapters.web.support import HMAC_SECRET, Client, signed_headers
from tests.node_process import NodeProcess

BODY = json.dumps({"command": "status"}).encode()


def anon(node: NodeProcess) -> Client:
    return node.client(token=None)


def test_no_credentials(node: NodeProcess) -> None:
    reply = anon(node).post("/webhook", BODY)
    assert reply.status == 401
    assert reply.error["code"] == "unauthorized"
    assert reply.error["details"]["reason"] == "missing"
    assert reply.headers["www-authenticate"].startswith("Bearer")
    for path in ("/patches", "/events", "/metrics", "/openapi.json", "/tree?workspace=main"):
        assert anon(node).get(path).status == 401, path


def test_wrong_bearer(node: NodeProcess) -> None:
    reply = node.client(token="x" * 43).post("/webhook", BODY)
    assert reply.status == 401
    assert reply.error["details"]["reason"] == "bad_token"
    assert anon(node).get("/health", headers={"Authorization": "Basic abc"}).status == 401


def test_good_bearer(node: NodeProcess) -> None:
    assert node.client().post("/webhook", BODY).status == 200


def test_good_hmac(node: NodeProcess) -> None:
    reply = anon(node).post("/webhook", BODY, headers=signed_headers(BODY))
    assert reply.status == 200


def test_hmac_wrong_secret_and_tampered_body(node: NodeProcess) -> None:
    assert anon(node).post("/webhook", BODY, headers=signed_headers(BODY, "nope")).status == 401
    headers = signed_headers(BODY)
    assert anon(node).post("/webhook", BODY + b" ", headers=headers).status == 401


def test_hmac_expired_timestamp(node: NodeProcess) -> None:
    old = signed_headers(BODY, at=int(time.time()) - 301)
    reply = anon(node).post("/webhook", BODY, headers=old)
    assert reply.status == 401
    assert reply.error["details"]["reason"] == "expired_timestamp"
    future = signed_headers(BODY, at=int(time.time()) + 301)
    assert anon(node).post("/webhook", BODY, headers=future).status == 401


def test_hmac_replayed_signature(node: NodeProcess) -> None:
    body = json.dumps({"command": "status", "id": str(time.time_ns())}).encode()
    headers = signed_headers(body)
    assert anon(node).post("/webhook", body, headers=headers).status == 200
    again = anon(node).post("/webhook", body, headers=headers)
    assert again.status == 401
    assert again.error["details"]["reason"] == "replayed"


def test_hmac_get_signs_the_empty_body(node: NodeProcess) -> None:
    headers = signed_headers(b"", method="GET", target="/patches")
    assert anon(node).get("/patches", headers=headers).status == 200


# --- unit level: the cookie and CSRF rules the dashboard will use --------------------------------
def test_cookie_login_and_csrf() -> None:
    auth = Authenticator("tok")
    with pytest.raises(ApiError):
        auth.login_with_query_token("wrong")
    cookie = auth.login_with_query_token("tok")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "tok;" not in cookie
    session = cookie.split(";")[0].split("=", 1)[1]
    assert auth.authenticate("GET", {}, {COOKIE_NAME: session}, b"").how == "cookie"
    with pytest.raises(ApiError) as refused:
        auth.authenticate("POST", {}, {COOKIE_NAME: session}, b"")
    assert refused.value.status == 403
    ok = auth.authenticate("POST", {"x-ghost-csrf": auth.csrf_token}, {COOKIE_NAME: session}, b"")
    assert ok.how == "cookie"
    with pytest.raises(ApiError):
        auth.authenticate("GET", {}, {COOKIE_NAME: "forged"}, b"")


NONCE = "unit-test-nonce"


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_hmac_without_secret_is_refused() -> None:
    auth = Authenticator("tok")
    ts = str(int(time.time()))
    headers = lower(signature_headers(b"s", "GET", "/", timestamp=int(ts)))
    with pytest.raises(ApiError):
        auth.authenticate("GET", headers, {}, b"")


def test_signature_memory_is_bounded_and_forgets_after_the_window() -> None:
    memory = SignatureMemory(window_s=10, capacity=2)
    memory.remember("a", 0)
    memory.remember("b", 1)
    with pytest.raises(ApiError) as full:
        memory.remember("c", 2)
    assert full.value.status == 503
    with pytest.raises(ApiError):
        memory.remember("a", 5)
    memory.remember("c", 12)  # "a" and "b" have expired
    assert len(memory) == 1
    memory.remember("a", 13)


def test_signatures_survive_a_new_authenticator_and_predate_no_start() -> None:
    """The node keeps one SignatureMemory per process, so a restarted web actor (a new
    Authenticator) still refuses a replay; and a new process, whose memory is empty, refuses
    any signature dated before it started (the previous process may have accepted it)."""
    now = [1_000_000.0]
    memory = SignatureMemory(window_s=300)

    def auth(not_before: float) -> Authenticator:
        return Authenticator(
            "tok", "secret", clock=lambda: now[0], signatures=memory, not_before=not_before
        )

    def signed(at: float) -> dict[str, str]:
        ts = str(int(at))
        return lower(signature_headers(b"secret", "GET", "/", timestamp=int(ts), nonce=NONCE))

    first = auth(not_before=now[0] - 60)
    assert first.authenticate("GET", signed(now[0] - 10), {}, b"").how == "hmac"
    again = auth(not_before=now[0] - 60)  # the web actor restarted in the same process
    with pytest.raises(ApiError) as replayed:
        again.authenticate("GET", signed(now[0] - 10), {}, b"")
    assert replayed.value.details["reason"] == "replayed"
    memory = SignatureMemory(window_s=300)  # a new process: nothing remembered
    restarted = auth(not_before=now[0])
    with pytest.raises(ApiError) as before_start:
        restarted.authenticate("GET", signed(now[0] - 10), {}, b"")
    assert before_start.value.details["reason"] == "signed_before_start"
    now[0] += 1
    assert restarted.authenticate("GET", signed(now[0]), {}, b"").how == "hmac"


# --- the v1 signed string covers method, target and a nonce (hostile-input hole 7) -----------
def test_a_signature_for_one_request_is_refused_on_another(node: NodeProcess) -> None:
    headers = signed_headers(b"", method="GET", target="/tree")
    reply = anon(node).post("/pause", b"", headers=headers)
    assert reply.status == 401
    assert reply.error["details"]["reason"] == "bad_signature"
    query = signed_headers(b"", method="GET", target="/tree?workspace=main&glob=*.py")
    assert anon(node).get("/tree?workspace=main&glob=*.md", headers=query).status == 401
    assert anon(node).get("/tree?workspace=main&glob=*.py", headers=query).status == 200


def test_identical_signed_gets_in_one_second_are_not_replays(node: NodeProcess) -> None:
    at = int(time.time())
    for _ in range(3):  # same second, same request, a fresh nonce each
        headers = signed_headers(b"", at=at, method="GET", target="/patches")
        assert anon(node).get("/patches", headers=headers).status == 200


def test_a_signature_without_a_nonce_or_in_the_old_format_is_refused(node: NodeProcess) -> None:
    headers = signed_headers(BODY)
    del headers["X-Ghost-Nonce"]
    reply = anon(node).post("/webhook", BODY, headers=headers)
    assert reply.status == 401
    assert reply.error["details"]["reason"] == "malformed_nonce"
    ts = str(int(time.time()))
    old = hmac.new(HMAC_SECRET.encode(), ts.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    legacy = {
        "X-Ghost-Timestamp": ts,
        "X-Ghost-Nonce": "n" * 16,
        "X-Ghost-Signature": f"sha256={old}",
    }
    assert anon(node).post("/webhook", BODY, headers=legacy).status == 401
