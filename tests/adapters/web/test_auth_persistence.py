"""The HMAC signature memory across runs (RELIABILITY.md O1): journaled in the state directory
before the answer, loaded by the next run (a new object, a new process, even one killed with
SIGKILL), expired entries pruned, torn or corrupt lines tolerated, and the signed-before-start
bounds taken from the previous runs."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

import adapters.web.signature_journal as journal_module
from adapters.slack.commands import SlackRequestRejected, SlashCommandVerifier
from adapters.web.auth import Authenticator, SignatureMemory, signature_headers
from adapters.web.errors import ApiError
from adapters.web.routes.slack import remembering_in
from adapters.web.signature_journal import SignatureJournal, signature_digest
from tests.adapters.slack import test_commands as slack

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000.0
SECRET = "secret"
NONCE = "persistence-nonce"


def journal_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def signed(at: float, body: bytes = b"") -> dict[str, str]:
    ts = str(int(at))
    # one nonce for all: the same (at, body) is the same signature, a replay
    headers = signature_headers(
        SECRET.encode(), "GET" if not body else "POST", "/", body, timestamp=int(ts), nonce=NONCE
    )
    return {k.lower(): v for k, v in headers.items()}


def reason(exc: pytest.ExceptionInfo[ApiError]) -> object:
    return exc.value.details.get("reason")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "signatures"


def test_a_new_memory_on_the_same_file_refuses_a_replay(path: Path) -> None:
    first = SignatureMemory.persistent(path, 300, started=T0, now=T0)
    first.remember("sig-a", T0, T0 - 10)
    first.remember("sig-b", T0, T0 + 100)
    # No close(): what a SIGKILL leaves (the flusher may not even have synced yet).
    second = SignatureMemory.persistent(path, 300, started=T0 + 5, now=T0 + 5)
    assert len(second) == 2
    assert "sig-a" in second
    for sig, ts in (("sig-a", T0 - 10), ("sig-b", T0 + 100)):
        with pytest.raises(ApiError) as replayed:
            second.remember(sig, T0 + 5, ts)
        assert reason(replayed) == "replayed"
    second.remember("sig-c", T0 + 5, T0 + 5)
    first.close()
    second.close()
    # Only digests are on disk, never the signatures.
    text = path.read_text()
    assert "sig-a" not in text
    assert signature_digest("sig-a") in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_an_accepted_signature_survives_a_sigkill_right_after_the_answer(path: Path) -> None:
    """Another process remembers signatures and SIGKILLs itself the instant `remember`
    returned (when the request would be answered): none is lost."""
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from adapters.web.auth import SignatureMemory
memory = SignatureMemory.persistent(Path({str(path)!r}), 300, started={T0}, now={T0})
for n in range(200):
    memory.remember(f"sig-{{n}}", {T0}, {T0} + n)
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert done.returncode == -9
    memory = SignatureMemory.persistent(path, 300, started=T0 + 1, now=T0 + 1)
    assert len(memory) == 200
    for n in (0, 99, 199):
        with pytest.raises(ApiError):
            memory.remember(f"sig-{n}", T0 + 1, T0 + n)
    memory.close()


def test_expired_signatures_are_pruned_at_load(path: Path) -> None:
    memory = SignatureMemory.persistent(path, 300, started=T0, now=T0)
    memory.remember("old", T0, T0 - 200)  # expires T0 + 100
    memory.remember("new", T0, T0 + 50)  # expires T0 + 350
    memory.close()
    assert len(journal_lines(path)) == 3  # the mark + 2
    later = SignatureMemory.persistent(path, 300, started=T0 + 200, now=T0 + 200)
    assert len(later) == 1
    assert "new" in later
    assert "old" not in later
    assert len(journal_lines(path)) == 2  # compacted: the mark + "new"
    later.remember("old", T0 + 200, T0 + 200)  # a new signature with that text: fine
    later.close()


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_file_stays_bounded_during_a_run(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "JOURNAL_COMPACT_MIN", 50)
    memory = SignatureMemory.persistent(path, 10, started=T0, now=T0)
    journal = memory.journal
    assert journal is not None
    for n in range(2000):
        now = T0 + n / 10  # 10 a second, a 10 s window: about 100 live
        memory.remember(f"sig-{n}", now, now)
        if n % 100 == 99:  # the flusher thread compacts: give it the time to
            until(lambda: len(journal_lines(path)) <= 2 * len(memory) + 52)
    assert len(memory) <= 111  # expiries are whole seconds, rounded up
    assert journal.compactions >= 5
    memory.close()
    reloaded = SignatureMemory.persistent(path, 10, started=T0 + 200, now=T0 + 199.9)
    assert "sig-1999" in reloaded
    assert "sig-1000" not in reloaded
    reloaded.close()


def test_what_is_appended_during_a_compaction_is_kept(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "JOURNAL_COMPACT_MIN", 20)
    writing = threading.Event()
    real = journal_module._compacted

    def slow(started: int, max_ts: int, live: Mapping[str, float]) -> bytes:
        writing.set()
        time.sleep(0.3)
        return real(started, max_ts, live)

    monkeypatch.setattr(journal_module, "_compacted", slow)
    memory = SignatureMemory.persistent(path, 300, started=T0, now=T0)
    for n in range(30):  # 10 live and 20 dead (expired by the time of the last)
        memory.remember(f"old-{n}", T0 + n * 100, T0 + n * 100)
    now = T0 + 3000
    assert writing.wait(5)  # the flusher is writing the new file, outside the lock
    for n in range(10):
        memory.remember(f"new-{n}", now, now)
    journal = memory.journal
    assert journal is not None
    until(lambda: journal.compactions == 1)
    memory.remember("after", now, now)
    memory.close()
    reloaded = SignatureMemory.persistent(path, 300, started=now, now=now)
    for sig in ["after", *(f"new-{n}" for n in range(10)), "old-29", "old-27"]:
        assert sig in reloaded, sig
    assert "old-20" not in reloaded
    assert [p.name for p in path.parent.iterdir()] == ["signatures"]  # no temp file left
    reloaded.close()


def test_a_torn_tail_and_a_corrupt_line_are_skipped(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    memory = SignatureMemory.persistent(path, 300, started=T0, now=T0)
    for sig in ("a", "b", "c"):
        memory.remember(sig, T0, T0)
    memory.close()
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2][:10] + b"X" + lines[2][11:]  # "b": a flipped byte, the CRC tells
    torn = b"s 1700000300 " + signature_digest("d").encode()[:20]  # cut by a crash, no newline
    path.write_bytes(b"\n".join(lines[:-1]) + b"\n\x00\xff garbage \n" + torn)
    with caplog.at_level(logging.WARNING, logger="ghost.web.auth"):
        reloaded = SignatureMemory.persistent(path, 300, started=T0 + 1, now=T0 + 1)
    assert "a" in reloaded
    assert "c" in reloaded
    assert "b" not in reloaded
    assert len(reloaded) == 2
    assert "3 torn or corrupt line(s) skipped" in caplog.text
    reloaded.remember("e", T0 + 1, T0 + 1)
    reloaded.close()
    again = SignatureMemory.persistent(path, 300, started=T0 + 2, now=T0 + 2)
    assert {"a", "c", "e"} == {s for s in "abcde" if s in again}
    again.close()


def test_any_garbage_file_loads(path: Path) -> None:
    for data in (b"", b"\n\n", os.urandom(4096), b"m 1 2 00000000\n" * 3, b"s x y z\n"):
        path.write_bytes(data)
        memory = SignatureMemory.persistent(path, 300, started=T0, now=T0)
        memory.remember("x", T0, T0)
        memory.close()
        assert "x" in SignatureMemory.persistent(path, 300, started=T0, now=T0)


def test_a_journal_that_cannot_be_written_never_stops_the_node(path: Path) -> None:
    path.mkdir()  # neither readable nor replaceable as a file
    memory = SignatureMemory.persistent(path, 300, started=T0, now=T0)
    assert memory.journal is None
    memory.remember("a", T0, T0)  # in-process memory only, as before O1
    with pytest.raises(ApiError):
        memory.remember("a", T0, T0)


def test_a_failed_append_refuses_the_request_and_forgets_nothing(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = SignatureMemory.persistent(path, 300, started=T0, now=T0)
    memory.remember("a", T0, T0)
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        real_write(fd, data[:7])  # a partial line, as ENOSPC midway would leave
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module.os, "write", full)
    with pytest.raises(ApiError) as refused:
        memory.remember("b", T0, T0)
    assert refused.value.status == 503
    assert "b" not in memory  # not accepted, so not remembered: its retry may go through
    monkeypatch.setattr(journal_module.os, "write", real_write)
    memory.remember("b", T0, T0)  # on a new line after the partial one
    memory.close()
    reloaded = SignatureMemory.persistent(path, 300, started=T0, now=T0)
    assert "a" in reloaded
    assert "b" in reloaded


def test_fdatasync_is_batched_off_the_callers_thread(path: Path) -> None:
    memory = SignatureMemory.persistent(path, 300, started=T0, now=T0)
    journal = memory.journal
    assert journal is not None
    for n in range(500):
        memory.remember(f"sig-{n}", T0, T0)
    deadline = time.monotonic() + 5
    while journal.syncs == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 1 <= journal.syncs < 50
    memory.close()


def test_the_previous_runs_bounds_are_persisted(path: Path) -> None:
    memory = SignatureMemory.persistent(path, 300, started=T0, now=T0)
    assert memory.bounds == ()
    memory.close()
    memory = SignatureMemory.persistent(path, 300, started=T0, now=T0)
    assert memory.bounds == (T0,)  # a run started, nothing accepted
    memory.remember("a", T0 + 10, T0 + 250)  # a caller 240 s ahead
    memory.close()
    # The next run, with its clock an hour back: the bounds are still the first run's.
    later = SignatureMemory.persistent(path, 300, started=T0 - 3600, now=T0 - 3600)
    assert later.bounds == (T0, T0 + 250)
    later.close()
    # Once its signatures have expired and been compacted away, the highest one is kept.
    last = SignatureMemory.persistent(path, 300, started=T0 + 1000, now=T0 + 1000)
    assert len(last) == 0
    assert last.bounds == (T0, T0 + 250)
    last.close()
    journal, _, bounds = SignatureJournal.load(path, 300, T0, T0 + 1000)
    assert bounds == (T0 + 1000, T0 + 250)
    assert journal is not None
    journal.close()


def _authenticator(path: Path, now: list[float], started: float) -> Authenticator:
    memory = SignatureMemory.persistent(path, 300, started=started, now=now[0])
    MEMORIES.append(memory)
    return Authenticator("tok", SECRET, clock=lambda: now[0], signatures=memory, not_before=started)


MEMORIES: list[SignatureMemory] = []


@pytest.fixture(autouse=True)
def _close_memories() -> object:
    yield
    while MEMORIES:
        MEMORIES.pop().close()


def test_a_replay_after_a_restart_with_the_clock_stepped_back_is_refused(path: Path) -> None:
    """The O1 scenario: the second run's clock is 120 s behind, so the first run's request
    looks dated after the second run's start, inside the window."""
    now = [T0]
    first = _authenticator(path, now, started=T0 - 30)
    assert first.authenticate("POST", signed(T0, b"x"), {}, b"x").how == "hmac"
    now[0] = T0 - 120 + 5  # restarted 5 s later, the clock stepped back 120 s
    second = _authenticator(path, now, started=now[0])
    with pytest.raises(ApiError) as replayed:
        second.authenticate("POST", signed(T0, b"x"), {}, b"x")
    assert replayed.value.status == 401
    assert reason(replayed) == "replayed"
    # A caller signing with the node's (stepped back) time is served: stale by the previous
    # run's start, fresh by the clock, and not a replay.
    assert second.authenticate("POST", signed(now[0], b"y"), {}, b"y").how == "hmac"
    # So is one on the real time (120 s ahead of the node, inside the window).
    assert second.authenticate("POST", signed(T0 + 5, b"z"), {}, b"z").how == "hmac"


def test_the_previous_runs_bounds_apply_once_the_clock_reaches_them(path: Path) -> None:
    """Behind the memory, for what it may lack (here: a journal line lost, as a power loss may
    do to the last ones): a signature dated before the previous run's highest accepted
    timestamp is refused once the clock is past it, though this run started "earlier" by a
    stepped-back clock."""
    now = [T0]
    first = _authenticator(path, now, started=T0)
    now[0] = T0 + 40
    assert first.authenticate("GET", signed(T0 + 20), {}, b"").how == "hmac"
    assert first.authenticate("GET", signed(T0 + 40), {}, b"").how == "hmac"
    MEMORIES.pop().close()
    mark, _lost, kept = journal_lines(path)
    path.write_text(f"{mark}\n{kept}\n")  # the first signature's record lost
    now[0] = T0 - 100
    second = _authenticator(path, now, started=now[0])  # the clock stepped back 140 s
    with pytest.raises(ApiError) as replayed:
        second.authenticate("GET", signed(T0 + 40), {}, b"")
    assert reason(replayed) == "replayed"
    assert second.authenticate("GET", signed(T0 + 20), {}, b"").how == "hmac"  # the gap left
    now[0] = T0 + 45  # the clock caught up (NTP slewed it) past the previous bounds
    with pytest.raises(ApiError) as before:
        second.authenticate("GET", signed(T0 + 30), {}, b"")
    assert reason(before) == "signed_before_start"
    assert second.authenticate("GET", signed(T0 + 45), {}, b"").how == "hmac"


def test_slack_signatures_are_kept_in_the_node_memory_across_restarts(tmp_path: Path) -> None:
    """A slash command replayed after the node (or its web actor) restarted is refused: its
    signature went to the node's journaled memory, not the verifier's own."""
    path = tmp_path / "signatures"
    now = [float(slack.NOW)]
    body = slack.form("rollback p1")
    headers = slack.signed(body)
    first_run = SignatureMemory.persistent(path, 300, started=now[0], now=now[0])
    SlashCommandVerifier(
        slack.SECRET, clock=lambda: now[0], remember=remembering_in(first_run, lambda: now[0])
    ).verify(body, headers)
    first_run.close()
    now[0] += 30
    second_run = SignatureMemory.persistent(path, 300, started=now[0], now=now[0])
    verifier = SlashCommandVerifier(
        slack.SECRET, clock=lambda: now[0], remember=remembering_in(second_run, lambda: now[0])
    )
    with pytest.raises(SlackRequestRejected) as refused:
        verifier.verify(body, headers)
    assert refused.value.status == 401
    assert "replayed" in refused.value.reason
    second_run.close()
