"""The environment a child process gets: the node's own, minus its secrets.

Test commands, tunnels and services run code the remote LLM may have written; they must not
be able to read the node's token, HMAC secret or Slack credentials from their environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

# SLACK_* is stripped by prefix too: the defaults in the config (SLACK_WEBHOOK_URL,
# SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN) all live there, and a dev server has no business
# posting to the operator's Slack. Names configured elsewhere go in `extra_secret_names`.
DEFAULT_SECRET_PREFIXES: tuple[str, ...] = ("GHOST_", "SLACK_")


def clean_env(
    base: Mapping[str, str] | None = None,
    secrets_prefixes: Iterable[str] = DEFAULT_SECRET_PREFIXES,
    extra_secret_names: Iterable[str] = (),
) -> dict[str, str]:
    """A copy of `base` (default: os.environ) without variables that hold node secrets."""
    source = os.environ if base is None else base
    prefixes = tuple(p.upper() for p in secrets_prefixes)
    names = {n.upper() for n in extra_secret_names}
    # Compared upper-case: the environment is case-insensitive on some platforms and a
    # lower-case `ghost_token` is still the same secret to whoever set it.
    return {
        key: value
        for key, value in source.items()
        if key.upper() not in names and not key.upper().startswith(prefixes)
    }
