"""Shared by every end-to-end test: no ghost-node a test started outlives it, even when the
test fails half-way (nodes of wider-scoped fixtures, started before it, are left alone)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.node_process import reap_nodes, started_count


@pytest.fixture(autouse=True)
def _reap_nodes() -> Iterator[None]:
    before = started_count()
    yield
    reap_nodes(before)
