"""A Slack message as the outbox handles it, and the Block Kit helpers to build one safely.

Text that comes from outside (patch descriptions written by a model, file paths, test output)
goes through `esc`: Slack treats `<...>` as links and mentions, so an unescaped description
could ping `<!channel>` or disguise a link.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# Slack refuses a section text over 3000 characters and a message over 50 blocks.
SECTION_LIMIT = 2900
MAX_BLOCKS = 45


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """`text` is the notification/fallback text, `summary` one line for digests, `positions`
    the events it reports (recorded in NotificationSent so the audit can join them)."""

    text: str
    blocks: tuple[Mapping[str, Any], ...] = ()
    kind: str = "notice"
    summary: str = ""
    positions: tuple[int, ...] = ()

    def payload(self) -> dict[str, Any]:
        """The JSON body both incoming webhooks and chat.postMessage accept."""
        out: dict[str, Any] = {"text": self.text}
        if self.blocks:
            out["blocks"] = [dict(b) for b in self.blocks]
        return out


def esc(text: object) -> str:
    """Escape the three characters Slack mrkdwn gives meaning to."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(mrkdwn, SECTION_LIMIT)}}


def context(mrkdwn: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(mrkdwn, 2000)}]}


def code_block(text: str, limit: int = 1500, keep: str = "tail") -> str:
    """A ``` block of at most `limit` characters of `text`: its tail (test output, where the
    failures are) or its head (a diff). Backticks inside cannot close the block early."""
    if len(text) > limit:
        text = "…" + text[-limit:] if keep == "tail" else text[:limit] + "…"
    body = text
    return "```" + body.replace("```", "'''") + "```"


def link(url: str, label: str) -> str:
    # A `|` or `>` in the url would end Slack's <url|label> syntax early.
    return f"<{url.replace('|', '%7C').replace('>', '%3E')}|{esc(label)}>"


def dashboard_url(base: str | None, patch_id: str | None = None) -> str | None:
    """The dashboard page for the node (or one patch). Never carries the token: the developer's
    browser already has the session cookie, and Slack messages are not a place for secrets."""
    if not base:
        return None
    url = base.rstrip("/") + "/dashboard"
    return url + "#patch-" + quote(patch_id, safe="") if patch_id else url


def chunk_lines(lines: Sequence[str], limit: int = SECTION_LIMIT) -> list[str]:
    """Join lines into as few texts of at most `limit` characters as possible."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = clip(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks
