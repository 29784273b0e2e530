"""Applying located hunks to a file's lines.

- Removed and context lines come from the FILE (its exact text and endings), so a tolerant
  match never rewrites lines the patch did not mean to change; added lines come from the patch
  (shifted to the file's indentation when the match was indentation-tolerant, see
  matching.reindented) and take the file's dominant line ending.
- Diff hunks are located in the original file, applied in file order whatever their order in
  the patch, and must not overlap. SEARCH/REPLACE blocks apply one after the other.
- The final newline stays as it was, unless a hunk that reaches the end of the file says
  otherwise with `\\ No newline at end of file`.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.patching.matching import LineIndex, Match, NoMatch, locate, reindented
from adapters.patching.model import FailureReason, Hunk, HunkFailure
from adapters.patching.text import TextFile


def apply_hunks(
    tf: TextFile, hunks: Sequence[Hunk], path: str, *, sequential: bool = False
) -> tuple[TextFile | None, list[HunkFailure]]:
    """The new file, or None and every failing hunk."""
    if sequential:
        return _apply_sequential(tf, hunks, path)
    index = LineIndex(tf.lines)
    located: list[tuple[Match, int, Hunk]] = []
    failures: list[HunkFailure] = []
    for i, hunk in enumerate(hunks):
        result = locate(index, hunk)
        if isinstance(result, NoMatch):
            failures.append(_failure(path, i, hunk, result))
        else:
            located.append((result, i, hunk))
    located.sort(key=lambda t: (t[0].start, t[1]))
    end, owner = -1, 0  # the furthest line any earlier hunk claims, and that hunk
    for match, i, hunk in located:
        if match.start < end:
            failures.append(
                HunkFailure(
                    path,
                    i,
                    hunk.source,
                    "overlap",
                    f"hunk {i + 1} (line {match.start + 1}) overlaps hunk {owner + 1} (up to "
                    f"line {end}); merge them into one hunk",
                    candidates=(match.start + 1,),
                )
            )
        elif match.start + match.length > end:
            end, owner = match.start + match.length, i
    if failures:
        failures.sort(key=lambda f: f.hunk_index or 0)
        return None, failures
    return _splice(tf, [(m, h) for m, _, h in located]), []


def _apply_sequential(
    tf: TextFile, hunks: Sequence[Hunk], path: str
) -> tuple[TextFile | None, list[HunkFailure]]:
    current = tf
    failures: list[HunkFailure] = []
    for i, hunk in enumerate(hunks):
        result = locate(LineIndex(current.lines), hunk)
        if isinstance(result, NoMatch):
            failures.append(_failure(path, i, hunk, result))
        else:
            current = _splice(current, [(result, hunk)])
    return (None, failures) if failures else (current, [])


def _failure(path: str, i: int, hunk: Hunk, result: NoMatch) -> HunkFailure:
    reason: FailureReason = "ambiguous" if result.reason == "ambiguous" else "not_found"
    return HunkFailure(
        path,
        i,
        hunk.source,
        reason,
        f"hunk {i + 1}: {result.message}",
        candidates=result.candidates,
        closest=result.closest,
    )


def _splice(tf: TextFile, located: Sequence[tuple[Match, Hunk]]) -> TextFile:
    n = len(tf.lines)
    eol = tf.eol if any(tf.endings) else next((h.eol for _, h in located if h.eol), "\n")
    lines: list[str] = []
    endings: list[str] = []
    # an empty file has no final newline to keep: added lines are whole lines
    want_final_newline = tf.final_newline or not tf.lines
    cursor = 0
    for match, hunk in located:
        lines.extend(tf.lines[cursor : match.start])
        endings.extend(tf.endings[cursor : match.start])
        added = iter(reindented(hunk.added, match.reindent))
        old = match.start
        for line in hunk.lines:
            if line.kind == "+":
                lines.append(next(added))
                endings.append(eol)
            else:
                if line.kind == " ":
                    lines.append(tf.lines[old])
                    endings.append(tf.endings[old])
                old += 1
        cursor = match.start + match.length
        if cursor == n:
            if hunk.new_no_newline:
                want_final_newline = False
            elif hunk.old_no_newline:
                want_final_newline = True
    lines.extend(tf.lines[cursor:])
    endings.extend(tf.endings[cursor:])
    # A line that was last (no ending) may now be followed by others.
    last = len(endings) - 1
    at = -1
    while True:
        try:
            at = endings.index("", at + 1, last)  # at C speed: there is rarely one
        except ValueError:
            break
        endings[at] = eol
    if endings:
        if want_final_newline and not endings[-1]:
            endings[-1] = eol
        elif not want_final_newline:
            endings[-1] = ""
    return TextFile(lines, endings, tf.bom)
