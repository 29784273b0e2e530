"""The three matching levels, from strict to tolerant (SPEC §5).

0 exact:        the line as it is.
1 trailing:     trailing whitespace ignored (models and editors drop or add it freely).
2 loose:        leading and trailing whitespace ignored, and typographic look-alikes folded to
                ASCII (curly quotes, dashes, non-breaking and thin spaces, ellipsis, zero-width
                characters): chat front-ends "prettify" code the model copies back.
Inner whitespace is never collapsed: in most languages it can matter (strings, Python).
"""

from __future__ import annotations

from collections.abc import Callable

EXACT, TRAILING, LOOSE = 0, 1, 2
LEVELS = (EXACT, TRAILING, LOOSE)
LEVEL_NAMES = {EXACT: "exact", TRAILING: "ignoring trailing whitespace", LOOSE: "loose"}

_FOLD: dict[int, str] = {}
for _chars, _ascii in (
    ("\u2018\u2019\u201a\u201b\u2032\u2035\u00b4\u02bc", "'"),
    ("\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb", '"'),
    ("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
    ("\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000", " "),
):
    for _c in _chars:
        _FOLD[ord(_c)] = _ascii
_FOLD[ord("\u2026")] = "..."
for _c in "\u200b\u200c\u200d\u2060\ufeff":
    _FOLD[ord(_c)] = ""


def exact(line: str) -> str:
    return line


def trailing(line: str) -> str:
    return line.rstrip()


def loose(line: str) -> str:
    return line.translate(_FOLD).strip()


NORMALIZERS: dict[int, Callable[[str], str]] = {EXACT: exact, TRAILING: trailing, LOOSE: loose}


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]
