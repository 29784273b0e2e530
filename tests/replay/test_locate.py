"""The operator CLI as a git user expects it (replay/locate.py through bin/ghost): the state
directory found by walking up, never created by `ghost`; patch ids by unique prefix; offline
commands on the workspace the store recorded; a refused rollback that shows what changed, and
a forced one that keeps the overwritten edits as a blob."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.ledger.records import command_from_body
from tests.node_process import GHOST
from tests.replay.support import ghost, recorded_workspace, v4a


@pytest.fixture
def project(tmp_path: Path) -> dict[str, object]:
    """A project with a sub-directory, its .ghost/ and two applied patches."""
    root = tmp_path / "project"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "a.py").write_text("a = 0\n")
    with recorded_workspace(root) as flow:
        first = flow.submit(
            command_from_body({"patch": v4a("a.py", "a = 0", "a = 1")}, "main"),
            patch_id="4730aaaa11112222",
        )
        second = flow.submit(
            command_from_body({"patch": v4a("a.py", "a = 1", "a = 2")}, "main"),
            patch_id="4730bbbb33334444",
        )
    return {"root": root, "state": root / ".ghost", "ids": [first.patch_id, second.patch_id]}


def test_the_state_directory_is_found_from_a_sub_directory(project: dict[str, object]) -> None:
    root = project["root"]
    assert isinstance(root, Path)
    done = ghost(root / "src" / "deep", "audit", "--json")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2


def test_ghost_never_creates_a_state_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (("rollback", "0123abcd"), ("status",), ("events",), ("show", "x")):
        done = ghost(elsewhere, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "no event store" in done.stderr
    assert list(elsewhere.iterdir()) == []
    named = ghost(elsewhere, "--state-dir", "nope", "status")
    assert named.returncode == 2
    assert "nope" in named.stderr
    assert not (elsewhere / "nope").exists()


def test_a_unique_prefix_names_a_patch_and_an_ambiguous_one_is_listed(
    project: dict[str, object],
) -> None:
    root, ids = project["root"], project["ids"]
    assert isinstance(root, Path)
    assert isinstance(ids, list)
    shown = ghost(root, "show", "4730a", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["patch_id"] == ids[0]
    ambiguous = ghost(root, "show", "4730")
    assert ambiguous.returncode == 2
    assert "ambiguous" in ambiguous.stderr
    assert ids[0] in ambiguous.stderr
    assert ids[1] in ambiguous.stderr
    assert ghost(root, "show", "ffffffffffffffffff").returncode == 1


def test_an_offline_rollback_acts_on_the_recorded_workspace_from_anywhere(
    project: dict[str, object], tmp_path: Path
) -> None:
    root, state, ids = project["root"], project["state"], project["ids"]
    assert isinstance(root, Path)
    assert isinstance(state, Path)
    assert isinstance(ids, list)
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "a.py").write_text("a = 2\n")  # the same name and content, in another place
    done = ghost(decoy, "--state-dir", str(state), "rollback", ids[1])
    assert done.returncode == 0, done.stderr
    assert (root / "a.py").read_text() == "a = 1\n"
    assert (decoy / "a.py").read_text() == "a = 2\n"


def test_a_recorded_workspace_that_is_gone_is_a_clear_error(
    project: dict[str, object], tmp_path: Path
) -> None:
    root, ids = project["root"], project["ids"]
    assert isinstance(root, Path)
    assert isinstance(ids, list)
    moved = tmp_path / "moved"
    root.rename(moved)
    done = ghost(moved, "rollback", ids[1])
    assert done.returncode == 2
    assert "no longer exists" in done.stderr
    assert str(root) in done.stderr


def test_a_refused_rollback_shows_what_changed_and_force_keeps_it(
    project: dict[str, object],
) -> None:
    root, ids = project["root"], project["ids"]
    assert isinstance(root, Path)
    assert isinstance(ids, list)
    (root / "a.py").write_text("a = 2\nmine = True\n")  # an edit after the patch
    refused = ghost(root, "rollback", ids[1])
    assert refused.returncode == 1
    assert "changed since: a.py" in refused.stderr
    assert "+mine = True" in refused.stderr  # the diff of what changed since
    assert "--force" in refused.stderr
    assert (root / "a.py").read_text() == "a = 2\nmine = True\n"
    forced = ghost(root, "rollback", ids[1], "--force")
    assert forced.returncode == 0, forced.stderr
    assert (root / "a.py").read_text() == "a = 1\n"
    assert "were overwritten; kept: ghost blob " in forced.stdout
    sha = forced.stdout.split("ghost blob ")[1].split()[0]
    kept = subprocess.run(
        [sys.executable, str(GHOST), "blob", sha], cwd=root, capture_output=True, timeout=60
    )
    assert kept.returncode == 0
    assert kept.stdout == b"a = 2\nmine = True\n"
    shown = json.loads(ghost(root, "show", ids[1], "--json").stdout)
    assert shown["status"] == "rolled_back"
