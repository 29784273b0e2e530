from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.slack import diffstat
from adapters.slack.message import SlackMessage, chunk_lines, dashboard_url, esc
from adapters.slack.render import (
    CANDIDATE_TYPES,
    CrashLoopAlerts,
    Renderer,
    digest,
    render_event,
)
from eventstore import RecordedEvent
from eventstore.catalogue import EventType as T

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
BASE = "https://node.example:5051"
DIFF = """--- a/app.py
+++ b/app.py
@@ -1,2 +1,3 @@
 x = 1
-y = 2
+y = 3
+z = 4
--- /dev/null
+++ b/new.py
@@ -0,0 +1 @@
+print('hi')
"""


def ev(
    type: str,
    data: dict[str, Any] | None = None,
    stream: str = "patch-p1",
    position: int = 1,
    at: datetime = T0,
) -> RecordedEvent:
    return RecordedEvent(position, f"e{position}", stream, 1, type, at, data or {}, {}, "h")


def all_text(message: SlackMessage) -> str:
    return json.dumps(message.payload(), ensure_ascii=False)


def test_patch_applied_has_files_counts_and_dashboard_link() -> None:
    data = {
        "patch_id": "p1",
        "workspace": "main",
        "author": "gpt",
        "description": "fix y",
        "files": [{"path": "app.py", "action": "update", "added": 2, "removed": 1}],
    }
    message = render_event(ev(T.PATCH_APPLIED, data), BASE)
    assert message is not None
    text = all_text(message)
    assert message.kind == "applied"
    assert "Patch `p1` applied in `main` by gpt" in message.text
    assert "`app.py` +2 -1" in text
    assert "1 file, +2 -1" in text
    assert f"<{BASE}/dashboard#patch-p1|Open in dashboard>" in text
    assert message.positions == (1,)


def test_diff_summary_from_unified_diff_when_files_have_no_counts() -> None:
    files = [{"path": "app.py", "action": "update"}, {"path": "new.py", "action": "add"}]
    data: dict[str, Any] = {"files": files, "diff": DIFF}
    message = render_event(ev(T.PATCH_APPLIED, data), None)
    assert message is not None
    text = all_text(message)
    assert "`app.py` +2 -1" in text
    assert "`new.py` (add) +1 -0" in text
    assert "2 files, +3 -1" in text
    assert "dashboard" not in text  # no base URL, no link
    assert diffstat.from_unified_diff(DIFF) == {"app.py": (2, 1), "new.py": (1, 0)}


def test_patch_id_falls_back_to_the_stream_and_missing_fields_are_fine() -> None:
    message = render_event(ev(T.PATCH_ROLLED_BACK, {}, stream="patch-abc"), BASE)
    assert message is not None
    assert "Patch `abc` rolled back" in message.text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"reason": "does not apply"}, "does not apply"),
        ({"error": {"code": "sandbox", "message": "path escapes"}}, "path escapes"),
        ({"message": "conflict"}, "conflict"),
    ],
)
def test_rejected_shows_the_reason(data: dict[str, Any], expected: str) -> None:
    message = render_event(ev(T.PATCH_REJECTED, data), BASE)
    assert message is not None
    assert expected in all_text(message)


@pytest.mark.parametrize(
    ("data", "interesting"),
    [
        ({"status": "passed", "exit_code": 0}, False),
        ({"status": "skipped"}, False),
        ({"status": "failed", "exit_code": 1, "output_tail": "E assert 1 == 2"}, True),
        ({"status": "timeout", "exit_code": None}, True),
        ({"exit_code": 2}, True),
        ({}, False),
    ],
)
def test_tests_finished_only_when_failed(data: dict[str, Any], interesting: bool) -> None:
    message = render_event(ev(T.TESTS_FINISHED, data), BASE)
    assert (message is not None) is interesting
    if message is not None and "output_tail" in data:
        assert "```E assert 1 == 2```" in all_text(message)


def test_pending_approval_says_how_to_approve() -> None:
    message = render_event(ev(T.PATCH_PENDING_APPROVAL, {"patch_id": "p9"}), BASE)
    assert message is not None
    assert "/ghost approve p9" in all_text(message)


def test_supervisor_tunnel_messages() -> None:
    gave_up = ev(
        T.SUPERVISOR_GAVE_UP,
        {
            "supervisor": "root",
            "actor": "patch.main",
            "restarts": 5,
            "period_s": 60,
            "cause": "boom",
        },
        stream="supervisor-root",
    )
    down = ev(T.TUNNEL_DOWN, {"name": "cloudflare", "reason": "exited 1"}, stream="tunnel-x")
    up = ev(T.TUNNEL_UP, {"name": "cloudflare", "url": "https://a-b.trycloudflare.com"})
    texts = [all_text(m) for m in map(render_event, (gave_up, down, up)) if m is not None]
    assert len(texts) == 3
    assert "Supervisor `root` gave up" in texts[0]
    assert "5 restarts in 60 s" in texts[0]
    assert "boom" in texts[0]
    assert "Tunnel `cloudflare` is down" in texts[1]
    assert "exited 1" in texts[1]
    assert "https://a-b.trycloudflare.com" in texts[2]


def test_untrusted_text_is_escaped() -> None:
    data = {"description": "<!channel> see <https://evil|docs> & more", "author": "<@U1>"}
    message = render_event(ev(T.PATCH_APPLIED, data), BASE)
    assert message is not None
    text = all_text(message)
    assert "<!channel>" not in text
    assert "<https://evil" not in text
    assert "<@U1>" not in text
    assert "&lt;!channel&gt;" in text
    assert "&amp; more" in text


def test_uninteresting_and_own_events_render_nothing() -> None:
    for type in (T.FILES_CHANGED, T.PATCH_RECEIVED, T.NOTIFICATION_SENT, T.NOTIFICATION_FAILED):
        assert render_event(ev(type, {"patch_id": "x"})) is None
    renderer = Renderer(BASE)
    own = ev(T.NOTIFICATION_FAILED, {"error": "x"}, stream="notifier-slack")
    assert renderer.render([own]) == []


def exited(n: int, seconds: float, service: str = "expo", **extra: Any) -> RecordedEvent:
    data = {"service": service, "exit_code": 1, **extra}
    return ev(T.SERVICE_EXITED, data, "service-expo", n, T0 + timedelta(seconds=seconds))


def test_crash_loop_alerts_once_per_loop() -> None:
    detector = CrashLoopAlerts(threshold=3, window_s=60)
    results = [detector.observe(exited(i, t)) for i, t in enumerate([0, 10, 20, 30, 40], 1)]
    assert results == [None, None, 3, None, None]
    # a quiet window later it is a new loop
    later = [detector.observe(exited(10 + i, 200 + t)) for i, t in enumerate([0, 5, 6])]
    assert later == [None, None, 3]


def test_spread_out_or_expected_exits_are_not_a_loop() -> None:
    detector = CrashLoopAlerts(threshold=3, window_s=60)
    assert [detector.observe(exited(i, i * 100)) for i in range(5)] == [None] * 5
    assert [detector.observe(exited(9 + i, 1000, expected=True)) for i in range(5)] == [None] * 5


def test_renderer_turns_a_crash_loop_into_one_message() -> None:
    renderer = Renderer(BASE, crash_loop=CrashLoopAlerts(threshold=3, window_s=60))
    messages = renderer.render([exited(i, i) for i in range(1, 6)])
    assert [m.kind for m in messages] == ["service_crash_loop"]
    assert "Service `expo` is crash-looping: 3 exits in 60 s" in messages[0].text


def test_seeded_history_counts_but_sends_nothing() -> None:
    renderer = Renderer(BASE, crash_loop=CrashLoopAlerts(threshold=3, window_s=60))
    renderer.seed([exited(1, 0), exited(2, 1)])
    assert [m.kind for m in renderer.render([exited(3, 2)])] == ["service_crash_loop"]


def test_a_burst_becomes_one_digest() -> None:
    renderer = Renderer(BASE, digest_threshold=3)
    events = [ev(T.PATCH_APPLIED, {"patch_id": f"p{i}"}, position=i) for i in range(1, 6)]
    events.append(ev(T.TUNNEL_DOWN, {"name": "cf"}, position=6))
    events.append(ev(T.FILES_CHANGED, {}, position=7))
    messages = renderer.render(events)
    assert len(messages) == 1
    message = messages[0]
    assert message.kind == "digest"
    assert message.positions == (1, 2, 3, 4, 5, 6)
    assert "6 notifications (5 applied, 1 tunnel down)" in message.text
    text = all_text(message)
    assert all(f"Patch `p{i}` applied" in text for i in range(1, 6))
    # at the threshold, no digest
    assert len(renderer.render(events[:3])) == 3


def test_a_huge_digest_stays_within_slack_limits() -> None:
    big = [SlackMessage("t", kind="applied", summary="x" * 500, positions=(i,)) for i in range(300)]
    message = digest(big, BASE)
    assert len(message.blocks) <= 50
    for block in message.blocks:
        text = block.get("text", {}).get("text", "")
        assert len(text) <= 3000
    assert "…and 260 more" in all_text(message)


def test_helpers() -> None:
    assert esc("a<b>&c") == "a&lt;b&gt;&amp;c"
    assert dashboard_url(BASE + "/", "a/b") == BASE + "/dashboard#patch-a%2Fb"
    assert dashboard_url("") is None
    assert chunk_lines(["a" * 10, "b" * 10, "c"], limit=15) == ["a" * 10, "b" * 10 + "\nc"]


JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
KEYS = st.sampled_from(
    [
        "patch_id",
        "workspace",
        "author",
        "description",
        "files",
        "diff",
        "reason",
        "error",
        "status",
        "exit_code",
        "duration_s",
        "output_tail",
        "supervisor",
        "actor",
        "restarts",
        "name",
        "url",
        "service",
        "signal",
        "expected",
        "message",
        "cause",
        "period_s",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    type=st.sampled_from(sorted(CANDIDATE_TYPES)),
    data=st.dictionaries(KEYS, JUNK, max_size=8),
)
def test_any_data_shape_renders_without_error(type: str, data: dict[str, Any]) -> None:
    renderer = Renderer(BASE, crash_loop=CrashLoopAlerts(threshold=1))
    for message in renderer.render([ev(type, data)]):
        assert message.kind != "unrenderable"
        json.dumps(message.payload())
