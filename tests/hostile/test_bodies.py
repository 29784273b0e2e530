"""Hostile bodies and strings (holes 1, 3 and 4 of the hostile-input issue): a rejection that
once recorded a 606 MB event and poisoned the store for good, a replacement that built a 3 GB
string, and lone surrogates that crash-looped the patch actor."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.adapters.web.support import GHOST
from tests.hostile.conftest import good_patch
from tests.node_process import NodeProcess

pytestmark = pytest.mark.timeout(120)


def test_a_huge_rejection_is_capped_and_the_store_stays_readable(
    make_node: Callable[..., NodeProcess],
) -> None:
    node = make_node()
    (node.workspace / "big.py").write_text("x" * 30_000 + "\n")
    hunks = "".join(f"@@\n-nothere{i}\n+y{i}\n" for i in range(20_000))
    patch = "*** Begin Patch\n*** Update File: big.py\n" + hunks + "*** End Patch\n"
    api = node.client(timeout=60)
    reply = api.post("/webhook", {"patch": patch, "dry_run": True})
    assert reply.status == 422, reply.raw[:300]
    assert len(reply.raw) < 1_000_000
    details = reply.json["error"]["details"]
    assert len(details["failures"]) == 50
    assert details["omitted"]["failures"] == 19_950
    assert all(len(c["text"]) < 500 for f in details["failures"] for c in f["closest"])

    db = sqlite3.connect(node.state_dir / "events.db")
    (size,) = db.execute(
        "SELECT max(length(data)) FROM events WHERE type = 'PatchRejected'"
    ).fetchone()
    db.close()
    assert size < 1_000_000, size

    assert api.get("/patches").status == 200
    assert api.get("/events?limit=500").status == 200
    good_patch(node)
    audit = subprocess.run(
        [sys.executable, str(GHOST), "--state-dir", str(node.state_dir), "audit", "--json"],
        capture_output=True,
        timeout=60,
    )
    assert audit.returncode == 0, audit.stderr[-2000:]


def test_a_replacement_that_would_explode_is_refused_before_it_is_built(
    make_node: Callable[..., NodeProcess],
) -> None:
    node = make_node()
    (node.workspace / "a.py").write_text("a" * 30_000 + "\n")
    body = {
        "id": "boom",
        "role": "x",
        "target_file": "a.py",
        "patch": {"pattern": "a", "replacement": "b" * 100_000},
    }
    started = time.monotonic()
    reply = node.client(timeout=60).post("/webhook", body)
    assert time.monotonic() - started < 20
    assert reply.status == 403, reply.raw[:300]
    (violation,) = reply.json["error"]["details"]["sandbox"]
    assert violation["reason"] == "too_large"
    assert (node.workspace / "a.py").read_text() == "a" * 30_000 + "\n"
    good_patch(node)


SURROGATE = "\ud800"
ADD = "*** Begin Patch\n*** Add File: s.py\n+x = 1\n*** End Patch\n"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"format": "files", "files": [{"path": f"s{SURROGATE}.py", "content": "x"}]},
            "files[0].path",
        ),
        (
            {"format": "files", "files": [{"path": "s.py", "content": SURROGATE}]},
            "files[0].content",
        ),
        ({"patch": ADD, "description": SURROGATE}, "description"),
        ({"patch": ADD, "author": f"me{SURROGATE}"}, "author"),
        ({"patch": ADD, "id": SURROGATE}, "id"),
        ({"patch": ADD.replace("x = 1", SURROGATE)}, "patch"),
        ({"patch": ADD, "base": {SURROGATE: "0" * 64}}, "base.\\ud800"),
    ],
)
def test_a_lone_surrogate_is_a_400_naming_the_field(
    make_node: Callable[..., NodeProcess], body: dict[str, object], field: str
) -> None:
    node = make_node()
    # json.dumps writes the lone surrogate as the escape `\ud800`, exactly as an attacker would
    reply = node.client().post("/webhook", body)
    assert reply.status == 400, reply.raw[:300]
    assert reply.json["error"]["details"]["field"] == field
    assert str(node.workspace) not in reply.raw.decode()
    good_patch(node)
    health = node.client().get("/health").json
    assert all(a["restarts"] == 0 for a in health["actors"].values()), health["actors"]
