"""The store as the workspace's history (replay/timetravel.py through bin/ghost): the state at
a position, a time or a patch; a file's bytes then; every file into a directory; the diff
between two points; and a content the store never had, named with why."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from adapters.ledger.records import command_from_body
from eventstore import NewEvent
from tests.replay.support import ghost, recorded_workspace, v4a


@pytest.fixture
def history(tmp_path: Path) -> dict[str, object]:
    """a.py through two patches, b.py added by the second, then an editor's save of a.py."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "a.py").write_text("a = 0\n")
    with recorded_workspace(root) as flow:
        first = flow.submit(
            command_from_body({"patch": v4a("a.py", "a = 0", "a = 1")}, "main"),
            patch_id="aaaa000000000001",
        )
        add_b = (
            "*** Begin Patch\n*** Update File: a.py\n@@\n-a = 1\n+a = 2\n"
            "*** Add File: b.py\n+b = 1\n*** End Patch\n"
        )
        second = flow.submit(
            command_from_body({"patch": add_b}, "main"), patch_id="bbbb000000000002"
        )
        (root / "a.py").write_text("a = 2\nsaved = True\n")  # an editor's save, seen by the watcher
        sha = hashlib.sha256((root / "a.py").read_bytes()).hexdigest()
        saved = {"source": "external", "paths": [{"path": "a.py", "sha256": sha}]}
        flow.store.append("workspace-main", [NewEvent("FilesChanged", saved)])
    return {"root": root, "first": first.patch_id, "second": second.patch_id}


def test_replay_until_a_patch_lists_its_patches_and_files(history: dict[str, object]) -> None:
    root = history["root"]
    assert isinstance(root, Path)
    done = ghost(root, "replay", "--until", "aaaa", "--json")  # a patch id prefix
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [(p["patch_id"], p["status"]) for p in out["patches"]] == [
        ("aaaa000000000001", "applied")
    ]
    assert out["files"]["main"]["a.py"]["changed_by"] == "patch:aaaa000000000001"
    assert "b.py" not in out["files"]["main"]
    assert out["position"] == out["state"]["position"]
    table = ghost(root, "replay", "--until", "bbbb000000000002")
    assert table.returncode == 0, table.stderr
    assert "files of main (2)" in table.stdout
    assert "patch:bbbb000000000002" in table.stdout
    assert "{" not in table.stdout  # tables, not JSON dicts


def test_cat_a_file_as_it_was(history: dict[str, object]) -> None:
    root = history["root"]
    assert isinstance(root, Path)
    assert ghost(root, "cat", "a.py", "--until", "aaaa").stdout == "a = 1\n"
    assert ghost(root, "cat", "a.py", "--until", "bbbb").stdout == "a = 2\n"
    assert ghost(root, "cat", "b.py", "--until", "bbbb").stdout == "b = 1\n"
    gone = ghost(root, "cat", "b.py", "--until", "aaaa")
    assert gone.returncode == 1
    assert "did not exist" in gone.stderr
    now = ghost(root, "cat", "a.py")  # the editor's save: its content was never stored
    assert now.returncode == 1
    assert "outside any patch (external)" in now.stderr


def test_checkout_writes_every_known_file_and_never_into_the_workspace(
    history: dict[str, object], tmp_path: Path
) -> None:
    root = history["root"]
    assert isinstance(root, Path)
    target = tmp_path / "then"
    done = ghost(root, "checkout", "--until", "bbbb", "--to", str(target))
    assert done.returncode == 0, done.stderr
    assert (target / "a.py").read_text() == "a = 2\n"
    assert (target / "b.py").read_text() == "b = 1\n"
    inside = ghost(root, "checkout", "--until", "bbbb", "--to", str(root / "old"))
    assert inside.returncode == 2
    assert "inside workspace main" in inside.stderr
    assert not (root / "old").exists()


def test_diff_between_two_points(history: dict[str, object]) -> None:
    root = history["root"]
    assert isinstance(root, Path)
    done = ghost(root, "diff", "--from", "aaaa", "--to", "bbbb")
    assert done.returncode == 0, done.stderr
    assert "-a = 1" in done.stdout
    assert "+a = 2" in done.stdout
    assert "+++ b/b.py" in done.stdout
    one = ghost(root, "diff", "--from", "aaaa", "--to", "bbbb", "a.py")
    assert "b.py" not in one.stdout
    lacking = ghost(root, "diff", "--from", "bbbb", "a.py")  # to now: never stored
    assert lacking.returncode == 1
    assert "outside any patch" in lacking.stderr
