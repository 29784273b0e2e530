"""GET /openapi.json, with `servers` set to the URL the caller reached us by (the tunnel's
public URL when fetched through it) unless `?server=` names one."""

from __future__ import annotations

from urllib.parse import urlsplit

from adapters.web.app import WebApp
from adapters.web.errors import invalid
from adapters.web.http import ApiRequest, ApiResponse
from adapters.web.openapi import document


def server_url(app: WebApp, req: ApiRequest) -> str:
    given = req.arg("server")
    if given:
        parts = urlsplit(given)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise invalid("server", "expected an http(s) URL")
        return given.rstrip("/")
    host = req.headers.get("x-forwarded-host") or req.headers.get("host")
    if not host or len(host) > 255 or any(c in host for c in "/\\ @"):
        return app.base_url
    proto = req.headers.get("x-forwarded-proto", "http")
    return f"{'https' if proto == 'https' else 'http'}://{host}"


def get_openapi(app: WebApp, req: ApiRequest) -> ApiResponse:
    return ApiResponse(200, document(server_url(app, req), app.services.version))
