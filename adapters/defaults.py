"""The defaults of SPEC §3, in one place: the config loader, the watcher's and sandbox's path
rules, the web server and `ghost init` all take them from here."""

from __future__ import annotations

DEFAULT_INCLUDE: tuple[str, ...] = ("*.tsx", "*.ts", "*.js", "*.py", "*.json", "*.md")
DEFAULT_EXCLUDE: tuple[str, ...] = (
    "node_modules/",
    ".git/",
    ".venv/",
    "venv/",
    "__pycache__/",
    "*.log",
    "*.tmp",
    "*.bak",
    "logs/",
    "temp/",
    "data/",
)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5051
DEFAULT_STATE_DIR = ".ghost"
DEFAULT_WORKSPACE_NAME = "main"
