"""The attack corpus: every way out of the workspace or into what it must not touch is refused
with a clear reason, on the real file system."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.patching import (
    MemoryView,
    PatchDoesNotApply,
    Sandbox,
    SandboxView,
    SandboxViolation,
    parse_body,
    plan,
    read_file_checked,
)
from adapters.patching.pathrules import ExcludeRules

EXCLUDE = ["node_modules/", "*.log", "build/out", "/dist", "docs/**/*.pdf", "secret.txt"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    (root / "escape").symlink_to(outside)  # a symlinked directory leading out
    (root / "inner").symlink_to(root / "src")  # a symlinked directory staying in
    (root / "link.py").symlink_to(root / "src" / "app.py")  # a symlink as the file itself
    (root / "to_git").symlink_to(root / ".git")
    (root / "huge.txt").write_bytes(b"x" * 2048)
    (root / "blob.bin").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    (root / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    os.mkfifo(root / "fifo")
    return root


def sandbox(root: Path) -> Sandbox:
    return Sandbox(root, exclude=EXCLUDE, max_file_bytes=1024)


ATTACKS = [
    ("", "empty"),
    ("   ", "empty"),
    ("./", "empty"),
    ("/etc/passwd", "absolute"),
    ("~/.ssh/id_rsa", "absolute"),
    ("C:/Windows/win.ini", "absolute"),
    ("../outside/passwd", "traversal"),
    ("src/../../outside/passwd", "traversal"),
    ("src/..", "traversal"),
    ("src/app.py\0.txt", "nul_byte"),
    ("src/app.py\n", "control_char"),
    ("..\\outside\\passwd", "backslash"),
    ("src\\..\\..\\x", "backslash"),
    ("escape/passwd", "symlink_escape"),
    ("escape/new_file.py", "symlink_escape"),
    ("link.py", "symlink"),
    ("to_git/config", "excluded"),
    (".git/config", "excluded"),
    (".GIT/config", "excluded"),
    ("sub/.git/hooks/pre-commit", "excluded"),
    (".ghost/token", "excluded"),
    ("node_modules/x/index.js", "excluded"),
    ("a/node_modules/y.js", "excluded"),
    ("logs/today.log", "excluded"),
    ("build/out/x.js", "excluded"),
    ("dist/bundle.js", "excluded"),
    ("docs/a/b/manual.pdf", "excluded"),
    ("deep/secret.txt", "excluded"),
    ("huge.txt", "too_large"),
    ("fifo", "not_a_file"),
    ("src", "not_a_file"),
    ("src/app.py/x", "not_a_directory"),
]


@pytest.mark.parametrize(("path", "reason"), ATTACKS, ids=[repr(a[0]) for a in ATTACKS])
def test_attack_is_refused(workspace: Path, path: str, reason: str) -> None:
    with pytest.raises(SandboxViolation) as refused:
        sandbox(workspace).check(path, for_write=True)
    assert refused.value.reason == reason
    assert refused.value.message


def test_allowed_paths_resolve_inside(workspace: Path) -> None:
    box = sandbox(workspace)
    assert box.check("src/app.py") == workspace / "src" / "app.py"
    assert box.check("./src//app.py") == workspace / "src" / "app.py"
    assert box.check("new/dir/file.py", for_write=True) == workspace / "new" / "dir" / "file.py"
    # a symlinked directory that stays inside resolves to its real place
    checked = box.inspect("inner/app.py")
    assert checked.relative == "src/app.py"
    assert checked.identity is not None
    assert box.check("build/other.js") == workspace / "build" / "other.js"  # anchored rule
    assert box.check("src/dist/x.js") == workspace / "src" / "dist" / "x.js"  # /dist is rooted


@pytest.mark.parametrize(("path", "reason"), [("blob.bin", "binary"), ("latin1.txt", "binary")])
def test_binary_files_are_refused(workspace: Path, path: str, reason: str) -> None:
    with pytest.raises(SandboxViolation) as refused:
        sandbox(workspace).read(path)
    assert refused.value.reason == reason


def test_new_content_limits(workspace: Path) -> None:
    box = sandbox(workspace)
    with pytest.raises(SandboxViolation, match=r"too_large|over"):
        box.check_content("a.txt", b"x" * 1025)
    with pytest.raises(SandboxViolation) as refused:
        box.check_content("a.txt", b"a\0b")
    assert refused.value.reason == "binary"


def test_symlink_swapped_in_after_the_check_is_detected(workspace: Path, tmp_path: Path) -> None:
    box = sandbox(workspace)
    checked = box.inspect("src/app.py")
    target = workspace / "src" / "app.py"
    target.unlink()
    target.symlink_to(tmp_path / "outside" / "passwd")
    with pytest.raises(SandboxViolation) as refused:
        read_file_checked(box.root, checked.relative, max_bytes=1024, expected=checked.identity)
    assert refused.value.reason == "changed_since_check"


def test_parent_directory_swapped_for_a_symlink_is_detected(
    workspace: Path, tmp_path: Path
) -> None:
    box = sandbox(workspace)
    checked = box.inspect("src/app.py")
    os.rename(workspace / "src", workspace / "src_moved")
    (workspace / "src").symlink_to(tmp_path / "outside")
    (tmp_path / "outside" / "app.py").write_text("evil\n")
    with pytest.raises(SandboxViolation) as refused:
        read_file_checked(box.root, checked.relative, max_bytes=1024, expected=checked.identity)
    assert refused.value.reason == "changed_since_check"


def test_another_file_renamed_over_after_the_check_is_detected(workspace: Path) -> None:
    box = sandbox(workspace)
    checked = box.inspect("src/app.py")
    (workspace / "src" / "other.py").write_text("print('other')\n")
    os.replace(workspace / "src" / "other.py", workspace / "src" / "app.py")
    with pytest.raises(SandboxViolation) as refused:
        read_file_checked(box.root, checked.relative, max_bytes=1024, expected=checked.identity)
    assert refused.value.reason == "changed_since_check"


def test_read_file_checked_returns_bytes_and_identity(workspace: Path) -> None:
    box = sandbox(workspace)
    checked = box.inspect("src/app.py")
    got = read_file_checked(box.root, checked.relative, max_bytes=1024, expected=checked.identity)
    assert got is not None
    assert got.data == b"print('hi')\n"
    assert checked.identity is not None
    assert got.identity.same_file(checked.identity)
    assert read_file_checked(box.root, "src/none.py", max_bytes=10) is None


def test_planner_collects_every_violation_and_writes_nothing(workspace: Path) -> None:
    patch = (
        "*** Begin Patch\n*** Add File: ../evil.py\n+x\n*** Add File: escape/evil.py\n+x\n"
        "*** Update File: .git/config\n-[core]\n+[evil]\n*** Add File: ok.py\n+fine\n"
        "*** Update File: blob.bin\n-x\n+y\n*** End Patch\n"
    )
    before = sorted(p.name for p in workspace.rglob("*"))
    with pytest.raises(PatchDoesNotApply) as rejected:
        plan(parse_body({"patch": patch}), SandboxView(sandbox(workspace)))
    reasons = sorted(v.reason for v in rejected.value.violations)
    assert reasons == ["binary", "excluded", "symlink_escape", "traversal"]
    assert sorted(p.name for p in workspace.rglob("*")) == before


def test_new_content_over_the_limit_is_refused_by_the_planner() -> None:
    body = {"files": [{"path": "big.txt", "content": "x" * 2000}]}
    with pytest.raises(PatchDoesNotApply) as rejected:
        plan(parse_body(body), MemoryView({}, max_file_bytes=1000))
    assert [v.reason for v in rejected.value.violations] == ["too_large"]


def test_exclude_rules_semantics() -> None:
    rules = ExcludeRules(["logs/", "*.tmp", "/root_only.txt", "a/**/z", "# comment", "!keep"])
    assert rules.excluded_by("logs/x") == "logs/"
    assert rules.excluded_by("deep/logs/x") == "logs/"
    assert rules.excluded_by("logs") is None  # "logs/" names a directory, not a file
    assert rules.excluded_by("x.tmp/y") == "*.tmp"
    assert rules.excluded_by("root_only.txt") == "/root_only.txt"
    assert rules.excluded_by("sub/root_only.txt") is None
    assert rules.excluded_by("a/z") == "a/**/z"
    assert rules.excluded_by("a/b/c/z") == "a/**/z"
    assert rules.excluded_by("keep") is None
