"""Shared by the whole suite: no ghost-node process outlives the test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.node_process import reap_nodes


@pytest.fixture(scope="session", autouse=True)
def _no_node_left() -> Iterator[None]:
    yield
    reap_nodes()
