"""Planning: every hunk of every file checked against the workspace before anything is
written, giving the exact bytes before and after each file, or every reason it cannot apply.

Several operations on one file apply in patch order, each on the previous one's result (two
SEARCH/REPLACE groups, an add then an update...); a move may not share its source or its
destination with any other operation (conflicting_ops), so the writer gets one clear rename.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TypeVar

from adapters.patching.applying import apply_hunks
from adapters.patching.model import (
    FailureReason,
    FileOp,
    HunkFailure,
    ParsedPatch,
    PatchDoesNotApply,
    Plan,
    PlannedFile,
    SandboxViolation,
)
from adapters.patching.replacing import REGEX_TIMEOUT_S, apply_replace
from adapters.patching.text import BOM, BinaryContent, TextFile, decode, encode
from adapters.patching.view import WorkspaceView

T = TypeVar("T")


def plan(
    parsed: ParsedPatch, view: WorkspaceView, *, regex_timeout_s: float = REGEX_TIMEOUT_S
) -> Plan:
    """The plan, or PatchDoesNotApply listing every failing hunk and every sandbox violation."""
    return _Planner(view, regex_timeout_s).run(parsed)


class _Planner:
    def __init__(self, view: WorkspaceView, regex_timeout_s: float) -> None:
        self.view = view
        self.regex_timeout_s = regex_timeout_s
        self.failures: list[HunkFailure] = []
        self.violations: list[SandboxViolation] = []
        self.original: dict[str, bytes | None] = {}
        self.current: dict[str, bytes | None] = {}
        self.order: list[str] = []  # paths in the order the patch first touches them
        self.touched: set[str] = set()
        self.broken: set[str] = set()  # unreadable or in a conflicting move: skipped
        self.moves: dict[str, str] = {}  # destination -> source

    def run(self, parsed: ParsedPatch) -> Plan:
        resolved = [(op, self._resolve(op.path), self._destination(op)) for op in parsed.ops]
        uses = Counter(
            p for _, src, dst in resolved for p in (src, dst if dst != src else None) if p
        )
        for op, src, dst in resolved:
            if src is None or (op.action == "move" and dst is None):
                continue
            if op.action == "move" and dst is not None and (uses[src] > 1 or uses[dst] > 1):
                self._fail(
                    op.path,
                    "conflicting_ops",
                    "a moved file (or its new name) is "
                    "touched by another operation of the patch; split the patch",
                )
                self.broken.update((src, dst))
                continue
            if self._load(src) and (dst is None or self._load(dst)):
                self._apply(op, src, dst)
        self._check_base(parsed.base)
        for path in self.touched:
            after = self.current[path]
            if after is not None and after != self.original[path]:
                self._guard(self.view.check_content, path, after)
        if self.failures or self.violations:
            raise PatchDoesNotApply(tuple(self.failures), tuple(self.violations))
        return Plan(parsed.format, tuple(self._planned()))

    # -- operations

    def _apply(self, op: FileOp, path: str, dst: str | None) -> None:
        before = self.current[path]
        if op.action == "add":
            if before is not None:
                self._fail(op.path, "already_exists", f"{op.path} already exists; update it")
            else:
                self._set(path, _content(op.content or "", None))
            return
        if op.action == "write":
            self._set(path, _content(op.content or "", before))
            return
        if before is None:
            self._fail(op.path, "missing_file", f"{op.path} does not exist")
            return
        if (
            op.action == "move"
            and dst is not None
            and dst != path
            and self.current[dst] is not None
        ):
            self._fail(op.path, "target_exists", f"cannot move onto existing {op.new_path}")
            return
        if op.action == "delete" and not op.hunks:
            self._set(path, None)
            return
        # after a failed op, later ops on the file still run (on its last good content) so
        # that every failure is reported at once
        after = self._edit(op, path, before)
        if after is None:
            return
        if op.action == "delete":
            if after.strip():
                self._fail(
                    op.path,
                    "delete_mismatch",
                    "the deletion's lines are not the "
                    "whole file; delete it without hunks or re-read it",
                )
            else:
                self._set(path, None)
        elif op.action == "move" and dst is not None and dst != path:
            self._set(path, None)
            self._set(dst, after)
            self.moves[dst] = path
        else:
            self._set(path, after)

    def _edit(self, op: FileOp, path: str, data: bytes) -> bytes | None:
        """The file after the op's hunks or replacement; None (failures recorded) if not."""
        if not op.hunks and op.replace is None:
            return data
        try:
            tf = decode(data)
        except BinaryContent as exc:
            self.violations.append(SandboxViolation(op.path, "binary", str(exc)))
            return None
        result: TextFile | None
        if op.replace is not None:
            try:
                result, failure = apply_replace(
                    tf,
                    op.replace,
                    op.path,
                    timeout_s=self.regex_timeout_s,
                    max_chars=self.view.max_file_bytes,
                )
            except SandboxViolation as violation:
                self.violations.append(violation)
                return None
            if failure is not None:
                self.failures.append(failure)
        else:
            result, failures = apply_hunks(tf, op.hunks, op.path, sequential=op.sequential)
            self.failures.extend(failures)
        return None if result is None else encode(result)

    def _check_base(self, base: Mapping[str, str]) -> None:
        for path, expected in base.items():
            resolved = self._resolve(path)
            if resolved is None or not self._load(resolved):
                continue
            data = self.original[resolved]
            actual = None if data is None else hashlib.sha256(data).hexdigest()
            if actual != expected:
                self._fail(
                    path,
                    "stale_base",
                    f"{path} changed since the patch was written (base {expected[:12]}..., "
                    f"now {actual[:12] + '...' if actual else 'absent'}); re-read it and redo "
                    "the patch",
                )

    # -- state

    def _resolve(self, path: str) -> str | None:
        return self._guard(lambda: self.view.resolve(path, for_write=True))

    def _destination(self, op: FileOp) -> str | None:
        return self._resolve(op.new_path) if op.action == "move" and op.new_path else None

    def _load(self, path: str) -> bool:
        if path not in self.original:
            self.order.append(path)
            try:
                data = self.view.read(path)
            except SandboxViolation as violation:
                self.violations.append(violation)
                self.broken.add(path)
                data = None
            self.original[path] = self.current[path] = data
        return path not in self.broken

    def _set(self, path: str, data: bytes | None) -> None:
        self.current[path] = data
        self.touched.add(path)

    def _guard(self, fn: Callable[..., T], *args: object) -> T | None:
        try:
            return fn(*args)
        except SandboxViolation as violation:
            self.violations.append(violation)
            return None

    def _fail(self, path: str, reason: FailureReason, message: str) -> None:
        self.failures.append(HunkFailure(path, None, "", reason, message))

    def _planned(self) -> list[PlannedFile]:
        sources = set(self.moves.values())
        out: list[PlannedFile] = []
        for path in self.order:
            if path not in self.touched or path in sources:
                continue
            before, after = self.original[path], self.current[path]
            if path in self.moves:
                src = self.moves[path]
                out.append(PlannedFile(path, "move", self.original[src], after, move_from=src))
            elif before is None and after is not None:
                out.append(PlannedFile(path, "add", None, after))
            elif before is not None and after is None:
                out.append(PlannedFile(path, "delete", before, None))
            elif before is not None and after is not None:
                out.append(PlannedFile(path, "update", before, after))
        return out


def _content(text: str, existing: bytes | None) -> bytes:
    """Whole new content; over an existing CRLF file, LF-only content takes CRLF, and a BOM
    the file had is kept (the model rarely sends either back)."""
    if existing is not None:
        try:
            tf = decode(existing)
        except BinaryContent:
            return text.encode("utf-8")
        if tf.eol == "\r\n" and "\r\n" not in text:
            text = text.replace("\n", "\r\n")
        if tf.bom and not text.startswith(BOM):
            text = BOM + text
    return text.encode("utf-8")
