"""The events.db schema and its forward migrations.

Each migration moves the schema from version n-1 to n inside one transaction; a database newer
than this code is refused rather than guessed at. Migrations use sqlite-utils' table API so the
DDL stays readable; the hot paths (append, read) use plain sqlite3 for speed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from eventstore.errors import StoreError

if TYPE_CHECKING:  # imported by migrate() only when there is something to migrate
    import sqlite_utils


def _v1(db: sqlite_utils.Database) -> None:
    db.create_table(
        "events",
        {
            "position": int,  # INTEGER PRIMARY KEY: max+1, so gapless with one writer
            "event_id": str,
            "stream": str,
            "version": int,
            "type": str,
            "recorded_at": int,  # microseconds since the Unix epoch, UTC
            "schema": int,  # schema version of `data`, for upcasting
            "data": bytes,  # msgpack
            "meta": bytes,  # msgpack
            "hash": bytes,  # sha256 chain link, see hashchain.py
        },
        pk="position",
        not_null={
            "event_id",
            "stream",
            "version",
            "type",
            "recorded_at",
            "schema",
            "data",
            "meta",
            "hash",
        },
    )
    db.table("events").create_index(["event_id"], index_name="events_event_id", unique=True)
    db.table("events").create_index(["stream", "version"], index_name="events_stream", unique=True)
    db.table("events").create_index(["type", "position"], index_name="events_type")
    db.create_table(
        "blobs",
        {"sha256": str, "size": int, "content": bytes, "created_at": int},
        pk="sha256",
        not_null={"size", "content", "created_at"},
    )
    db.create_table(
        "checkpoints",
        {"subscriber": str, "position": int, "updated_at": int},
        pk="subscriber",
        not_null={"position", "updated_at"},
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it was at before.

    A database already at SCHEMA_VERSION (every start but the first) is not touched, and
    sqlite-utils (with click, pluggy and dateutil: ~4.5 MB of a resident node) is not even
    imported: the check is one plain query."""
    version = current_version(conn)
    if version == SCHEMA_VERSION:
        return version
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    with db.atomic():  # checked again inside: another process may have migrated meanwhile
        before = current_version(conn)
        if before > SCHEMA_VERSION:
            raise StoreError(
                f"events.db has schema version {before}, newer than this ghost-runner "
                f"understands ({SCHEMA_VERSION}); upgrade ghost-runner"
            )
        if before == 0:
            db.create_table("schema_version", {"version": int, "applied_at": int}, pk="version")
        for version in range(before + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version - 1](db)
            db.table("schema_version").insert({"version": version, "applied_at": int(time.time())})
    return before
