"""read_file (GET /files: one file, for GPT to read before it patches) and list_files (GET
/tree: a workspace's files, include/exclude applied). Both read through the patch engine's
Sandbox rules, in the thread pool."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from twisted.internet.defer import Deferred

from adapters.config import WorkspaceConfig
from adapters.operations.model import Call
from adapters.patching import Sandbox, SandboxViolation
from adapters.patching.pathrules import SECRET_FILES
from adapters.watching.patterns import PathFilter
from adapters.web.app import WebApp
from adapters.web.errors import ApiError, invalid
from adapters.web.http import ApiResponse

DEFAULT_TREE_LIMIT = 2000


def _workspace(app: WebApp, call: Call) -> WorkspaceConfig:
    name = call.args.get("workspace")
    workspaces = app.services.workspaces
    if name is None or name == "":
        if len(workspaces) == 1:
            return next(iter(workspaces.values()))
        raise invalid("workspace", f"required: one of {', '.join(sorted(workspaces))}")
    if name not in workspaces:
        raise ApiError(
            404, "not_found", f"no workspace {name!r}", {"workspaces": sorted(workspaces)}
        )
    return workspaces[name]


def read_file(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    ws = _workspace(app, call)
    path = call.args.get("path")
    if not path:
        raise invalid("path", "required: a path relative to the workspace, e.g. src/app.py")
    return app.in_thread(_read, ws, path).addCallback(lambda body: ApiResponse(200, body))


def _read(ws: WorkspaceConfig, path: str) -> dict[str, Any]:
    sandbox = Sandbox(ws.path, ws.exclude, ws.max_file_bytes, ws.include)
    try:
        data = sandbox.read(path)
    except SandboxViolation as exc:
        raise ApiError(
            403, "sandbox", f"{path}: {exc.message}", {"path": path, "reason": exc.reason}
        ) from None
    if data is None:
        raise ApiError(
            404,
            "not_found",
            f"no file {path!r} in workspace {ws.name}; GET /tree lists files",
            {"path": path},
        )
    return {
        "workspace": ws.name,
        "path": path,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content": data.decode("utf-8"),
    }


def list_files(app: WebApp, call: Call) -> Deferred[ApiResponse]:
    ws = _workspace(app, call)
    glob = call.args.get("glob") or None
    if glob is not None and "\x00" in glob:
        raise invalid("glob", "at most 200 characters, no NUL")
    limit = int(call.args["limit"])
    if limit > app.config.tree_max:
        raise invalid("limit", f"must be between 1 and {app.config.tree_max}, got {limit}")
    return app.in_thread(_walk, ws, glob, limit).addCallback(lambda body: ApiResponse(200, body))


def _walk(ws: WorkspaceConfig, glob: str | None, limit: int) -> dict[str, Any]:
    rules = PathFilter(ws.include, (*ws.exclude, *SECRET_FILES))  # what reads allow, no more
    wanted = PathFilter((glob,), ()) if glob else None
    files: list[dict[str, Any]] = []
    truncated = False
    root = str(ws.path)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = sorted(
            d for d in dirnames if not rules.dir_excluded(f"{rel_dir}/{d}".lstrip("/"))
        )
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}".lstrip("/")
            if not rules.file_matches(rel) or (wanted is not None and not wanted.file_matches(rel)):
                continue
            if len(files) >= limit:
                truncated = True
                break
            try:
                size = os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue  # removed while we walked
            files.append({"path": rel, "size": size})
        if truncated:
            break
    return {
        "workspace": ws.name,
        "glob": glob,
        "files": files,
        "count": len(files),
        "truncated": truncated,
    }
