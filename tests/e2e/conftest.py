"""Shared by every end-to-end test: no ghost-node a test started (harness.GhostNode) outlives
it, even when the test fails half-way. A node meant to span several tests must therefore not
be a GhostNode started from a wider-scoped fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import reap_nodes


@pytest.fixture(autouse=True)
def _reap_nodes() -> Iterator[None]:
    yield
    reap_nodes()
