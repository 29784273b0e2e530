"""What a workspace transaction is made of: the changes (FileChange), who keeps their contents
(BlobStore), who journals them (CallerJournal), what recovery did (Recovery), and the refusal
when a file changed since the patch was checked (FileChangedError)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol


class BlobStore(Protocol):
    def put_blob(self, content: bytes) -> str: ...

    def get_blob(self, sha256: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file of a transaction. None means absent: before=None creates, after=None deletes."""

    path: str  # relative to the workspace root, already checked by the sandbox
    before: bytes | None
    after: bytes | None


@dataclass(frozen=True, slots=True)
class Recovery:
    txn_id: str
    outcome: Literal["applied", "rolled_back"]
    files: tuple[str, ...]
    kept: tuple[str, ...] = ()  # edited by someone while the node was down: not overwritten


@dataclass(frozen=True, slots=True)
class CallerJournal:
    """A transaction journaled by its caller: steps 1 and 2 are already durable in the
    caller's own record (every content as a blob, and the transaction's changes, which it
    hands to `resolve()` after a crash). `record`, when given, makes that record durable: it
    is called before anything is renamed, while the new contents are written and fsynced in
    another thread where that leaves nothing behind on a crash (`_stage_alongside`); if it
    raises, nothing is changed."""

    record: Callable[[], object] | None = None


class FileChangedError(Exception):
    """A file no longer holds the content the transaction was planned against."""

    def __init__(self, path: str, expected: str | None, actual: str | None) -> None:
        self.path, self.expected, self.actual = path, expected, actual
        super().__init__(
            f"{path} changed on disk since the patch was checked "
            f"(expected {expected or 'absent'}, found {actual or 'absent'}); nothing was written"
        )


def sha256_or_none(content: bytes | None) -> str | None:
    return None if content is None else hashlib.sha256(content).hexdigest()
