"""Globs to regexes that cannot backtrack catastrophically: the one translation used by the
watcher's include/exclude rules, the sandbox's excludes and `GET /tree?glob=`."""

from __future__ import annotations

import re


def translate_glob(glob: str) -> str:
    """Glob to a regex for `fullmatch` that cannot backtrack catastrophically.

    `*`, `?` and classes stay within one path component; `**` as a whole component spans
    directories (`**/` is zero or more of them; a trailing `/**` is everything below);
    other runs of `*` are one `*` (as in git). A naive translation (`[^/]*` per star) takes
    exponential time on `*a*a*a*a*a*ab` against a long name, holding the GIL. Here every
    piece that a star precedes, except the last of its component, is matched at its leftmost
    place inside an atomic group (`(?>...)`), as CPython's fnmatch does, and so is every block
    of components that a `**` precedes except the last: the pieces and blocks between stars are
    fixed-length, so the leftmost place is never worse, and nothing is tried twice.
    """
    components = [_component(c) for c in _components(glob)]
    blocks: list[list[str]] = [[]]  # components between globstars (None marks one)
    for comp in components:
        if comp is None:
            if blocks[-1] or len(blocks) == 1:
                blocks.append([])
        else:
            blocks[-1].append(comp)
    if len(blocks) == 1:
        return "/".join(blocks[0])
    out = ["/".join(blocks[0])]
    for i, block in enumerate(blocks[1:], start=1):
        sep = "/" if any(blocks[:i]) else ""
        if not block:  # a trailing globstar: anything below (or, alone, anything at all)
            out.append(sep + ".*" if sep else ".*")
        elif i < len(blocks) - 1:
            out.append(f"(?>{sep}(?:[^/]*/)*?{'/'.join(block)}(?=/))")
        else:
            out.append(f"{sep}(?:[^/]*/)*{'/'.join(block)}")
    return "".join(out)


def _components(glob: str) -> list[str]:
    """The glob split at each `/` outside a class and not escaped."""
    parts, current, i, n = [], [], 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "\\" and i + 1 < n:
            current.append(glob[i : i + 2])
            i += 2
            continue
        if c == "[" and (end := glob.find("]", i + 2)) != -1 and "/" not in glob[i:end]:
            current.append(glob[i : end + 1])
            i = end + 1
            continue
        if c == "/":
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def _component(glob: str) -> str | None:
    """One component's regex (no `/` in it), or None for a globstar (`**`)."""
    if len(glob) >= 2 and set(glob) == {"*"}:
        return None
    pieces: list[list[str]] = [[]]  # the fixed-length pieces between stars
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            while i < n and glob[i] == "*":
                i += 1
            pieces.append([])
            continue
        if c == "?":
            pieces[-1].append("[^/]")
        elif c == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : end].replace("\\", "\\\\").replace("[", "\\[")
            if body.startswith("!"):
                body = "^/" + body[1:]
            pieces[-1].append("[" + body + "]")
            i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            pieces[-1].append(re.escape(glob[i]))
        else:
            pieces[-1].append(re.escape(c))
        i += 1
    texts = ["".join(p) for p in pieces]
    if len(texts) == 1:
        return texts[0]
    middle = "".join(f"(?>[^/]*?{t})" for t in texts[1:-1] if t)
    return f"{texts[0]}{middle}[^/]*{texts[-1]}"
