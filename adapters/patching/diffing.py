"""The unified diff of a plan's effect, git-style (a/ b/ prefixes, creations, deletions,
renames, `\\ No newline at end of file`), so that `git apply` reproduces the plan's bytes."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from adapters.patching.model import Plan, PlannedFile

NO_NEWLINE = "\\ No newline at end of file\n"


@dataclass(frozen=True, slots=True)
class FileDiff:
    """One file's diff text and its line counts, from one pass of the matcher."""

    text: str
    added: int
    removed: int


def unified_diff(plan: Plan, context: int = 3) -> str:
    return "".join(file_diff(planned, context) for planned in plan.files)


def file_diff(planned: PlannedFile, context: int = 3) -> str:
    return diff_file(planned, context).text


def diff_file(planned: PlannedFile, context: int = 3) -> FileDiff:
    old_name = planned.move_from or planned.path
    old = _lines(planned.before)
    new = _lines(planned.after)
    head = [f"diff --git a/{old_name} b/{planned.path}\n"]
    if planned.action == "add":
        head.append("new file mode 100644\n")
    elif planned.action == "delete":
        head.append("deleted file mode 100644\n")
    elif planned.action == "move":
        head += [f"rename from {old_name}\n", f"rename to {planned.path}\n"]
    body, added, removed = _hunks(old, new, context)
    if not body:
        return FileDiff("".join(head) if planned.action != "update" else "", 0, 0)
    from_name = "/dev/null" if planned.before is None else f"a/{old_name}"
    to_name = "/dev/null" if planned.after is None else f"b/{planned.path}"
    out = [*head, f"--- {from_name}\n", f"+++ {to_name}\n"]
    for line in body:
        out.append(line)
        if not line.endswith("\n"):
            out += ["\n", NO_NEWLINE]
    return FileDiff("".join(out), added, removed)


def line_counts(before: bytes | None, after: bytes | None) -> tuple[int, int]:
    """(added, removed) lines between two contents, as the diff counts them."""
    added = removed = 0
    for tag, i1, i2, j1, j2 in line_opcodes(_lines(before), _lines(after)):
        if tag in ("replace", "delete"):
            removed += i2 - i1
        if tag in ("replace", "insert"):
            added += j2 - j1
    return added, removed


def _lines(data: bytes | None) -> list[str]:
    if data is None:
        return []
    # keepends on "\n" only: a CRLF line keeps its "\r", as in git's own diffs
    text = data.decode("utf-8")
    lines = text.splitlines(keepends=True)
    if len(lines) == text.count("\n") + (not text.endswith("\n") and bool(text)):
        return lines  # no line break but \n (nor \r\n) in it: splitlines cut the same way
    return [line + "\n" for line in text.split("\n")[:-1]] + (
        [text.rsplit("\n", 1)[-1]] if not text.endswith("\n") and text else []
    )


Opcode = tuple[str, int, int, int, int]


def line_opcodes(a: list[str], b: list[str]) -> list[Opcode]:
    """difflib's opcodes, but only the lines between the common head and tail go through its
    matcher (as git does): on whole files with many repeated lines it is close to quadratic."""
    limit = min(len(a), len(b))
    head = 0
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    codes: list[Opcode] = [("equal", 0, head, 0, head)] if head else []
    matcher = difflib.SequenceMatcher(None, a[head : len(a) - tail], b[head : len(b) - tail])
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        code = (tag, i1 + head, i2 + head, j1 + head, j2 + head)
        if tag == "equal" and codes and codes[-1][0] == "equal":
            code = ("equal", codes[-1][1], code[2], codes[-1][3], code[4])
            codes.pop()
        codes.append(code)
    if tail:
        code = ("equal", len(a) - tail, len(a), len(b) - tail, len(b))
        if codes and codes[-1][0] == "equal":
            code = ("equal", codes[-1][1], len(a), codes[-1][3], len(b))
            codes.pop()
        codes.append(code)
    return codes


def _grouped(codes: list[Opcode], n: int) -> list[list[Opcode]]:
    """Hunks with `n` lines of context: difflib.SequenceMatcher.get_grouped_opcodes' rule."""
    if not any(tag != "equal" for tag, *_ in codes):
        return []
    codes = list(codes)
    tag, i1, i2, j1, j2 = codes[0]
    if tag == "equal":
        codes[0] = (tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2)
    tag, i1, i2, j1, j2 = codes[-1]
    if tag == "equal":
        codes[-1] = (tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n))
    groups: list[list[Opcode]] = []
    group: list[Opcode] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > 2 * n:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            groups.append(group)
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        groups.append(group)
    return groups


def _hunks(a: list[str], b: list[str], n: int) -> tuple[list[str], int, int]:
    """The hunks' lines, and the numbers of added and removed lines."""
    out: list[str] = []
    added = removed = 0
    for group in _grouped(line_opcodes(a, b), n):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in a[i1:i2]]
                continue
            if tag in ("replace", "delete"):
                out += ["-" + line for line in a[i1:i2]]
                removed += i2 - i1
            if tag in ("replace", "insert"):
                out += ["+" + line for line in b[j1:j2]]
                added += j2 - j1
    return out, added, removed


def _range(start: int, stop: int) -> str:
    """A unified hunk range, as difflib formats it."""
    first, length = start + 1, stop - start
    if length == 1:
        return f"{first}"
    if not length:
        first -= 1
    return f"{first},{length}"
