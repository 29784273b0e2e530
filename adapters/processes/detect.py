"""The test command of a workspace whose config names none: what a developer would type there.

Looked for once, when the node starts (never per patch), in this order, the first that fits:
Python (pytest when it is configured or installed, else `python -m unittest discover`), npm
(`npm test` when package.json has a real test script), Cargo (`cargo test`), Go (`go test
./...`). A project that shows how it tests but lacks the tool (pytest configured, not
installed) gets no command and a reason that says so, rather than a command bound to fail
after every patch and roll it back.
"""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adapters.config import CommandLine, Config, WorkspaceConfig

# npm init's placeholder script: a test script that only says there is none.
NPM_PLACEHOLDER = "no test specified"
PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Detected:
    command: CommandLine | None
    origin: str = ""  # with a command: what showed it ("pytest: pyproject.toml")
    reason: str = "no test command found"  # without one: why


def with_detected_tests(config: Config, env: Mapping[str, str]) -> Config:
    """`config` with a detected test command for every workspace that asks for detection."""
    return replace(config, workspaces=tuple(_detect_into(ws, env) for ws in config.workspaces))


def _detect_into(ws: WorkspaceConfig, env: Mapping[str, str]) -> WorkspaceConfig:
    if ws.test_command is not None or not ws.detect_tests:
        return ws
    found = detect_tests(ws.path, env)
    if found.command is None:
        return replace(ws, tests_absent_reason=found.reason)
    return replace(ws, test_command=found.command, test_origin=f"detected: {found.origin}")


def detect_tests(root: Path, env: Mapping[str, str]) -> Detected:
    path = env.get("PATH")
    for detector in _DETECTORS:
        found = detector(root, path, env)
        if found is not None:
            return found
    return Detected(None, reason="no test command found (set test_command in the config)")


# --- Python ---------------------------------------------------------------------------------------
def _pytest_configured(root: Path) -> str | None:
    """Where the project says it uses pytest, if it does."""
    for name in ("pytest.ini", "conftest.py"):
        if (root / name).is_file():
            return name
    pyproject = _toml(root / "pyproject.toml")
    if "pytest" in pyproject.get("tool", {}):
        return "pyproject.toml [tool.pytest]"
    for name, section in (("setup.cfg", "tool:pytest"), ("tox.ini", "pytest")):
        if section in _ini_sections(root / name):
            return f"{name} [{section}]"
    return None


def _test_files(root: Path) -> tuple[str, Path] | None:
    """(where, the directory unittest should start in) of the first test module seen: one
    is enough, so the walk stops there."""
    for pattern in ("test_*.py", "*_test.py"):
        if (hit := next(root.glob(pattern), None)) is not None:
            return hit.name, root
    for folder in ("tests", "test"):
        base = root / folder
        if base.is_dir() and (hit := next(base.rglob("test*.py"), None)) is not None:
            return str(hit.relative_to(root)), base
    return None


def _python(root: Path, path: str | None) -> str | None:
    """The project's own virtualenv first, as its developer would use it, else python3."""
    for venv in (".venv", "venv"):
        candidate = root / venv / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    return shutil.which("python3", path=path)


def _has_module(python: str, module: str, root: Path, env: Mapping[str, str]) -> bool:
    try:
        probe = subprocess.run(
            [python, "-c", f"import {module}"],
            cwd=root,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _python_tests(root: Path, path: str | None, env: Mapping[str, str]) -> Detected | None:
    configured = _pytest_configured(root)
    files = _test_files(root)
    if configured is None and files is None:
        return None
    python = _python(root, path)
    if python is None:
        return Detected(None, reason="a Python project, but no python3 on PATH")
    if _has_module(python, "pytest", root, env):
        seen = configured if configured is not None else files[0] if files else ""
        return Detected(CommandLine((python, "-m", "pytest", "-q")), f"pytest: {seen}")
    if configured is not None:
        return Detected(
            None,
            reason=f"pytest is configured ({configured}) but {python} cannot import it: "
            "install it there or set test_command",
        )
    assert files is not None
    where, start = files
    argv = [python, "-m", "unittest", "discover", "-q"]
    if start != root:
        argv += ["-s", str(start.relative_to(root))]
    return Detected(CommandLine(tuple(argv)), f"unittest: {where}")


# --- the others ----------------------------------------------------------------------------------
def _npm_tests(root: Path, path: str | None, env: Mapping[str, str]) -> Detected | None:
    try:
        package = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    scripts = package.get("scripts") if isinstance(package, dict) else None
    script = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(script, str) or not script.strip() or NPM_PLACEHOLDER in script:
        return None
    return _tool("npm", ("npm", "test"), "package.json scripts.test", path)


def _cargo_tests(root: Path, path: str | None, env: Mapping[str, str]) -> Detected | None:
    if not (root / "Cargo.toml").is_file():
        return None
    return _tool("cargo", ("cargo", "test"), "Cargo.toml", path)


def _go_tests(root: Path, path: str | None, env: Mapping[str, str]) -> Detected | None:
    if not (root / "go.mod").is_file():
        return None
    return _tool("go", ("go", "test", "./..."), "go.mod", path)


def _tool(name: str, argv: tuple[str, ...], origin: str, path: str | None) -> Detected:
    program = shutil.which(name, path=path)
    if program is None:
        return Detected(None, reason=f"{origin} found, but {name} is not on PATH")
    return Detected(CommandLine((program, *argv[1:])), f"{name}: {origin}")


_DETECTORS: tuple[Callable[[Path, str | None, Mapping[str, str]], Detected | None], ...] = (
    _python_tests,
    _npm_tests,
    _cargo_tests,
    _go_tests,
)


# --- reading project files, forgivingly -------------------------------------------------------
def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def _ini_sections(path: Path) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return []
    return parser.sections()
