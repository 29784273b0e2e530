"""Files and +/- line counts of a patch, from whatever its event carries.

Event data is still settling, so this reads every shape it may reasonably find: per-file counts
in `files` (added/removed, additions/deletions, plus/minus), else the unified `diff` text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.slack.message import esc

_ADDED_KEYS = ("added", "additions", "plus", "lines_added")
_REMOVED_KEYS = ("removed", "deletions", "minus", "lines_removed")


@dataclass(frozen=True, slots=True)
class FileStat:
    path: str
    action: str = ""
    added: int | None = None
    removed: int | None = None


def _count(entry: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def from_unified_diff(diff: str) -> dict[str, tuple[int, int]]:
    """path -> (added, removed), counting body lines of each file's hunks."""
    stats: dict[str, list[int]] = {}
    current: list[int] | None = None
    minus_path = ""
    for line in diff.splitlines():
        if line.startswith("--- "):
            minus_path = _strip_prefix(line[4:])
            current = None
        elif line.startswith("+++ "):
            path = _strip_prefix(line[4:])
            path = minus_path if path == "/dev/null" else path
            current = stats.setdefault(path, [0, 0])
        elif current is not None and line.startswith("+"):
            current[0] += 1
        elif current is not None and line.startswith("-"):
            current[1] += 1
    return {path: (a, r) for path, (a, r) in stats.items()}


def _strip_prefix(name: str) -> str:
    name = name.split("\t", 1)[0].strip()
    return name[2:] if name.startswith(("a/", "b/")) else name


def file_stats(data: Mapping[str, Any]) -> list[FileStat]:
    """Per-file stats from `data["files"]`, filled in from `data["diff"]` where counts lack."""
    diff = data.get("diff")
    from_diff = from_unified_diff(diff) if isinstance(diff, str) and diff else {}
    out: list[FileStat] = []
    files = data.get("files")
    for entry in files if isinstance(files, list) else []:
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, Mapping) or not entry.get("path"):
            continue
        path = str(entry["path"])
        added, removed = _count(entry, _ADDED_KEYS), _count(entry, _REMOVED_KEYS)
        if added is None and removed is None and path in from_diff:
            added, removed = from_diff[path]
        out.append(FileStat(path, str(entry.get("action", "")), added, removed))
    if not out:
        out = [FileStat(path, "", a, r) for path, (a, r) in from_diff.items()]
    return out


def summary_lines(stats: list[FileStat], max_files: int = 10) -> list[str]:
    """One mrkdwn line per file: `path` (action) +a -r; paths escaped."""
    lines = []
    for stat in stats[:max_files]:
        counts = "" if stat.added is None else f" +{stat.added} -{stat.removed or 0}"
        action = f" ({stat.action})" if stat.action and stat.action != "update" else ""
        lines.append(f"`{esc(stat.path)}`{action}{counts}")
    if len(stats) > max_files:
        lines.append(f"…and {len(stats) - max_files} more files")
    return lines


def totals(stats: list[FileStat]) -> str:
    n = len(stats)
    text = f"{n} file{'s' if n != 1 else ''}"
    if any(s.added is not None for s in stats):
        text += f", +{sum(s.added or 0 for s in stats)} -{sum(s.removed or 0 for s in stats)}"
    return text
