"""Output for people (rich tables) and for scripts (--json), in one place."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# What a terminal would act on rather than show: C0 and C1 controls (ESC starts colour,
# cursor and title sequences, CR overwrites the line, BEL rings), DEL, and the bidi
# controls that reorder what is shown (Trojan Source). Human output shows them escaped;
# --json keeps the exact text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any, *, lines: bool = False) -> str:
    """`value` as text a terminal shows as is: controls escaped (`\\x1b`); with `lines`,
    newlines and tabs are kept (a diff)."""
    text = "" if value is None else str(value)
    return (_UNSAFE_KEEP_LINES if lines else _UNSAFE).sub(_escaped, text)


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
        # rich reads `[...]` in a cell as markup: escaped too, so a description shows as sent
        out.add_row(*(escape(printable(cell)) for cell in row))
    console().print(out)
