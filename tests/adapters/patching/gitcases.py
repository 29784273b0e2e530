"""Random files and edits (hypothesis strategies) and thin wrappers around the real git."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

GIT = "/usr/bin/git"
# Few distinct lines, so that contexts repeat and ambiguity really happens.
VOCAB = ["a", "b", "c", "", "def f():", "    return 1", "    x = 1  ", "}", "// “q”", "z"]


@dataclass(frozen=True)
class Edit:
    old: bytes
    new: bytes


def _render(lines: list[str], eol: str, final_newline: bool) -> bytes:
    if not lines:
        return b""
    text = eol.join(lines) + (eol if final_newline else "")
    return text.encode()


@st.composite
def edits(draw: st.DrawFn, keep_final_newline: bool = False) -> Edit:
    lines = draw(st.lists(st.sampled_from(VOCAB), min_size=0, max_size=30))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    final = draw(st.booleans())
    new = list(lines)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(new)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        span = draw(st.integers(1, 3))
        fresh = draw(
            st.lists(st.sampled_from([*VOCAB, "NEW", "    new()"]), min_size=1, max_size=3)
        )
        if kind == "insert":
            new[at:at] = fresh
        elif kind == "delete":
            del new[at : at + span]
        else:
            new[at : at + span] = fresh
    new_final = final if keep_final_newline else draw(st.booleans())
    return Edit(_render(lines, eol, final), _render(new, eol, new_final))


def _env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
    }


def git_diff(work: Path, old: bytes, new: bytes, name: str = "f", context: int = 3) -> str:
    """`git diff --no-index` of two versions of `name`, with headers naming `name` itself."""
    (work / "old").mkdir(exist_ok=True)
    (work / "new").mkdir(exist_ok=True)
    (work / "old" / name).write_bytes(old)
    (work / "new" / name).write_bytes(new)
    out = subprocess.run(
        [GIT, "diff", "--no-index", "--no-color", f"-U{context}", f"old/{name}", f"new/{name}"],
        cwd=work,
        env=_env(work),
        capture_output=True,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    text = out.stdout.decode()
    return text.replace(f"a/old/{name}", f"a/{name}").replace(f"b/new/{name}", f"b/{name}")


def git_apply(work: Path, files: dict[str, bytes], patch: str) -> dict[str, bytes] | None:
    """The tree after `git apply` (outside any repository), or None when git refuses."""
    tree = work / "tree"
    tree.mkdir()
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    (work / "p.diff").write_bytes(patch.encode())
    env = _env(work)
    # git would otherwise look for a repository in the parents of the temp dir
    env["GIT_CEILING_DIRECTORIES"] = str(work)
    done = subprocess.run(
        [GIT, "apply", "--whitespace=nowarn", str(work / "p.diff")],
        cwd=tree,
        env=env,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    return {p.relative_to(tree).as_posix(): p.read_bytes() for p in tree.rglob("*") if p.is_file()}
