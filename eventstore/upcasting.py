"""Upcasting: old stored event data read as the current schema.

Stored events are never rewritten. When an event type's data changes shape, bump its schema
number where it is written and register a function that lifts data from schema n to n+1; readers
given an `Upcasters` see every event at its newest schema. Instances are passed explicitly to the
store (no global registry).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

UpcastFn = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class Upcasters:
    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], UpcastFn] = {}

    def register(self, event_type: str, from_schema: int, fn: UpcastFn) -> None:
        """`fn` turns data of `event_type` at `from_schema` into data at `from_schema + 1`."""
        key = (event_type, from_schema)
        if key in self._steps:
            raise ValueError(f"an upcaster for {event_type} schema {from_schema} exists already")
        self._steps[key] = fn

    def upcast(
        self, event_type: str, schema: int, data: Mapping[str, Any]
    ) -> tuple[int, Mapping[str, Any]]:
        step = self._steps.get((event_type, schema))
        while step is not None:
            data = step(data)
            schema += 1
            step = self._steps.get((event_type, schema))
        return schema, data

    def __bool__(self) -> bool:
        return bool(self._steps)

    def fingerprint(self) -> str:
        """Which steps are registered and what their code is: state derived through these
        upcasters (a projection snapshot) is reusable only under the same fingerprint."""
        digest = hashlib.sha256()
        for (event_type, schema), fn in sorted(self._steps.items()):
            code = getattr(fn, "__code__", None)
            body = b"" if code is None else code.co_code + repr(code.co_consts).encode()
            name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
            digest.update(f"{event_type}\0{schema}\0{name}\0".encode() + body)
        return digest.hexdigest()
