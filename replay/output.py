"""Output for people (rich tables) and for scripts (--json), in one place."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return repr(value)


def to_json(value: Any) -> str:
    return json.dumps(value, default=_default, sort_keys=True)


def print_json(value: Any) -> None:
    sys.stdout.write(to_json(value) + "\n")


def console() -> Console:
    # Piped output (less, grep, a file) gets a wide fixed width instead of rich's 80 columns,
    # so values are never cut.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    out = Table(title=title, show_lines=False)
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(out)
