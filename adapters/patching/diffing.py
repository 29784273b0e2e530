"""The unified diff of a plan's effect, git-style (a/ b/ prefixes, creations, deletions,
renames, `\\ No newline at end of file`), so that `git apply` reproduces the plan's bytes."""

from __future__ import annotations

import difflib

from adapters.patching.model import Plan, PlannedFile

NO_NEWLINE = "\\ No newline at end of file\n"


def unified_diff(plan: Plan, context: int = 3) -> str:
    return "".join(file_diff(planned, context) for planned in plan.files)


def file_diff(planned: PlannedFile, context: int = 3) -> str:
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
    body = list(difflib.unified_diff(old, new, n=context, lineterm="\n"))
    if not body:
        return "".join(head) if planned.action != "update" else ""
    from_name = "/dev/null" if planned.before is None else f"a/{old_name}"
    to_name = "/dev/null" if planned.after is None else f"b/{planned.path}"
    out = [*head, f"--- {from_name}\n", f"+++ {to_name}\n"]
    for line in body[2:]:  # difflib's own ---/+++ lines carry no names
        out.append(line)
        if not line.endswith("\n"):
            out += ["\n", NO_NEWLINE]
    return "".join(out)


def _lines(data: bytes | None) -> list[str]:
    if data is None:
        return []
    # keepends on "\n" only: a CRLF line keeps its "\r", as in git's own diffs
    text = data.decode("utf-8")
    return [line + "\n" for line in text.split("\n")[:-1]] + (
        [text.rsplit("\n", 1)[-1]] if not text.endswith("\n") and text else []
    )
