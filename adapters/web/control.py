"""The node as `/ghost <sub>` sees it: adapters/slack/replies.py's NodeControl over the same
services as the HTTP API. Every method blocks (futures, store reads): call it from the thread
pool, never the reactor thread."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from adapters.ledger.projection import tests_of
from adapters.ledger.records import Decision, FlowError, PatchOutcome
from adapters.operations.ports import Unavailable
from adapters.slack.replies import ControlError
from adapters.web.app import WebServices
from adapters.web.patch_index import PatchIndex, summary
from eventstore.catalogue import EventType

DECISION_TIMEOUT_S = 25.0
STATUS_TIMEOUT_S = 2.0


class ServiceControl:
    def __init__(self, services: WebServices, index: PatchIndex) -> None:
        self._services = services
        self._index = index

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
        newest = list(reversed(self._index.refresh()[-limit:]))
        return [summary(v) for v in self._index.views(newest)]

    def patch(self, patch_id: str) -> Mapping[str, Any]:
        view = self._services.patches.view(patch_id)
        if view is None:
            raise ControlError("not_found", f"No patch `{patch_id}`.")
        store = self._services.store
        diff = ""
        if view.diff_blob is not None and store.has_blob(view.diff_blob):
            diff = store.get_blob(view.diff_blob).decode("utf-8", "replace")
        return {
            **summary(view),
            "files": [dict(f) for f in view.files],
            "diff": diff,
            "tests": dict(tests_of(view)),
        }

    def _decide(self, decision: Decision, patch_id: str, by: str) -> Mapping[str, Any]:
        future = self._services.patches.decide(decision, patch_id, by)
        try:
            outcome: PatchOutcome = future.result(timeout=DECISION_TIMEOUT_S)
        except FlowError as exc:
            raise ControlError(exc.error.code, exc.error.message) from None
        except FutureTimeout:
            return {"patch_id": patch_id, "status": "queued"}
        return outcome.as_json()

    def approve(self, patch_id: str, by: str) -> Mapping[str, Any]:
        return self._decide(Decision.APPROVE, patch_id, by)

    def reject(self, patch_id: str, by: str) -> Mapping[str, Any]:
        return self._decide(Decision.REJECT, patch_id, by)

    def rollback(self, patch_id: str, by: str) -> Mapping[str, Any]:
        return self._decide(Decision.ROLLBACK, patch_id, by)

    def pause(self, by: str) -> Mapping[str, Any]:
        self._services.patches.set_paused(True, by).result(timeout=DECISION_TIMEOUT_S)
        return {"paused": True}

    def resume(self, by: str) -> Mapping[str, Any]:
        done = self._services.patches.set_paused(False, by).result(timeout=DECISION_TIMEOUT_S)
        return {"paused": False, "applied": len(done)}

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
