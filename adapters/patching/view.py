"""What the planner sees of a workspace: read-only, through the sandbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from adapters.patching.model import SandboxViolation
from adapters.patching.pathrules import ExcludeRules, normalize_relative
from adapters.patching.sandbox import MIB, CheckedPath, Sandbox
from adapters.patching.text import is_binary


class WorkspaceView(Protocol):
    @property
    def max_file_bytes(self) -> int:
        """The largest file that may be read or written."""
        ...

    def resolve(self, path: str, *, for_write: bool) -> str:
        """The canonical (resolved) relative path, or SandboxViolation."""
        ...

    def read(self, path: str) -> bytes | None:
        """Current bytes of a resolved path, None when absent, or SandboxViolation."""
        ...

    def check_content(self, path: str, data: bytes) -> None:
        """SandboxViolation when new content may not be written (too large, binary)."""
        ...


class SandboxView:
    """The real workspace on disk."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        # Inspections by resolved path, so a read right after its resolve does not walk the
        # path again (the read still checks it opened the very file inspected). One view
        # serves one plan: nothing is reused across patches.
        self._checked: dict[str, CheckedPath] = {}

    @property
    def max_file_bytes(self) -> int:
        return self.sandbox.max_file_bytes

    def resolve(self, path: str, *, for_write: bool) -> str:
        checked = self.sandbox.inspect(path, for_write=for_write)
        self._checked[checked.relative] = checked
        return checked.relative

    def read(self, path: str) -> bytes | None:
        return self.sandbox.read(path, self._checked.pop(path, None))

    def check_content(self, path: str, data: bytes) -> None:
        self.sandbox.check_content(path, data)


class MemoryView:
    """An in-memory workspace for tests: the same lexical rules, no file system."""

    def __init__(
        self,
        files: Mapping[str, bytes],
        exclude: Sequence[str] = (),
        max_file_bytes: int = MIB,
    ) -> None:
        self.files = dict(files)
        self.rules = ExcludeRules(exclude)
        self.max_file_bytes = max_file_bytes

    def resolve(self, path: str, *, for_write: bool) -> str:
        relative = normalize_relative(path)
        pattern = self.rules.excluded_by(relative)
        if pattern is not None:
            raise SandboxViolation(path, "excluded", f"excluded by {pattern!r}")
        return relative

    def read(self, path: str) -> bytes | None:
        data = self.files.get(path)
        if data is not None:
            if len(data) > self.max_file_bytes:
                raise SandboxViolation(path, "too_large", f"over {self.max_file_bytes} bytes")
            if is_binary(data):
                raise SandboxViolation(path, "binary", "binary file")
        return data

    def check_content(self, path: str, data: bytes) -> None:
        if len(data) > self.max_file_bytes:
            raise SandboxViolation(path, "too_large", f"over {self.max_file_bytes} bytes")
        if is_binary(data):
            raise SandboxViolation(path, "binary", "new content is not UTF-8 text")
