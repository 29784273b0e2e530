"""The value checks of the config loader: each takes the key path and the raw TOML value and
returns it typed, or raises ConfigError naming the key the way a user finds it in the file."""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from adapters.config.model import CommandLine, ConfigError, ConfigErrors

# Names end up in event stream names (`workspace-main`) and actor names (`watcher.main`), in URLs
# (`?workspace=main`) and in Slack commands: keep them to a safe, unambiguous alphabet.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Table:
    """A TOML table being consumed: typed getters that name the key path, unknown-key check."""

    def __init__(
        self, data: Mapping[str, Any], where: str, problems: list[ConfigError] | None = None
    ) -> None:
        self.data = data
        self.where = where
        self.used: set[str] = set()
        # Every problem found, shared with the sub-tables: a bad value is noted and its
        # default taken, so that the rest of the file is still checked (see `check_all`).
        self.problems: list[ConfigError] = [] if problems is None else problems

    def sub(self, data: Mapping[str, Any], where: str) -> Table:
        """A table inside this one, noting its problems with this one's."""
        return Table(data, where, self.problems)

    def attempt(self, build: Callable[[], _T], fallback: _T) -> _T:
        """`build()`, or `fallback` with its ConfigError noted."""
        try:
            return build()
        except ConfigError as exc:
            self.problems.append(exc)
            return fallback

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str) -> Any:
        self.used.add(name)
        return self.data.get(name)

    def get(self, name: str, check: Callable[[str, Any], _T], default: _T) -> _T:
        self.used.add(name)
        if name not in self.data:
            return default
        return self.attempt(lambda: check(self.key(name), self.data[name]), default)

    def optional(self, name: str, check: Callable[[str, Any], _T]) -> _T | None:
        self.used.add(name)
        if name not in self.data:
            return None
        return self.attempt(lambda: check(self.key(name), self.data[name]), None)

    def finish(self) -> None:
        for name in sorted(set(self.data) - self.used):
            hint = difflib.get_close_matches(name, sorted(self.used), n=1)
            extra = f' (did you mean "{hint[0]}"?)' if hint else ""
            allowed = ", ".join(sorted(self.used))
            self.problems.append(
                ConfigError(self.key(name), f"unknown key{extra}; allowed: {allowed}")
            )

    def check_all(self) -> None:
        """Raise what was noted: the one ConfigError, or ConfigErrors for several."""
        if len(self.problems) == 1:
            raise self.problems[0]
        if self.problems:
            raise ConfigErrors(list(self.problems))


_T = TypeVar("_T")


def _describe(value: Any) -> str:
    """A value the way the user wrote it in TOML, for error messages."""
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 80 else text[:77] + '..."'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def check_int(key: str, value: Any) -> int:
    # bool is a subclass of int in Python: `port = true` must not become port 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {_describe(value)}")
    return value


def check_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number, got {_describe(value)}")
    # TOML allows inf and nan; neither is a sensible timeout or backoff.
    if not math.isfinite(value):
        raise ConfigError(key, f"expected a finite number, got {value}")
    return float(value)


def check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {_describe(value)}")
    return value


def check_str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {_describe(value)}")
    if not value.strip():
        raise ConfigError(key, "must not be empty")
    if "\x00" in value:
        raise ConfigError(key, "must not contain NUL characters")
    return value


def check_str_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of strings, got {_describe(value)}")
    return tuple(check_str(f"{key}[{i}]", item) for i, item in enumerate(value))


def check_positive(check: Callable[[str, Any], _N]) -> Callable[[str, Any], _N]:
    def checked(key: str, value: Any) -> _N:
        result = check(key, value)
        if result <= 0:
            raise ConfigError(key, f"must be greater than 0, got {result!r}")
        return result

    return checked


def check_non_negative(check: Callable[[str, Any], _N]) -> Callable[[str, Any], _N]:
    def checked(key: str, value: Any) -> _N:
        result = check(key, value)
        if result < 0:
            raise ConfigError(key, f"must be 0 or more, got {result!r}")
        return result

    return checked


_N = TypeVar("_N", int, float)


def check_enum(*choices: str) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        text = check_str(key, value)
        if text not in choices:
            allowed = " or ".join(f'"{c}"' for c in choices)
            raise ConfigError(key, f"expected {allowed}, got {_describe(value)}")
        return text

    return check


def check_port(key: str, value: Any) -> int:
    port = check_int(key, value)
    if not 0 <= port <= 65535:
        raise ConfigError(key, f"expected a port number 0-65535, got {port}")
    return port


def check_name(key: str, value: Any) -> str:
    text = check_str(key, value)
    if not _NAME_RE.fullmatch(text):
        raise ConfigError(
            key,
            f"invalid name {_describe(value)}: use letters, digits, '_', '.', '-' "
            "(up to 64, starting with a letter or digit)",
        )
    return text


def check_env_name(key: str, value: Any) -> str:
    text = check_str(key, value)
    if not _ENV_NAME_RE.fullmatch(text):
        raise ConfigError(key, f"not an environment variable name: {_describe(value)}")
    return text


def check_url(key: str, value: Any) -> str:
    text = check_str(key, value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(key, f"expected an http:// or https:// URL, got {_describe(value)}")
    return text


def check_regex(key: str, value: Any) -> str:
    text = check_str(key, value)
    try:
        re.compile(text)
    except re.error as exc:
        raise ConfigError(key, f"invalid regular expression: {exc}") from None
    return text


def check_argv(key: str, value: Any) -> CommandLine:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of strings (argv), got {_describe(value)}")
    if not value:
        raise ConfigError(key, "must not be empty")
    return CommandLine(check_str_list(key, value))


def check_argv_or_shell(key: str, value: Any) -> CommandLine:
    if isinstance(value, str):
        return CommandLine(check_str(key, value))
    if not isinstance(value, list):
        raise ConfigError(
            key, f"expected an array of strings (argv) or a shell string, got {_describe(value)}"
        )
    return check_argv(key, value)


def check_path_in(base: Path) -> Callable[[str, Any], Path]:
    def check(key: str, value: Any) -> Path:
        text = check_str(key, value)
        # `~` is what people write in config files; expanding it is what they mean.
        return (base / Path(text).expanduser()).resolve()

    return check


def check_table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a table ([{key}]), got {_describe(value)}")
    return cast(Mapping[str, Any], value)


def check_array_of_tables(key: str, value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, dict):
        raise ConfigError(key, f"expected an array of tables ([[{key}]]), got a table ([{key}])")
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of tables ([[{key}]]), got {_describe(value)}")
    return [check_table(f"{key}[{i}]", item) for i, item in enumerate(value)]


def check_no_tables() -> list[Mapping[str, Any]]:
    return []


def check_networks(key: str, value: Any) -> tuple[str, ...]:
    items = check_str_list(key, value)
    for i, item in enumerate(items):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                f"{key}[{i}]", f"expected an IP address or network, got {item!r}"
            ) from None
    return items


def check_host(key: str, value: Any) -> str:
    text = check_str(key, value)
    if any(c.isspace() for c in text) or "/" in text:
        raise ConfigError(key, f"expected a host name or IP address, got {_describe(value)}")
    return text
