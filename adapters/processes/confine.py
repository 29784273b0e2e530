"""Confining a test command (`[[workspace]] test_sandbox = "bwrap"`): the workspace's tests are
the workspace's code, which the remote model may have just written. Without confinement they
run as the node's user and can read what it can, the token included. Under bubblewrap they see
the file system read-only except the workspace and /tmp, the node's state directory
(token, event store, signature journal) not at all, and their own process namespace, which dies
with the node's handle on it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from adapters.processes.group import Command, argv_of

BWRAP = "bwrap"


def bwrap_available() -> bool:
    return shutil.which(BWRAP) is not None


def bubblewrap(command: Command, workspace: Path, hidden: Sequence[Path] = ()) -> list[str]:
    """`command` run under bubblewrap (module doc). `hidden` directories get an empty tmpfs
    over them; a hidden file gets /dev/null. Mounts apply in order: later ones cover earlier."""
    ws = str(workspace)
    args = [
        BWRAP,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        # /tmp stays writable and shared: tools and virtualenvs live there too (CI's do)
        "--bind", "/tmp", "/tmp",
        "--bind", ws, ws,
    ]  # fmt: skip
    for path in hidden:
        if path.is_dir():
            args += ["--tmpfs", str(path)]
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    args += ["--chdir", ws, "--unshare-pid", "--die-with-parent", "--"]
    return args + argv_of(command)
