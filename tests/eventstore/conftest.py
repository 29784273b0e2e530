"""Backends under the contract suite. A new backend adds one entry to BACKENDS and must pass
every test in test_contract.py unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventstore import EventStore, SQLiteEventStore

Factory = Callable[[], EventStore]

BACKENDS: dict[str, Callable[[Path], EventStore]] = {
    "sqlite-full": lambda d: SQLiteEventStore(d / "events.db", durability="full"),
    "sqlite-normal": lambda d: SQLiteEventStore(d / "events.db", durability="normal"),
}


@pytest.fixture(params=sorted(BACKENDS))
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Opens the backend on the same place each time it is called (to test reopening)."""
    opened: list[EventStore] = []

    def factory() -> EventStore:
        store = BACKENDS[request.param](tmp_path)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Factory) -> EventStore:
    return open_store()
