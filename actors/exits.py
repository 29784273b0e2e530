"""What the ghost-node process says about itself: its exit codes (SPEC §3: 0 clean stop, 2 bad
config or arguments or the state directory in use, 70 the root supervisor gave up, so that
systemd restarts it) and its version."""

from __future__ import annotations

from importlib import metadata

EXIT_OK, EXIT_USAGE, EXIT_GAVE_UP = 0, 2, 70


def version() -> str:
    try:
        return metadata.version("ghost-runner")
    except metadata.PackageNotFoundError:
        return "0+unknown"
