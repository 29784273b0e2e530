"""The names a transaction gives files beside their targets (same directory: a rename is
atomic only within one file system): temps before their rename, and the second name an old
file keeps until it is reaped (transaction.py, "Leftovers"). Dot names with a .tmp suffix keep
editors and the watcher's default excludes away from them."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def check_txn_id(txn_id: str) -> None:
    if not txn_id or not all(c.isalnum() or c in "-_" for c in txn_id):
        raise ValueError(f"transaction id must be alphanumeric, '-' or '_': {txn_id!r}")


def temp_name(name: str, txn_id: str) -> str:
    return f".{name}.ghost-{txn_id[:16]}.tmp"


def old_name(name: str, txn_id: str) -> str:
    return f".{name}.ghost-{txn_id[:16]}.old.tmp"


def second_name(dir_fd: int, name: str, txn_id: str) -> str | None:
    """Link the file about to be replaced under its old name; None where the file system has
    no hard links, or the name is taken by a leftover nobody could reap (the rename then
    frees the file at once)."""
    old = old_name(name, txn_id)
    try:
        os.link(name, old, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        log.debug("no second name for %s: %s", name, exc)
        return None
    return old
