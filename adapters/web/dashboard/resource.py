"""GET /dashboard and its assets (SPEC §4).

Sign-in: `GET /dashboard?token=<token>` checks the token, sets the HttpOnly SameSite=Strict
session cookie and redirects to `/dashboard`, so the token leaves the address bar and history.

The page itself is static and holds no secret, so it is served to anyone: a SameSite=Strict
cookie is not sent on a navigation that starts on another site (a link in Slack), and the page
would otherwise refuse a developer who is signed in. Its scripts then ask `GET
/dashboard/session` (same-origin, so the cookie is sent; token auth) for the CSRF value they
put in the X-Ghost-CSRF header of their POSTs, and show a sign-in form when that answers 401."""

from __future__ import annotations

from functools import cache
from importlib import resources

from adapters.web.app import WebApp
from adapters.web.auth import COOKIE_NAME, CSRF_HEADER
from adapters.web.errors import ApiError
from adapters.web.http import ApiRequest, ApiResponse
from adapters.web.router import Handler, Route

PAGE = "index.html"
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# Only this origin's own files: no inline script or style, no framing, no form posts elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@cache
def asset(name: str) -> bytes:
    """One of the page's files, read once (they ship inside this package)."""
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no dashboard file {name!r}")
    return resources.files(__package__).joinpath(name).read_bytes()


def _file(name: str) -> ApiResponse:
    return ApiResponse(200, asset(name), dict(SECURITY_HEADERS), content_type=ASSETS[name])


def get_dashboard(app: WebApp, req: ApiRequest) -> ApiResponse:
    """The page; with `?token=`: sign in (cookie) and redirect to the bare URL (401 if wrong)."""
    token = req.arg("token")
    if token is not None:
        cookie = app.auth.login_with_query_token(token)
        headers = {**SECURITY_HEADERS, "Set-Cookie": cookie, "Location": "/dashboard"}
        return ApiResponse(303, b"", headers, content_type="text/plain; charset=utf-8")
    return _file(PAGE)


def get_root(app: WebApp, req: ApiRequest) -> ApiResponse:
    """`/`, the URL a person types first: to the dashboard, which asks for the token. The
    query is dropped, so a token pasted after `/?` never travels on in a Location."""
    headers = {**SECURITY_HEADERS, "Location": "/dashboard"}
    return ApiResponse(302, b"", headers, content_type="text/plain; charset=utf-8")


def get_session(app: WebApp, req: ApiRequest) -> ApiResponse:
    """What the page needs for its POSTs (token auth: the session cookie or a bearer token)."""
    return ApiResponse(200, {"csrf_header": CSRF_HEADER, "csrf": app.auth.csrf_token})


def end_session(app: WebApp, req: ApiRequest) -> ApiResponse:
    """Sign out: the caller's session ends here and in every later run of the node."""
    cookie: dict[bytes, bytes] = req.raw.received_cookies
    session = cookie.get(COOKIE_NAME.encode(), b"").decode("latin-1")
    ended = bool(session) and app.auth.sessions.revoke(session)
    expired = f"{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    return ApiResponse(200, {"signed_out": ended}, {"Set-Cookie": expired})


def revoke_sessions(app: WebApp, req: ApiRequest) -> ApiResponse:
    """Every dashboard session ends (`ghost sessions revoke`); the token stays valid."""
    return ApiResponse(200, {"revoked": app.auth.sessions.revoke_all()})


def _asset_handler(name: str) -> Handler:
    def handler(app: WebApp, req: ApiRequest) -> ApiResponse:
        return _file(name)

    return handler


def dashboard_routes() -> list[Route]:
    """The dashboard's part of the router's table (`adapters/web/routes.all_routes`)."""
    return [
        Route("GET", "/", get_root, auth="open"),
        Route("GET", "/dashboard", get_dashboard, auth="open"),
        Route("GET", "/dashboard/session", get_session),
        Route("DELETE", "/dashboard/session", end_session),
        Route("POST", "/sessions/revoke", revoke_sessions),
        Route("GET", "/dashboard/app.js", _asset_handler("app.js"), auth="open"),
        Route("GET", "/dashboard/app.css", _asset_handler("app.css"), auth="open"),
    ]
