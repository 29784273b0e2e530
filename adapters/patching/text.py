"""File bytes <-> lines, keeping every line's own ending so untouched lines come back
byte-for-byte (mixed LF/CRLF files included) and the final newline is never lost or invented.
"""

from __future__ import annotations

from dataclasses import dataclass

BOM = "\ufeff"


class BinaryContent(ValueError):
    """Not UTF-8 text (invalid UTF-8 or a NUL byte)."""


@dataclass(slots=True)
class TextFile:
    """`lines[i]` without its ending, `endings[i]` in {"\\n", "\\r\\n", ""}; only the last
    line may have "" (no final newline). An empty file has no lines."""

    lines: list[str]
    endings: list[str]
    bom: bool = False

    @property
    def eol(self) -> str:
        """The dominant ending, used for added lines; LF on a tie or without any."""
        crlf = self.endings.count("\r\n")
        return "\r\n" if crlf > self.endings.count("\n") else "\n"

    @property
    def final_newline(self) -> bool:
        return bool(self.endings) and self.endings[-1] != ""

    def copy(self) -> TextFile:
        return TextFile(list(self.lines), list(self.endings), self.bom)


def is_binary(data: bytes) -> bool:
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def decode(data: bytes) -> TextFile:
    if b"\0" in data:
        raise BinaryContent("contains a NUL byte")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BinaryContent(f"not UTF-8 at byte {exc.start}") from exc
    bom = text.startswith(BOM)
    if bom:
        text = text[1:]
    return TextFile(*split_lines(text), bom=bom)


def split_lines(text: str) -> tuple[list[str], list[str]]:
    # Only \n and \r\n end lines (as git sees it); str.splitlines would also split on
    # \x0c, \u2028... which are ordinary characters inside source lines.
    if not text:
        return [], []
    if "\r" not in text:  # the common case, without a Python loop over the lines
        pieces = text.split("\n")
        if pieces[-1]:
            return pieces, ["\n"] * (len(pieces) - 1) + [""]
        pieces.pop()
        return pieces, ["\n"] * len(pieces)
    parts = text.split("\n")
    last = parts.pop()
    lines: list[str] = []
    endings: list[str] = []
    for part in parts:
        if part.endswith("\r"):
            lines.append(part[:-1])
            endings.append("\r\n")
        else:
            lines.append(part)
            endings.append("\n")
    if last:
        lines.append(last)
        endings.append("")
    return lines, endings


def join(tf: TextFile) -> str:
    if len(tf.lines) != len(tf.endings):
        raise ValueError("a TextFile has one ending per line")
    parts: list[str] = [""] * (2 * len(tf.lines))
    parts[::2] = tf.lines  # interleaved by slicing: no Python-level loop per line
    parts[1::2] = tf.endings
    return (BOM if tf.bom else "") + "".join(parts)


def encode(tf: TextFile) -> bytes:
    return join(tf).encode("utf-8")


def patch_lines(text: str) -> list[str]:
    """A patch's lines without endings; a CRLF patch (or a diff of a CRLF file) loses its
    \\r here, and the file's own endings are put back when applying."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
