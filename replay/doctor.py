"""`ghost doctor`: the running node checked end to end, one line per check: every endpoint
answers, tunnels are reachable from their public URL, services are healthy, the store
verifies, the workspaces are writable (exit 1 if any check fails)."""

from __future__ import annotations

import argparse
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from adapters.statedir import StateDir
from eventstore import SQLiteEventStore, StoreError
from replay import reading
from replay.context import EXIT_OK, EXIT_PROBLEM
from replay.node_client import NodeClient, NodeError, lock_held, pid_alive
from replay.output import print_json

TUNNEL_TIMEOUT_S = 5.0
# The endpoints an operator or GPT relies on (all authenticated; /dashboard answers the page
# to a bearer token too). /tree gets ?workspace= added: several workspaces need it.
ENDPOINTS = (
    "/patches",
    "/events?limit=1",
    "/tree",
    "/metrics",
    "/openapi.json",
    "/watch",
    "/dashboard",
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def cmd_doctor(args: argparse.Namespace, state_dir: Path) -> int:
    checks: list[Check] = []
    for check in _checks(state_dir):
        checks.append(check)
        if not args.json:
            print(f"{'ok' if check.ok else 'FAIL':<4}  {check.name}: {check.detail}", flush=True)
    if args.json:
        print_json({"ok": all(c.ok for c in checks), "checks": [_check_json(c) for c in checks]})
    return EXIT_OK if all(c.ok for c in checks) else EXIT_PROBLEM


def _check_json(check: Check) -> dict[str, Any]:
    return {"name": check.name, "ok": check.ok, "detail": check.detail}


def _checks(state_dir: Path) -> Iterator[Check]:
    node = _node_check(state_dir)
    yield node
    if node.ok:
        yield from _online_checks(state_dir)
    yield from _store_checks(state_dir)


def _node_check(state_dir: Path) -> Check:
    state = StateDir(state_dir)
    data = state.read_node_json()
    if data is None:
        return Check(
            "node", False, f"no readable {state.node_json_path}: ghost-node is not running"
        )
    pid = data.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return Check("node", False, f"node.json names pid {pid}, which is not alive (stale)")
    if not lock_held(state):
        return Check("node", False, f"pid {pid} is alive but nobody holds {state.lock_path}")
    return Check("node", True, f"pid {pid} serving at {data.get('url')}")


def _online_checks(state_dir: Path) -> Iterator[Check]:
    try:
        client = NodeClient.connect(state_dir)
        health: dict[str, Any] = client.request("GET", "/health", accept=(503,))
    except NodeError as exc:
        # Refused token or no answer at all: every other endpoint would say the same.
        yield Check("GET /health", False, exc.message)
        return
    status = health.get("status")
    yield Check("GET /health", status == "ok", f"status {status}")
    workspaces = health.get("workspaces") or []
    for endpoint in ENDPOINTS:
        path = endpoint
        if endpoint == "/tree" and workspaces:
            path = f"/tree?workspace={quote(str(workspaces[0]))}"
        try:
            reply = client.raw("GET", path)
            yield Check(f"GET {path}", True, f"{reply.status} ({len(reply.raw)} bytes)")
        except NodeError as exc:
            yield Check(f"GET {path}", False, exc.message)
    for name, tunnel in sorted((health.get("tunnels") or {}).items()):
        yield _tunnel_check(name, tunnel)
    for name, service in sorted((health.get("services") or {}).items()):
        state = service.get("state")
        detail = f"{state}, pid {service.get('pid')}, health {service_health(service)}"
        yield Check(f"service {name}", state == "running", detail)


def _tunnel_check(name: str, tunnel: dict[str, Any]) -> Check:
    url = tunnel.get("url")
    if not url:
        return Check(f"tunnel {name}", False, f"no public URL (state {tunnel.get('state')})")
    target = str(url).rstrip("/") + "/health"
    try:
        # From the public URL, as GPT reaches it: unauthenticated, so only `{status}` answers.
        with urllib.request.urlopen(target, timeout=TUNNEL_TIMEOUT_S) as response:
            return Check(f"tunnel {name}", True, f"{target} answered {response.status}")
    except urllib.error.HTTPError as exc:
        exc.close()
        return Check(f"tunnel {name}", False, f"{target} answered {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Check(f"tunnel {name}", False, f"{target} unreachable: {exc}")


def _store_checks(state_dir: Path) -> Iterator[Check]:
    db = state_dir / "events.db"
    if not db.exists():
        yield Check("store", False, f"no event store at {db}")
        return
    try:
        with SQLiteEventStore(db, readonly=True) as store:
            report = store.verify()
            paths = reading.workspace_paths(store)
    except StoreError as exc:
        yield Check("store", False, str(exc))
        return
    if report.ok:
        yield Check("store", True, f"hash chain ok: {report.checked} events")
    else:
        where = f"position {report.first_bad_position}"
        yield Check("store", False, f"hash chain broken at {where}: {report.problem}")
    if not paths:
        yield Check("workspaces", False, "no NodeStarted event names the workspaces")
    for name, path in sorted(paths.items()):
        yield _writable_check(name, path)


def _writable_check(name: str, path: Path) -> Check:
    """Create, write and remove a file: os.access says nothing of a read-only mount, a full
    disk, or a directory that has disappeared. `.tmp` is excluded by default, so the watcher
    does not report the probe as a change."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".ghost-doctor-", suffix=".tmp", dir=path)
        try:
            os.write(fd, b"ghost doctor\n")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        return Check(f"workspace {name}", False, f"{path} is not writable: {exc.strerror or exc}")
    return Check(f"workspace {name}", True, f"{path} writable")


def service_health(service: dict[str, Any]) -> str:
    health = service.get("health")
    if not isinstance(health, dict):
        return "-"
    return "ok" if health.get("ok") else f"failing: {health.get('reason')}"
