"""The journal file of a transaction (steps 1-2 of transaction.py, for callers that do not
journal in their own record): `<journal dir>/<txn id>.json` naming the transaction and each
file's before and after sha256, whose contents are blobs. Written atomically and durably
before anything is renamed, removed (durably) once the transaction is committed or undone."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

from adapters.durable import atomic_write, fsync_dir
from adapters.workspace.changes import BlobStore, FileChange, sha256_or_none


class JournalFiles:
    def __init__(self, directory: Path, root: Path, blobs: BlobStore) -> None:
        self.directory = directory
        self.root = root
        self.blobs = blobs
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, txn_id: str) -> Path:
        return self.directory / f"{txn_id}.json"

    def pending(self) -> list[str]:
        """Transactions whose journal is still there (the process died during them)."""
        return sorted(p.stem for p in self.directory.glob("*.json"))

    def write(self, txn_id: str, changes: Sequence[FileChange]) -> None:
        record = {
            "txn_id": txn_id,
            "root": str(self.root),
            "files": [
                {
                    "path": c.path,
                    "before": sha256_or_none(c.before),
                    "after": sha256_or_none(c.after),
                }
                for c in changes
            ],
        }
        atomic_write(self.path(txn_id), json.dumps(record).encode())

    def read(self, txn_id: str) -> list[FileChange]:
        record = json.loads(self.path(txn_id).read_bytes())
        return [
            FileChange(
                f["path"],
                None if f["before"] is None else self.blobs.get_blob(f["before"]),
                None if f["after"] is None else self.blobs.get_blob(f["after"]),
            )
            for f in record["files"]
        ]

    def clear(self, txn_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(txn_id).unlink()
        fsync_dir(self.directory)
