"""The legacy hybrid block: pattern -> replacement over a whole file.

Literal by default. Regexes use the `regex` module with `timeout=`: a catastrophic pattern
such as `(a+)+$` on a long line is stopped after REGEX_TIMEOUT_S and reported, so no thread is
ever stuck in the matcher. The result's size is known before it is built (a 100 KB request
of a one-character pattern and a long replacement would build a 3 GB string): past `max_chars`
characters (at least as many bytes) it is refused as too large. In a file whose lines all end
with CRLF the pattern sees LF (as the
model wrote it) and CRLF is put back afterwards.
"""

from __future__ import annotations

from adapters.patching.matching import LineIndex, closest_lines
from adapters.patching.model import FailureReason, HunkFailure, SandboxViolation, TextReplace
from adapters.patching.text import TextFile, patch_lines, split_lines

REGEX_TIMEOUT_S = 1.0
MAX_CHARS = 1024 * 1024


class _TooLarge(Exception):
    pass


def apply_replace(
    tf: TextFile,
    rep: TextReplace,
    path: str,
    *,
    timeout_s: float = REGEX_TIMEOUT_S,
    max_chars: int = MAX_CHARS,
) -> tuple[TextFile | None, HunkFailure | None]:
    """The file with the replacement made, or the failure; SandboxViolation (too_large) when
    the result would exceed `max_chars`."""
    crlf = bool(tf.endings) and all(e in ("\r\n", "") for e in tf.endings)
    text = "".join(
        line + ("\n" if crlf and e else e) for line, e in zip(tf.lines, tf.endings, strict=True)
    )
    shown = f"pattern: {rep.pattern!r}"
    count = max(rep.count, 0)

    def fail(
        reason: FailureReason, message: str, closest: bool = False
    ) -> tuple[None, HunkFailure]:
        near = closest_lines(LineIndex(tf.lines), patch_lines(rep.pattern)) if closest else ()
        return None, HunkFailure(path, 0, shown, reason, message, closest=near)

    if rep.regex:
        import regex  # only for `regex: true` blocks: 1.4 MB a resident node need not carry

        size = len(text)

        def expand(match: regex.Match[str]) -> str:
            # the size is followed match by match, so the result never grows past the limit
            nonlocal size
            out: str = match.expand(rep.replacement)
            size += len(out) - (match.end() - match.start())
            if size > max_chars:
                raise _TooLarge
            return out

        try:
            compiled = regex.compile(rep.pattern)
            result, done = compiled.subn(expand, text, count=count, timeout=timeout_s)
        except _TooLarge:
            raise _too_large(path, max_chars) from None
        except TimeoutError:
            return fail(
                "regex_timeout",
                f"the regex ran longer than {timeout_s:g} s (catastrophic backtracking?); "
                "use a literal pattern or a simpler regex",
            )
        except (regex.error, IndexError) as exc:  # IndexError: a bad group in the template
            return fail("invalid_regex", f"invalid regex or replacement: {exc}")
    else:
        if not rep.pattern:
            return fail("invalid_regex", "the pattern is empty")
        done = text.count(rep.pattern)
        if count:
            done = min(done, count)
        if len(text) + done * (len(rep.replacement) - len(rep.pattern)) > max_chars:
            raise _too_large(path, max_chars)
        result = text.replace(rep.pattern, rep.replacement, count or -1)
    if not done:
        return fail("not_found", "the pattern does not occur in the file", closest=True)
    lines, endings = split_lines(result)
    if crlf:
        endings = ["\r\n" if e else e for e in endings]
    return TextFile(lines, endings, tf.bom), None


def _too_large(path: str, max_chars: int) -> SandboxViolation:
    return SandboxViolation(
        path, "too_large", f"the replacement would make the file larger than {max_chars} bytes"
    )
