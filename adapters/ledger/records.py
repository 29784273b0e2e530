"""What a patch command is and what the node answers about it (SPEC §4): small immutable records
shared by the HTTP layer, the CLI and the PatchActor."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from adapters.ledger.projection import NOT_APPLIED_YET
from adapters.ledger.status import PatchStatus

# How an outcome maps to HTTP (SPEC §4): a rejected patch is 422, a base conflict 409...
ErrorCode = Literal["invalid", "does_not_apply", "conflict", "sandbox", "not_found", "busy"]


class Decision(StrEnum):
    """What an owner (or the API) decides about a patch of a workspace."""

    APPROVE = "approve"
    REJECT = "reject"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class PatchCommand:
    """A validated POST /webhook body. `raw` keeps the body as received, for idempotency
    (same client id + same body = same answer) and for the audit trail."""

    raw: Mapping[str, Any]
    workspace: str
    format: str | None = None
    client_id: str | None = None
    dry_run: bool = False
    run_tests: bool = True
    rollback_on_failure: bool | None = None  # None: the workspace's config decides
    description: str = ""
    author: str = ""

    @property
    def body_sha256(self) -> str:
        canonical = json.dumps(self.raw, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


def command_from_body(raw: Mapping[str, Any], workspace: str) -> PatchCommand:
    """A PatchCommand from a JSON body whose types the front door already checked."""
    return PatchCommand(
        raw=raw,
        workspace=workspace,
        format=raw.get("format"),
        client_id=raw.get("id"),
        dry_run=bool(raw.get("dry_run", False)),
        run_tests=bool(raw.get("run_tests", True)),
        rollback_on_failure=raw.get("rollback_on_failure"),
        description=str(raw.get("description", "")),
        author=str(raw.get("author", "")),
    )


@dataclass(frozen=True, slots=True)
class FileOutcome:
    path: str
    action: str  # add | update | delete | move
    before_sha256: str | None
    after_sha256: str | None
    move_from: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "action": self.action,
            "before_sha256": self.before_sha256,
            "after_sha256": self.after_sha256,
        }
        if self.move_from:
            out["move_from"] = self.move_from
        return out


@dataclass(frozen=True, slots=True)
class TestsOutcome:
    status: str  # passed | failed | timeout | error | skipped
    exit_code: int | None
    duration_s: float
    output_tail: str
    reason: str = ""  # skipped: why no test ran ("no test command", "dry run"...)

    def as_json(self) -> dict[str, Any]:
        if self.reason:
            return {"status": self.status, "reason": self.reason}
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 3),
            "output_tail": self.output_tail,
        }


@dataclass(frozen=True, slots=True)
class PatchError:
    code: ErrorCode
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PatchOutcome:
    patch_id: str
    status: PatchStatus  # one of status.OUTCOME_STATUSES
    files: tuple[FileOutcome, ...] = ()
    diff: str = ""
    tests: TestsOutcome | None = None
    position: int = 0
    error: PatchError | None = None
    # A forced rollback's overwritten files: {path, sha256} of their contents, kept as blobs.
    kept: tuple[Mapping[str, Any], ...] = ()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "patch_id": self.patch_id,
            "status": self.status,
            "files": [f.as_json() for f in self.files],
            "diff": self.diff,
            # Never null (SPEC §4): an answer before the apply (queued) says why.
            "tests": dict(NOT_APPLIED_YET) if self.tests is None else self.tests.as_json(),
            "position": self.position,
        }
        if self.kept:
            out["kept"] = [dict(k) for k in self.kept]
        if self.error is not None:
            out["error"] = {
                "code": self.error.code,
                "message": self.error.message,
                "details": dict(self.error.details),
            }
        return out


class FlowError(Exception):
    """A decision that cannot be taken (unknown patch, wrong state, files changed since)."""

    def __init__(self, code: ErrorCode, message: str, details: Mapping[str, Any] | None = None):
        self.error = PatchError(code, message, details or {})
        super().__init__(message)
