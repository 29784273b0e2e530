"""Which events a developer wants a Slack ping about, and the Block Kit message for each.

Everything here is a pure function of the events, except the crash-loop detector, whose state
is itself a function of the ServiceExited events it was shown (it reads `recorded_at`, never
the wall clock), so replaying the same events gives the same messages.

Event data the renderers read (all optional: a missing field is left out of the message; the
patch id falls back to the `patch-<id>` stream name):

| event | fields read |
|---|---|
| every patch event | patch_id, workspace, description, author |
| PatchApplied, PatchPendingApproval | files: [{path, action, added/removed or |
| | additions/deletions}]; diff (unified: counts from it when `files` has none) |
| PatchRejected | reason, message or error (a string, or {code, message}) |
| TestsFinished | status (passed/skipped: no message; failed/timeout/error: one), |
| | exit_code (used when status is absent), duration_s, output_tail |
| PatchRolledBack | reason (or message/error), files, diff |
| SupervisorGaveUp | supervisor, actor, restarts, period_s, cause or reason |
| TunnelDown, TunnelUp | name or tunnel (else the stream), url, reason or error |
| ServiceExited | service or name (else the stream), exit_code or returncode, signal, |
| | expected (true: a deliberate stop, not counted as a crash) |
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from adapters.slack import diffstat
from adapters.slack.message import (
    MAX_BLOCKS,
    SlackMessage,
    chunk_lines,
    clip,
    code_block,
    context,
    dashboard_url,
    esc,
    link,
    section,
)
from eventstore.catalogue import EventType as T
from eventstore.events import RecordedEvent

log = logging.getLogger(__name__)

OWN_TYPES = frozenset({T.NOTIFICATION_SENT, T.NOTIFICATION_FAILED})
# The types that may produce a message; the outbox subscribes to these only.
CANDIDATE_TYPES = frozenset(
    {
        T.PATCH_APPLIED,
        T.PATCH_REJECTED,
        T.PATCH_ROLLED_BACK,
        T.PATCH_PENDING_APPROVAL,
        T.TESTS_FINISHED,
        T.SUPERVISOR_GAVE_UP,
        T.TUNNEL_DOWN,
        T.TUNNEL_UP,
        T.SERVICE_EXITED,
    }
)
_FAILED_TESTS = {"failed", "timeout", "timed_out", "error"}


def _s(data: Mapping[str, Any], *keys: str, default: str = "") -> str:
    for key in keys:
        value = data.get(key)
        if value is not None and value != "":
            return str(value)
    return default


def _reason(data: Mapping[str, Any]) -> str:
    for key in ("reason", "message", "error", "cause"):
        value = data.get(key)
        if isinstance(value, Mapping):
            value = value.get("message") or value.get("code")
        if value:
            return clip(str(value), 500)
    return ""


def patch_id_of(event: RecordedEvent) -> str:
    return _s(event.data, "patch_id", "id") or event.stream.removeprefix("patch-")


def _message(
    kind: str,
    event: RecordedEvent,
    headline: str,
    body: Sequence[str] = (),
    url: str | None = None,
) -> SlackMessage:
    blocks: list[Mapping[str, Any]] = [section(headline)]
    blocks += [section(text) for text in body if text]
    blocks.append(context(link(url, "Open in dashboard") if url else f"event #{event.position}"))
    return SlackMessage(
        text=clip(headline.replace("*", ""), 300),
        blocks=tuple(blocks),
        kind=kind,
        summary=headline,
        positions=(event.position,),
    )


def _patch_headline(icon: str, verb: str, event: RecordedEvent) -> str:
    data = event.data
    where = f" in `{esc(data['workspace'])}`" if data.get("workspace") else ""
    who = f" by {esc(clip(str(data['author']), 60))}" if data.get("author") else ""
    return f"{icon} Patch `{esc(patch_id_of(event))}` {verb}{where}{who}"


def _patch_body(event: RecordedEvent) -> list[str]:
    data = event.data
    lines: list[str] = []
    if data.get("description"):
        lines.append(f"> {esc(clip(str(data['description']), 300))}")
    stats = diffstat.file_stats(data)
    if stats:
        lines.append(f"*{diffstat.totals(stats)}*\n" + "\n".join(diffstat.summary_lines(stats)))
    return lines


def _patch(kind: str, icon: str, verb: str) -> Callable[[RecordedEvent, str | None], SlackMessage]:
    def render(event: RecordedEvent, base: str | None) -> SlackMessage:
        body = _patch_body(event)
        reason = _reason(event.data) if kind in ("rejected", "rolled_back") else ""
        if reason:
            body.insert(0, f"*Reason:* {esc(reason)}")
        if kind == "pending_approval":
            pid = esc(patch_id_of(event))
            body.append(f"Approve with `/ghost approve {pid}` or reject with `/ghost reject {pid}`")
        return _message(
            kind,
            event,
            _patch_headline(icon, verb, event),
            body,
            dashboard_url(base, patch_id_of(event)),
        )

    return render


def _tests_finished(event: RecordedEvent, base: str | None) -> SlackMessage | None:
    data = event.data
    status = _s(data, "status").lower()
    exit_code = data.get("exit_code")
    if status in ("passed", "skipped") or (not status and exit_code in (None, 0)):
        return None
    if status and status not in _FAILED_TESTS:
        return None
    facts = [f"status *{esc(status or 'failed')}*"]
    if exit_code is not None:
        facts.append(f"exit code {esc(exit_code)}")
    if isinstance(data.get("duration_s"), int | float):
        facts.append(f"{data['duration_s']:.1f} s")
    body = [", ".join(facts)]
    tail = data.get("output_tail")
    if isinstance(tail, str) and tail.strip():
        body.append(code_block(tail))
    headline = _patch_headline(":x:", "failed its tests", event)
    return _message("tests_failed", event, headline, body, dashboard_url(base, patch_id_of(event)))


def _supervisor_gave_up(event: RecordedEvent, base: str | None) -> SlackMessage:
    data = event.data
    name = _s(data, "supervisor", "actor", default=event.stream)
    headline = f":octagonal_sign: Supervisor `{esc(name)}` gave up"
    facts = []
    if data.get("actor"):
        facts.append(f"last failing child `{esc(data['actor'])}`")
    if data.get("restarts") is not None:
        facts.append(f"{esc(data['restarts'])} restarts in {esc(data.get('period_s', '?'))} s")
    body = [", ".join(facts), f"*Cause:* {esc(_reason(data))}" if _reason(data) else ""]
    return _message("supervisor_gave_up", event, headline, body, dashboard_url(base))


def _tunnel(up: bool) -> Callable[[RecordedEvent, str | None], SlackMessage]:
    def render(event: RecordedEvent, base: str | None) -> SlackMessage:
        data = event.data
        name = esc(_s(data, "name", "tunnel", default=event.stream.removeprefix("tunnel-")))
        url = _s(data, "url", "public_url")
        if up:
            headline = f":globe_with_meridians: Tunnel `{name}` is up"
            body = [f"Public URL: {esc(url)}" if url else ""]
        else:
            headline = f":electric_plug: Tunnel `{name}` is down"
            body = [f"*Reason:* {esc(_reason(data))}" if _reason(data) else ""]
        return _message("tunnel_up" if up else "tunnel_down", event, headline, body, None)

    return render


def render_crash_loop(
    event: RecordedEvent, exits: int, window_s: float, base: str | None = None
) -> SlackMessage:
    data = event.data
    name = esc(_s(data, "service", "name", default=event.stream))
    headline = f":repeat: Service `{name}` is crash-looping: {exits} exits in {window_s:g} s"
    code = _s(data, "exit_code", "returncode")
    signal = _s(data, "signal")
    last = ", ".join(
        part
        for part in (
            f"exit code {esc(code)}" if code else "",
            f"signal {esc(signal)}" if signal else "",
        )
        if part
    )
    return _message(
        "service_crash_loop",
        event,
        headline,
        [f"Last exit: {last}" if last else ""],
        dashboard_url(base),
    )


_RENDERERS: dict[str, Callable[[RecordedEvent, str | None], SlackMessage | None]] = {
    T.PATCH_APPLIED: _patch("applied", ":white_check_mark:", "applied"),
    T.PATCH_REJECTED: _patch("rejected", ":no_entry:", "rejected"),
    T.PATCH_ROLLED_BACK: _patch("rolled_back", ":leftwards_arrow_with_hook:", "rolled back"),
    T.PATCH_PENDING_APPROVAL: _patch("pending_approval", ":hourglass:", "awaits approval"),
    T.TESTS_FINISHED: _tests_finished,
    T.SUPERVISOR_GAVE_UP: _supervisor_gave_up,
    T.TUNNEL_DOWN: _tunnel(up=False),
    T.TUNNEL_UP: _tunnel(up=True),
}


def render_event(event: RecordedEvent, base: str | None = None) -> SlackMessage | None:
    """The message for one event, or None when it is not worth a ping. ServiceExited alone is
    never worth one: see CrashLoopAlerts."""
    if event.type in OWN_TYPES:
        return None
    renderer = _RENDERERS.get(event.type)
    return renderer(event, base) if renderer else None


def digest(messages: Sequence[SlackMessage], base: str | None = None) -> SlackMessage:
    """One message standing for a burst: a line per notification, counts by kind."""
    counts: dict[str, int] = defaultdict(int)
    for message in messages:
        counts[message.kind] += 1
    tally = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(counts.items()))
    headline = f":bell: {len(messages)} notifications ({tally})"
    shown = [f"• {m.summary}" for m in messages[:40]]
    if len(messages) > len(shown):
        shown.append(f"…and {len(messages) - len(shown)} more")
    blocks: list[Mapping[str, Any]] = [section(headline)]
    blocks += [section(text) for text in chunk_lines(shown)][: MAX_BLOCKS - 2]
    url = dashboard_url(base)
    blocks.append(context(link(url, "Open in dashboard") if url else "see `ghost events`"))
    positions = tuple(p for m in messages for p in m.positions)
    return SlackMessage(
        clip(headline.replace("*", ""), 300), tuple(blocks), "digest", headline, positions
    )


def _unrenderable(event: RecordedEvent, base: str | None) -> SlackMessage:
    headline = f":grey_question: {esc(event.type)} on `{esc(event.stream)}` (details unreadable)"
    return _message("unrenderable", event, headline, [], dashboard_url(base))


class CrashLoopAlerts:
    """A service is crash-looping when it exits `threshold` times within `window_s` seconds
    (by the events' recorded_at). Alerts once per loop: again only after a quiet window."""

    def __init__(self, threshold: int = 3, window_s: float = 300.0) -> None:
        self.threshold = threshold
        self.window_s = window_s
        self._exits: dict[str, deque[datetime]] = defaultdict(deque)
        self._alerted: dict[str, datetime] = {}

    def observe(self, event: RecordedEvent) -> int | None:
        """The number of exits in the window when this exit should raise an alert, else None."""
        if event.type != T.SERVICE_EXITED or event.data.get("expected"):
            return None
        name = _s(event.data, "service", "name", default=event.stream)
        now = event.recorded_at
        exits = self._exits[name]
        exits.append(now)
        while exits and (now - exits[0]).total_seconds() > self.window_s:
            exits.popleft()
        last = self._alerted.get(name)
        if len(exits) < self.threshold:
            return None
        if last is not None and (now - last).total_seconds() <= self.window_s:
            self._alerted[name] = now  # still the same loop: extend it, stay quiet
            return None
        self._alerted[name] = now
        return len(exits)


class Renderer:
    """Events of one poll -> the messages to send, a digest when more than `digest_threshold`."""

    def __init__(
        self,
        dashboard_base: str | None = None,
        digest_threshold: int = 5,
        crash_loop: CrashLoopAlerts | None = None,
    ) -> None:
        self.dashboard_base = dashboard_base
        self.digest_threshold = digest_threshold
        self.crash_loop = crash_loop or CrashLoopAlerts()

    def seed(self, events: Sequence[RecordedEvent]) -> None:
        """Replay already-notified history into the detector (after a restart), sending nothing."""
        for event in events:
            self.crash_loop.observe(event)

    def _render_one(self, event: RecordedEvent) -> SlackMessage | None:
        exits = self.crash_loop.observe(event)
        if exits is not None:
            return render_crash_loop(event, exits, self.crash_loop.window_s, self.dashboard_base)
        return render_event(event, self.dashboard_base)

    def render(self, events: Sequence[RecordedEvent]) -> list[SlackMessage]:
        messages: list[SlackMessage] = []
        for event in events:
            if event.type in OWN_TYPES:  # the outbox's own records never notify
                continue
            try:
                message = self._render_one(event)
            except Exception:  # a malformed event must not wedge the outbox forever
                log.exception("cannot render event #%d (%s)", event.position, event.type)
                message = _unrenderable(event, self.dashboard_base)
            if message is not None:
                messages.append(message)
        if len(messages) > self.digest_threshold:
            return [digest(messages, self.dashboard_base)]
        return messages
