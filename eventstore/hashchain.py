"""The tamper-evident hash chain over stored events.

Each event's hash is sha256(previous hash + the event's stored fields). Editing any field of a
row, deleting a row or inserting one breaks the chain at that position, which `verify()` reports.
The fields are hashed in their stored form (the msgpack bytes of data and meta), so verifying
never needs to decode payloads.
"""

from __future__ import annotations

import hashlib

import msgpack

GENESIS = bytes(32)


def chain_hash(
    previous: bytes,
    position: int,
    event_id: str,
    stream: str,
    version: int,
    type_: str,
    recorded_at_us: int,
    schema: int,
    data: bytes,
    meta: bytes,
) -> bytes:
    fields = msgpack.packb(
        [position, event_id, stream, version, type_, recorded_at_us, schema, data, meta],
        use_bin_type=True,
    )
    return hashlib.sha256(previous + fields).digest()
