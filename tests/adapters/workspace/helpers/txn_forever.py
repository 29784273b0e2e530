"""Child for the crash test: runs multi-file transactions in a loop on a workspace. Each one's
commit appends an event (stream txn-<id>) holding the whole after-state of its files, so the
parent can compute what the disk must hold after recovery."""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path

from adapters.workspace import dirfd
from adapters.workspace.changes import FileChange
from adapters.workspace.transaction import FileTransactions
from eventstore import NewEvent, SQLiteEventStore

FILES = ["a.txt", "b.txt", "sub/c.txt", "sub/deep/d.txt", "e.txt"]


def main() -> None:
    root, state = Path(sys.argv[1]), Path(sys.argv[2])
    store = SQLiteEventStore(state / "events.db")
    txns = FileTransactions(root, state / "journal", store)
    rng = random.Random()
    while True:
        txn_id = uuid.uuid4().hex
        changes = []
        for path in rng.sample(FILES, rng.randint(1, len(FILES))):
            with dirfd.open_parent(root, path, create=True) as (fd, name):
                before = dirfd.read_at(fd, name)
            text = f"{txn_id} {path}\n" * rng.randint(1, 400)
            after = None if rng.random() < 0.15 else text.encode()
            changes.append(FileChange(path, before, after))
        state_map = {c.path: None if c.after is None else c.after.decode() for c in changes}
        commit = NewEvent("Committed", {"files": state_map})
        txns.apply(txn_id, changes, lambda c=commit, s=f"txn-{txn_id}": store.append(s, [c]))


if __name__ == "__main__":
    main()
