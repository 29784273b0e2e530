"""Runs a Slack outbox forever against a real store and webhook, until killed.

Usage: outbox_child.py EVENTS_DB WEBHOOK_URL. One message per event (no digest), quick retries.
"""

from __future__ import annotations

import sys

from adapters.slack.outbox import SlackOutbox
from adapters.slack.render import Renderer
from adapters.slack.sender import WebhookSender
from eventstore import SQLiteEventStore


def main() -> None:
    db, url = sys.argv[1], sys.argv[2]
    with SQLiteEventStore(db) as store:
        outbox = SlackOutbox(
            store,
            WebhookSender(url, timeout_s=5),
            renderer=Renderer(digest_threshold=10_000),
            backoff_s=0.01,
            max_backoff_s=0.05,
            max_attempts=100,
            batch=7,
        )
        print("ready", flush=True)
        while True:
            outbox.run_once(timeout=0.1)


if __name__ == "__main__":
    main()
