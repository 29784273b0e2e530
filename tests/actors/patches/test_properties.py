"""Properties of the whole flow on real files: apply then rollback restores every byte; a
rejected patch changes no byte."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from actors.patches.flow import PatchFlow
from adapters.config import WorkspaceConfig
from adapters.ledger.records import command_from_body
from eventstore import SQLiteEventStore

names = st.sampled_from(["a.py", "b.txt", "pkg/c.py", "pkg/deep/d.md", "e.json"])
lines = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=30), max_size=12
)


@st.composite
def file_text(draw: st.DrawFn) -> str:
    body = draw(lines)
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(body)
    return text + ending if body and draw(st.booleans()) else text


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def setup(tmp: Path, files: dict[str, str]) -> tuple[PatchFlow, SQLiteEventStore, Path]:
    root = tmp / "ws"
    root.mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(text.encode())
    (tmp / "state").mkdir()
    store = SQLiteEventStore(tmp / "state" / "events.db", durability="normal")
    ws = WorkspaceConfig(name="main", path=root, include=("*",), exclude=())
    flow = PatchFlow(ws, store, tmp / "state" / "journal")
    flow.load()
    return flow, store, root


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(names, file_text(), max_size=4),
    st.dictionaries(names, st.one_of(st.none(), file_text()), min_size=1, max_size=4),
)
def test_apply_then_rollback_restores_every_byte(
    before: dict[str, str], edits: dict[str, str | None]
) -> None:
    with tempfile.TemporaryDirectory() as name:
        flow, store, root = setup(Path(name), before)
        try:
            original = snapshot(root)
            files = [
                {"path": p, "delete": True} if text is None else {"path": p, "content": text}
                for p, text in edits.items()
                if text is not None or p in before  # deleting a missing file is an error
            ]
            if not files:
                return
            out = flow.submit(command_from_body({"format": "files", "files": files}, "main"))
            event(f"status={out.status}")
            if out.status != "applied":
                assert out.status == "rejected"
                assert snapshot(root) == original
                return
            back = flow.rollback(out.patch_id, by="property")
            assert back.status == "rolled_back"
            assert snapshot(root) == original
        finally:
            store.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(names, file_text(), min_size=1, max_size=4), st.text(min_size=1, max_size=20)
)
def test_a_rejected_patch_changes_no_byte(before: dict[str, str], missing: str) -> None:
    with tempfile.TemporaryDirectory() as name:
        flow, store, root = setup(Path(name), before)
        try:
            original = snapshot(root)
            target = sorted(before)[0]
            needle = f"NOT IN ANY FILE {missing!r}".replace("\n", " ").replace("\r", " ")
            # Two files: one hunk that would apply, one that cannot: nothing may be written.
            patch = "*** Begin Patch\n*** Add File: brand/new.py\n+x = 1\n"
            patch += f"*** Update File: {target}\n@@\n-{needle}\n+replaced\n*** End Patch\n"
            out = flow.submit(command_from_body({"patch": patch}, "main"))
            assert out.status == "rejected"
            assert snapshot(root) == original
            assert not (root / "brand").exists()
        finally:
            store.close()
