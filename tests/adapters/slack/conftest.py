from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import SQLiteEventStore
from tests.adapters.slack.fake_slack import FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    with SQLiteEventStore(tmp_path / "events.db") as s:
        yield s
