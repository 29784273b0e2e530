"""The statuses of a patch (SPEC §4, §6): one enum for the projection, the answers, the web
API's filters and the CLI.

`FAILED_TESTS` is internal: the patch is on disk and its tests failed with no rollback; the
API says `failed` for it, as for an apply that could not complete (nothing changed)."""

from __future__ import annotations

from enum import StrEnum


class PatchStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    REJECTED = "rejected"
    DRY_RUN = "dry_run"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    APPLYING = "applying"
    APPLIED = "applied"
    FAILED_TESTS = "failed_tests"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"

    @property
    def public(self) -> PatchStatus:
        """The SPEC §4 word for this status."""
        return PatchStatus.FAILED if self is PatchStatus.FAILED_TESTS else self


# What GET /patches?status= and `ghost audit --status` accept: every public word.
PUBLIC_STATUSES: tuple[PatchStatus, ...] = tuple(
    s for s in PatchStatus if s is not PatchStatus.FAILED_TESTS
)
# What an answer to a command can say (the outcome of POST /webhook and the decisions).
OUTCOME_STATUSES: tuple[PatchStatus, ...] = (
    PatchStatus.APPLIED,
    PatchStatus.DRY_RUN,
    PatchStatus.PENDING_APPROVAL,
    PatchStatus.QUEUED,
    PatchStatus.REJECTED,
    PatchStatus.FAILED,
    PatchStatus.ROLLED_BACK,
)
# Statuses in which the patch's changes are on disk (so it can be rolled back).
ON_DISK = frozenset({PatchStatus.APPLIED, PatchStatus.FAILED_TESTS})
# Each status word (as stored: a plain str) -> its public word, for readers that map many
# patches at once (a dict lookup instead of an enum construction per patch).
PUBLIC_WORD: dict[str, PatchStatus] = {str(s): s.public for s in PatchStatus}
