"""The node as `/ghost <sub>` sees it: adapters/slack/replies.py's NodeControl. Patches and
decisions are the catalogue's operations (adapters/web/invoke.py), exactly as over HTTP; the
status and restart answers are Slack's own. Every method blocks (futures, store reads): call
it from the thread pool, never the reactor thread."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.ledger.status import PatchStatus
from adapters.operations.ports import Unavailable
from adapters.slack.replies import ControlError
from adapters.web.app import WebApp
from adapters.web.errors import ApiError
from adapters.web.invoke import invoke
from eventstore.catalogue import EventType

DECISION_TIMEOUT_S = 25.0
STATUS_TIMEOUT_S = 2.0


class ServiceControl:
    def __init__(self, app: WebApp) -> None:
        self._app = app
        self._services = app.services

    def _invoke(
        self, name: str, args: Mapping[str, Any], by: str, wait_s: float | None = None
    ) -> Any:
        """The catalogue's operation, as over HTTP; its error as Slack words it."""
        try:
            return invoke(self._app, name, args, by, wait_s).body
        except ApiError as exc:
            raise ControlError(exc.code, exc.message) from None

    def status(self) -> Mapping[str, Any]:
        actors: dict[str, Any] = {}
        status = "degraded"
        if self._services.health is not None:
            try:
                snap = self._services.health.snapshot().get(timeout=STATUS_TIMEOUT_S)
                status, actors = str(snap["status"]), dict(snap["actors"])
            except (Unavailable, Exception):  # noqa: BLE001 - any: report degraded
                pass
        store = self._services.store
        paused = store.read_all(types=[EventType.NODE_PAUSED, EventType.NODE_RESUMED])
        return {
            "status": status,
            "paused": bool(paused) and paused[-1].type == EventType.NODE_PAUSED,
            "actors": actors,
            "tunnels": self.tunnels(),
            "position": store.last_position(),
        }

    def patches(self, limit: int) -> Sequence[Mapping[str, Any]]:
        listed = self._invoke("list_patches", {"limit": limit}, "slack")
        return list(listed["patches"])

    def patch(self, patch_id: str) -> Mapping[str, Any]:
        try:
            detail: Mapping[str, Any] = self._invoke("get_patch", {"patch_id": patch_id}, "slack")
        except ControlError as exc:
            if exc.code == "not_found":
                raise ControlError("not_found", f"No patch `{patch_id}`.") from None
            raise
        return detail

    def _decide(self, name: str, patch_id: str, by: str) -> Mapping[str, Any]:
        body: Mapping[str, Any] = self._invoke(
            name, {"patch_id": patch_id}, by, wait_s=DECISION_TIMEOUT_S
        )
        if body.get("status") == PatchStatus.QUEUED:
            return {"patch_id": patch_id, "status": PatchStatus.QUEUED}
        return body

    def approve(self, patch_id: str, by: str) -> Mapping[str, Any]:
        return self._decide("approve", patch_id, by)

    def reject(self, patch_id: str, by: str) -> Mapping[str, Any]:
        return self._decide("reject", patch_id, by)

    def rollback(self, patch_id: str, by: str) -> Mapping[str, Any]:
        return self._decide("rollback_patch", patch_id, by)

    def pause(self, by: str) -> Mapping[str, Any]:
        body: Mapping[str, Any] = self._invoke("pause", {}, by, wait_s=DECISION_TIMEOUT_S)
        return {"paused": True, **({"message": body["message"]} if "message" in body else {})}

    def resume(self, by: str) -> Mapping[str, Any]:
        body: Mapping[str, Any] = self._invoke("resume", {}, by, wait_s=DECISION_TIMEOUT_S)
        return {"paused": False, "applied": body.get("applied")}

    def restart_actor(self, name: str, by: str) -> Mapping[str, Any]:
        actor = self._services.actors.get(name)
        if actor is None:
            known = ", ".join(sorted(self._services.actors)) or "none"
            raise ControlError("not_found", f"No actor `{name}` (known: {known}).")
        if not actor.restart():
            raise ControlError("unavailable", f"`{name}` is {actor.state}; not restartable now.")
        return {"name": name, "state": "restarting"}

    def tunnels(self) -> Sequence[Mapping[str, Any]]:
        """[{name, state, url}] as each TunnelActor reports it (a restarting one by its
        supervision state)."""
        out = []
        for name, tunnel in sorted(self._services.tunnels.items()):
            try:
                status = tunnel.status().get(timeout=STATUS_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - restarting, gone or busy: say its state
                status = {"state": tunnel.state}
            out.append({"name": name, "state": status.get("state"), "url": status.get("url")})
        return out
