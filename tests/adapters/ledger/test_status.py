"""One enum of patch statuses, and the answers built on it."""

from __future__ import annotations

from adapters.ledger import projection
from adapters.ledger.projection import NOT_APPLIED_YET, PatchView
from adapters.ledger.records import PatchOutcome
from adapters.ledger.status import ON_DISK, OUTCOME_STATUSES, PUBLIC_STATUSES, PatchStatus


def test_the_public_word_of_each_status() -> None:
    assert PatchStatus.FAILED_TESTS.public is PatchStatus.FAILED
    for status in PatchStatus:
        if status is not PatchStatus.FAILED_TESTS:
            assert status.public is status
    assert PatchStatus.FAILED_TESTS not in PUBLIC_STATUSES
    assert set(OUTCOME_STATUSES) <= set(PUBLIC_STATUSES)
    assert {PatchStatus.APPLIED, PatchStatus.FAILED_TESTS} == ON_DISK


def test_a_status_is_its_word() -> None:
    # stored in events and snapshots as plain strings, compared with them
    assert PatchStatus.APPLIED == "applied"
    assert PatchView("p", status=PatchStatus("failed_tests")).public_status == "failed"


def test_tests_are_never_null() -> None:
    assert PatchOutcome("p", PatchStatus.QUEUED).as_json()["tests"] == dict(NOT_APPLIED_YET)
    view = PatchView("p", status=PatchStatus.PENDING_APPROVAL)
    assert projection.tests_of(view) == {"status": "skipped", "reason": "waiting for approval"}
