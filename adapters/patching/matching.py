"""Locating a hunk's old lines in a file, never silently at the wrong place.

Rules (SPEC §5), for a hunk with k >= 1 old lines in a file of n lines:

1. Levels are tried in order (normalize.py: exact, trailing whitespace, loose). The FIRST level
   with at least one match decides; later levels are not consulted.
2. One match at that level: taken, whatever the hints say (the lines themselves are the
   strongest evidence a model gives).
3. Several matches at that level: narrowed, in this order, by
   a. `*** End of File`: the one match ending at the last line, if there is exactly one;
   b. `@@` anchors (V4A): each anchor chain instance (an occurrence of the first anchor, then
      the first occurrence of each next anchor after it) selects the first match after its
      last anchor line; if all instances select one and the same match, it is taken; if they
      select several, only those stay in the running;
   c. the line-number hint (unified `@@ -a,b`): the match nearest to line a is taken when it
      starts exactly there, or is less than half as far from it as the next nearest (clearly
      closer: stale numbers shift a little, they do not point between two copies); else
   d. rejected as ambiguous with every candidate's line number.
   Hunks are otherwise located independently (no cursor): their order in the patch is not used.
4. Pure insertions (k = 0): at the top of an empty file; else at the hint (unified: after line
   a); else right after the single anchor-chain instance; else at the end of the file (codex).
5. Anchors match a line at the first level where some line equals them, else (loose) lines
   that start with the anchor followed by a non-identifier character ("def f" ~ "def f(x):").

Cost: every level keeps a dict from normalized line to positions, built once per file and
level (O(n)); a hunk is looked up through its RAREST line, so it costs O(k x occurrences of
that line) rather than O(n x k).
"""

from __future__ import annotations

import bisect
import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from adapters.patching.model import Hunk
from adapters.patching.normalize import EXACT, LEVELS, LOOSE, NORMALIZERS, leading_whitespace

CLOSEST_MAX_LINES = 8
_VOTE_SKIP = 64  # lines more common than this (blank, "}") say nothing about where we are
_SCAN_MAX_HITS = 32  # an exact scan for a line seen more often falls back to the table


@dataclass(frozen=True, slots=True)
class Reindent:
    """The file's lines sit `add` deeper (or `remove` shallower) than the patch's."""

    add: str = ""
    remove: str = ""


@dataclass(frozen=True, slots=True)
class Match:
    start: int  # 0-based first old line
    length: int  # number of old lines
    level: int
    reindent: Reindent | None = None


@dataclass(frozen=True, slots=True)
class NoMatch:
    reason: str  # not_found | ambiguous
    message: str
    candidates: tuple[int, ...] = ()  # 1-based
    closest: tuple[tuple[int, str], ...] = ()


class LineIndex:
    """Lazily built per-level views of one file's lines."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = lines
        self._norm: dict[int, list[str]] = {}
        self._pos: dict[int, dict[str, list[int]]] = {}

    def normalized(self, level: int) -> list[str]:
        if level not in self._norm:
            if level == EXACT:
                self._norm[level] = list(self.lines)
            else:
                self._norm[level] = [NORMALIZERS[level](line) for line in self.lines]
        return self._norm[level]

    def positions(self, level: int) -> dict[str, list[int]]:
        if level not in self._pos:
            table: dict[str, list[int]] = {}
            for i, key in enumerate(self.normalized(level)):
                table.setdefault(key, []).append(i)
            self._pos[level] = table
        return self._pos[level]

    def find_all(self, old: Sequence[str], level: int) -> list[int]:
        """Every 0-based start where `old` matches at `level`, ascending."""
        if level == EXACT and EXACT not in self._pos:
            found = self._scan_exact(old)
            if found is not None:
                return found
        norm = NORMALIZERS[level]
        wanted = [norm(line) for line in old]
        table = self.positions(level)
        rarest, hits = 0, table.get(wanted[0], [])
        for i in range(1, len(wanted)):
            if not hits:
                break
            other = table.get(wanted[i], [])
            if len(other) < len(hits):
                rarest, hits = i, other
        lines, k, n = self.normalized(level), len(wanted), len(self.lines)
        starts = []
        for p in hits:
            s = p - rarest
            if s >= 0 and s + k <= n and lines[s : s + k] == wanted:
                starts.append(s)
        return starts

    def _scan_exact(self, old: Sequence[str]) -> list[int] | None:
        """An exact match without building the position table: scan (at C speed) for the
        hunk's longest line, likely its rarest. None when that line is too common to be
        worth it (the table then bounds the work on files of repeated lines)."""
        wanted, k = list(old), len(old)
        offset = max(range(k), key=lambda i: len(wanted[i]))
        key, hits, at = wanted[offset], 0, -1
        starts: list[int] = []
        lines = self.lines
        as_list = lines if isinstance(lines, list) else list(lines)
        while True:
            try:
                at = as_list.index(key, at + 1)
            except ValueError:
                return starts
            hits += 1
            if hits > _SCAN_MAX_HITS:
                return None
            s = at - offset
            if s >= 0 and s + k <= len(as_list) and as_list[s : s + k] == wanted:
                starts.append(s)

    def anchor_positions(self, anchor: str) -> list[int]:
        for level in LEVELS:
            hits = self.positions(level).get(NORMALIZERS[level](anchor), [])
            if hits:
                return hits
        key = NORMALIZERS[LOOSE](anchor)
        if not key:
            return []
        return [
            i
            for i, line in enumerate(self.normalized(LOOSE))
            if line.startswith(key) and (len(line) == len(key) or not _ident(line[len(key)]))
        ]


def _ident(char: str) -> bool:
    return char.isalnum() or char == "_"


def locate(index: LineIndex, hunk: Hunk) -> Match | NoMatch:
    old = hunk.old_lines
    n = len(index.lines)
    if not old:
        return _locate_insertion(index, hunk)
    for level in LEVELS:
        found = index.find_all(old, level)
        if not found:
            continue
        chosen = _disambiguate(index, hunk, found, len(old))
        if len(chosen) == 1:
            start = chosen[0]
            reindent = _reindent(old, index.lines[start : start + len(old)]) if level else None
            return Match(start, len(old), level, reindent)
        numbers = tuple(c + 1 for c in chosen)
        return NoMatch(
            "ambiguous",
            f"the hunk's {len(old)} old line(s) match at {len(chosen)} places (lines "
            f"{', '.join(map(str, numbers))}); add context lines"
            + (" or an @@ anchor" if not hunk.anchors else "")
            + " so that exactly one place matches",
            candidates=numbers,
        )
    closest = closest_lines(index, old)
    where = f" (closest: from line {closest[0][0]})" if closest else ""
    return NoMatch(
        "not_found",
        f"the hunk's {len(old)} old line(s) were not found in the file of {n} lines{where}",
        closest=closest,
    )


def _disambiguate(index: LineIndex, hunk: Hunk, found: list[int], k: int) -> list[int]:
    chosen = found
    if len(chosen) > 1 and hunk.end_of_file:
        at_end = [c for c in chosen if c + k == len(index.lines)]
        if len(at_end) == 1:
            return at_end
    if len(chosen) > 1 and hunk.anchors:
        selected = sorted(
            {
                chosen[i]
                for end in _anchor_chain_ends(index, hunk.anchors)
                if (i := bisect.bisect_right(chosen, end)) < len(chosen)
            }
        )
        if selected:
            chosen = selected
    if len(chosen) > 1 and hunk.line_hint is not None:
        target = hunk.line_hint - 1
        by_distance = sorted(chosen, key=lambda c: abs(c - target))
        d0, d1 = abs(by_distance[0] - target), abs(by_distance[1] - target)
        if d0 == 0 or 2 * d0 < d1:
            return [by_distance[0]]
    return chosen


def _anchor_chain_ends(index: LineIndex, anchors: Sequence[str]) -> list[int]:
    """The line of the last anchor for each instance of the chain (see the module doc)."""
    tables = [index.anchor_positions(a) for a in anchors]
    ends = []
    for first in tables[0]:
        pos: int | None = first
        for table in tables[1:]:
            i = bisect.bisect_right(table, pos) if pos is not None else len(table)
            pos = table[i] if i < len(table) else None
        if pos is not None:
            ends.append(pos)
    return ends


def _locate_insertion(index: LineIndex, hunk: Hunk) -> Match | NoMatch:
    n = len(index.lines)
    if n == 0:
        return Match(0, 0, 0)
    if hunk.line_hint is not None:
        return Match(min(max(hunk.line_hint, 0), n), 0, 0)
    if hunk.anchors:
        ends = sorted(set(_anchor_chain_ends(index, hunk.anchors)))
        if len(ends) == 1:
            return Match(ends[0] + 1, 0, 0)
        if not ends:
            return NoMatch("not_found", f"anchor {' / '.join(hunk.anchors)!r} not found")
        return NoMatch(
            "ambiguous",
            f"anchor {' / '.join(hunk.anchors)!r} is at several places; add context lines",
            candidates=tuple(e + 1 for e in ends),
        )
    return Match(n, 0, 0)


def _reindent(old: Sequence[str], actual: Sequence[str]) -> Reindent | None:
    """A single, consistent indentation offset between the patch's old lines and the file's
    (all non-blank lines shifted by the same prefix), or None: nothing to carry over."""
    pairs = [
        (leading_whitespace(p), leading_whitespace(f))
        for p, f in zip(old, actual, strict=True)
        if p.strip() and f.strip()
    ]
    if not pairs or all(p == f for p, f in pairs):
        return None
    p0, f0 = pairs[0]
    if f0.endswith(p0) and len(f0) > len(p0):
        add = f0[: len(f0) - len(p0)]
        if all(f == add + p for p, f in pairs):
            return Reindent(add=add)
    if p0.endswith(f0) and len(p0) > len(f0):
        remove = p0[: len(p0) - len(f0)]
        if all(p == remove + f for p, f in pairs):
            return Reindent(remove=remove)
    return None


def reindented(lines: Sequence[str], reindent: Reindent | None) -> list[str]:
    """Added lines shifted like the matched ones; unchanged when any non-blank line cannot
    take the shift (conservative: a half re-indented block is worse than none)."""
    if reindent is None:
        return list(lines)
    if reindent.add:
        return [reindent.add + line if line.strip() else line for line in lines]
    out = []
    for line in lines:
        if not line.strip():
            out.append(line)
        elif line.startswith(reindent.remove):
            out.append(line[len(reindent.remove) :])
        else:
            return list(lines)
    return out


def closest_lines(
    index: LineIndex, old: Sequence[str], limit: int = CLOSEST_MAX_LINES
) -> tuple[tuple[int, str], ...]:
    """The file's region most like `old`, up to `limit` lines around its first difference,
    as (1-based line, text). Candidate regions come from loose-equal lines (votes), else from
    difflib's close matches among distinct lines, then difflib ranks them: linear in n."""
    n, k = len(index.lines), len(old)
    if n == 0 or k == 0:
        return ()
    norm = NORMALIZERS[LOOSE]
    wanted = [norm(line) for line in old]
    table = index.positions(LOOSE)
    votes: Counter[int] = Counter()
    for i, key in enumerate(wanted):
        hits = table.get(key, []) if key else []
        if len(hits) <= _VOTE_SKIP:
            votes.update(min(max(p - i, 0), n - 1) for p in hits)
    starts = [s for s, _ in votes.most_common(8)]
    if not starts:
        distinct = [key for key in table if key]
        for i, key in sorted(enumerate(wanted), key=lambda t: -len(t[1]))[:3]:
            for near in difflib.get_close_matches(key, distinct, n=3, cutoff=0.5):
                starts.extend(min(max(p - i, 0), n - 1) for p in table[near][:4])
    if not starts:
        # nothing resembles the hunk: a small file is shown whole, a large one not at all
        return tuple((i + 1, line) for i, line in enumerate(index.lines)) if n <= limit else ()
    lines = index.normalized(LOOSE)
    joined = "\n".join(wanted)

    def score(s: int) -> float:
        return difflib.SequenceMatcher(None, joined, "\n".join(lines[s : s + k])).ratio()

    best = max(dict.fromkeys(starts), key=score)
    first_diff = next((j for j in range(min(k, n - best)) if lines[best + j] != wanted[j]), 0)
    begin = max(0, best + first_diff - 2)  # two lines of lead-in before the first difference
    end = min(n, begin + min(limit, k + 4))
    return tuple((i + 1, index.lines[i]) for i in range(begin, end))
