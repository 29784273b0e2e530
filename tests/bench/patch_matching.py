"""Patch matching cost versus file size: a hunk in a 1,000-line file and in a 10,000-line file
(linear growth means a ratio near 10, the brief allows up to ~12).

    .venv/bin/python tests/bench/patch_matching.py [--repeat N]

Measures, per size: locating one hunk (index build included), the whole plan() of a V4A
patch (decode, match, splice, encode), a hunk that needs the loose level, and a hunk that is
not found (closest-lines search included). Not collected by pytest (tests/bench is excluded).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapters.patching import MemoryView, parse_body, plan
from adapters.patching.matching import LineIndex, locate
from adapters.patching.model import Hunk, HunkLine


def source(n_lines: int) -> list[str]:
    """Python-looking code with plenty of repeated lines (blank, return, pass)."""
    lines: list[str] = []
    i = 0
    while len(lines) < n_lines:
        lines += [
            f"def function_{i}(value):",
            f"    result = value * {i % 7} + {i}",
            "    if result:",
            "        return result",
            "    return None",
            "",
        ]
        i += 1
    return lines[:n_lines]


def hunk_at(lines: list[str], at: int, indent_slip: bool = False) -> Hunk:
    body = [HunkLine(" ", line) for line in lines[at - 3 : at]]
    body += [HunkLine("-", lines[at]), HunkLine("+", lines[at] + "  # changed")]
    body += [HunkLine(" ", line) for line in lines[at + 1 : at + 4]]
    if indent_slip:
        body = [HunkLine(h.kind, h.text.strip()) for h in body]
    return Hunk(tuple(body))


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(n_lines: int, repeat: int) -> dict[str, float]:
    lines = source(n_lines)
    at = n_lines // 2 + 1  # the line "    result = ..." of a function in the middle
    exact, loose = hunk_at(lines, at), hunk_at(lines, at, indent_slip=True)
    missing = Hunk((HunkLine("-", "    result = value * 99 + -1"), HunkLine("+", "x")))
    data = ("\n".join(lines) + "\n").encode()
    patch = (
        "*** Begin Patch\n*** Update File: big.py\n"
        + "\n".join(
            ("+" if h.kind == "+" else "-" if h.kind == "-" else " ") + h.text for h in exact.lines
        )
        + "\n*** End Patch\n"
    )
    parsed = parse_body({"patch": patch})
    view = MemoryView({"big.py": data}, max_file_bytes=100 * 1024 * 1024)
    return {
        "locate (exact)": best_of(lambda: locate(LineIndex(lines), exact), repeat),
        "locate (loose level)": best_of(lambda: locate(LineIndex(lines), loose), repeat),
        "not found + closest": best_of(lambda: locate(LineIndex(lines), missing), repeat),
        "plan() whole patch": best_of(lambda: plan(parsed, view), repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    small, large = measure(1_000, args.repeat), measure(10_000, args.repeat)
    print(f"{'operation':<24}{'1,000 lines':>14}{'10,000 lines':>15}{'ratio':>8}")
    for name in small:
        ratio = large[name] / small[name]
        print(f"{name:<24}{small[name] * 1e3:>11.3f} ms{large[name] * 1e3:>12.3f} ms{ratio:>8.1f}")


if __name__ == "__main__":
    main()
