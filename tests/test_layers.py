"""The layers hold: import-linter's contracts (pyproject.toml) pass on the code, and they say
what docs/ARCHITECTURE.md's package table says, so neither can drift from the other."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("eventstore", "adapters", "replay", "actors")


def _documented() -> dict[str, set[str]]:
    """{package: the packages of ours it may import}, from the ARCHITECTURE table."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    allowed: dict[str, set[str]] = {}
    for match in re.finditer(r"^\| `(\w+)/` \|[^|]*\| ([^|]*) \|", text, re.MULTILINE):
        package, ours = match.group(1), match.group(2).strip()
        allowed[package] = set() if ours == "none" else {p.strip() for p in ours.split(",")}
    return allowed


def _contracted() -> dict[str, set[str]]:
    """{package: the packages of ours it may import}: every one but those a contract forbids."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    allowed = {p: set(PACKAGES) - {p} for p in config["root_packages"]}
    for contract in config["contracts"]:
        assert contract["type"] == "forbidden", contract
        for source in contract["source_modules"]:
            allowed[source] -= set(contract["forbidden_modules"])
    return allowed


def test_the_architecture_table_states_the_contracts() -> None:
    documented = _documented()
    assert set(documented) == set(PACKAGES)
    assert documented == _contracted()


def test_the_code_keeps_the_contracts() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
