"""The node configuration (SPEC §3): TOML file + command-line overrides -> frozen dataclasses.

Everything is validated here, once, so that the rest of the daemon can trust its config:
unknown keys (at every level), wrong types, ranges and enums, paths that do not exist, duplicate
names. Every problem raises `ConfigError` naming the key path the way a user would find it in the
file (`workspace[1].test_timeout_s: expected a number, got "abc"`); the daemon prints it and
exits 2.

Design decisions (the SPEC leaves them open):
- Relative paths in the file are relative to the file's directory; relative paths given on the
  command line are relative to the current directory (as any CLI tool does).
- With a config file that has no `[[workspace]]`, the default workspace `main` is the config
  file's directory (the `.`-relative-to-the-file rule); with no config at all, the current
  directory.
- `--workspace PATH` replaces the path of the one configured workspace; with several workspaces
  it is an error (which one would it be?).
- Two workspaces may not share or nest paths: "one patch at a time per workspace" is what keeps
  concurrent patches from racing on a file, and overlapping workspaces would break it.
- `test_command` may be a shell string (kept as a string, `CommandLine.shell` is true); tunnel and
  service commands must be argv lists, because the node signals and watches those processes and
  a shell in between would hide the real one.
- Environment variables are read only by `EnvSecrets.from_env(env, ...)`, given the mapping by
  the caller (the daemon's `main`), never deep inside the code.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
import shlex
import shutil
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from adapters.defaults import (
    DEFAULT_EXCLUDE,
    DEFAULT_HOST,
    DEFAULT_INCLUDE,
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
    DEFAULT_WORKSPACE_NAME,
)

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_INCLUDE",
    "CliOverrides",
    "CommandLine",
    "Config",
    "ConfigError",
    "EnvSecrets",
    "LogConfig",
    "NodeConfig",
    "ServiceConfig",
    "SlackConfig",
    "SupervisorConfig",
    "TunnelConfig",
    "WorkspaceConfig",
    "load_config",
]

MIB = 1024 * 1024

Durability = Literal["full", "normal"]
Approval = Literal["auto", "manual"]
TestSandbox = Literal["none", "bwrap"]
LogFormat = Literal["json", "text"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]

# Names end up in event stream names (`workspace-main`) and actor names (`watcher.main`), in URLs
# (`?workspace=main`) and in Slack commands: keep them to a safe, unambiguous alphabet.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ConfigError(Exception):
    """A bad config file or command-line value. `key` is the path of the offending key."""

    def __init__(self, key: str, problem: str, file: Path | None = None) -> None:
        self.key = key
        self.problem = problem
        self.file = file
        super().__init__(f"{key}: {problem}")

    def __str__(self) -> str:
        prefix = f"{self.file}: " if self.file is not None else ""
        return f"{prefix}{self.key}: {self.problem}"


# ---------------------------------------------------------------------------------------------
# The dataclasses


@dataclass(frozen=True)
class CommandLine:
    """A command: an argv tuple, or a string that runs through the shell (`shell` is true)."""

    args: tuple[str, ...] | str

    @property
    def shell(self) -> bool:
        return isinstance(self.args, str)

    def popen_args(self) -> str | list[str]:
        """What to hand to subprocess.Popen (together with `shell=self.shell`)."""
        return self.args if isinstance(self.args, str) else list(self.args)


@dataclass(frozen=True)
class NodeConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0 = any free port
    state_dir: Path = Path(DEFAULT_STATE_DIR)  # always absolute after load_config
    durability: Durability = "full"
    # Peers whose X-Forwarded-For names the real client; None: loopback when a [[tunnel]] is
    # configured (the tunnel connects from there), else nobody.
    trusted_proxies: tuple[str, ...] | None = None


@dataclass(frozen=True)
class WorkspaceConfig:
    name: str
    path: Path  # absolute, resolved, an existing directory
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    test_command: CommandLine | None = None  # None: no tests (tests_absent_reason says why)
    # Where test_command came from: "config", or what detection saw ("pytest: pyproject.toml")
    test_origin: str = "config"
    tests_absent_reason: str = "no test command"
    # test_command absent from the config: the node looks for one when it starts
    # (adapters/processes/detect.py); `test_command = false` turns that off.
    detect_tests: bool = True
    test_timeout_s: float = 300.0
    rollback_on_test_failure: bool = True
    approval: Approval = "auto"
    max_file_bytes: int = MIB
    # "bwrap": test commands run confined (adapters/processes/confine.py); "none": as the node
    test_sandbox: TestSandbox = "none"

    @property
    def tests(self) -> dict[str, str]:
        """What runs after a patch, as /health and the banner show it."""
        if self.test_command is None:
            return {"status": "skipped", "reason": self.tests_absent_reason}
        args = self.test_command.args
        shown = args if isinstance(args, str) else shlex.join(args)
        return {"command": shown, "origin": self.test_origin}


@dataclass(frozen=True)
class SupervisorConfig:
    min_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_restarts: int = 5  # within period_s, then escalate
    period_s: float = 60.0


@dataclass(frozen=True)
class SlackConfig:
    """Names of the environment variables holding Slack secrets (never the secrets themselves)."""

    webhook_url_env: str | None = None
    bot_token_env: str | None = None
    channel: str | None = None
    signing_secret_env: str | None = None  # None: no slash commands


@dataclass(frozen=True)
class TunnelConfig:
    name: str
    command: CommandLine  # always argv
    url_pattern: str | None = None  # compiles (checked); exactly one of url_pattern / url
    url: str | None = None
    check_interval_s: float = 60.0

    def compiled_pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.url_pattern) if self.url_pattern is not None else None


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    command: CommandLine  # always argv
    port: int | None = None
    health_url: str | None = None
    max_rss_mb: int | None = None
    cwd: Path | None = None  # absolute when set; None: the node's working directory


@dataclass(frozen=True)
class LogConfig:
    file: Path | None = None  # absolute when set; rotated
    level: LogLevel = "info"
    format: LogFormat = "text"
    max_bytes: int = 10 * MIB
    backups: int = 5


@dataclass(frozen=True)
class Config:
    node: NodeConfig = field(default_factory=NodeConfig)
    workspaces: tuple[WorkspaceConfig, ...] = ()
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    slack: SlackConfig | None = None
    tunnels: tuple[TunnelConfig, ...] = ()
    services: tuple[ServiceConfig, ...] = ()
    log: LogConfig = field(default_factory=LogConfig)
    source: Path | None = None  # the config file, absolute; None when running on defaults

    def workspace(self, name: str) -> WorkspaceConfig:
        for ws in self.workspaces:
            if ws.name == name:
                return ws
        raise KeyError(name)


@dataclass(frozen=True)
class CliOverrides:
    """Command-line flags that override the file. Relative paths: relative to the cwd."""

    host: str | None = None
    port: int | None = None
    state_dir: Path | None = None
    workspace: Path | None = None


@dataclass(frozen=True)
class EnvSecrets:
    """Secrets from the environment, read once at the top. Values never appear in repr()."""

    token: str | None = field(default=None, repr=False)  # GHOST_TOKEN: overrides the token file
    hmac_secret: str | None = field(default=None, repr=False)  # GHOST_HMAC_SECRET
    slack_webhook_url: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], slack: SlackConfig | None = None) -> EnvSecrets:
        """Read GHOST_TOKEN, GHOST_HMAC_SECRET and the Slack variables `slack` names.

        A Slack variable the config names but the environment lacks is a ConfigError: the
        operator asked for Slack, and finding out at the first notification is too late."""
        token = _env_secret(env, "GHOST_TOKEN")
        hmac_secret = _env_secret(env, "GHOST_HMAC_SECRET")
        webhook = bot = signing = None
        if slack is not None:
            if slack.webhook_url_env is not None:
                webhook = _required_env(env, slack.webhook_url_env, "slack.webhook_url_env")
            if slack.bot_token_env is not None:
                bot = _required_env(env, slack.bot_token_env, "slack.bot_token_env")
            if slack.signing_secret_env is not None:
                signing = _required_env(env, slack.signing_secret_env, "slack.signing_secret_env")
        return cls(token, hmac_secret, webhook, bot, signing)

    def values(self) -> frozenset[str]:
        """Every secret value that is set: for the log redaction filter."""
        candidates = (
            self.token,
            self.hmac_secret,
            self.slack_webhook_url,
            self.slack_bot_token,
            self.slack_signing_secret,
        )
        return frozenset(v for v in candidates if v)


def _env_secret(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    # An empty or blank GHOST_TOKEN would otherwise mean "the empty string is the password".
    if not value.strip():
        raise ConfigError(name, "is set but empty")
    if value != value.strip():
        raise ConfigError(name, "has leading or trailing whitespace")
    return value


def _required_env(env: Mapping[str, str], name: str, key: str) -> str:
    value = env.get(name)
    if value is None or not value.strip():
        raise ConfigError(key, f"environment variable {name} is not set")
    return value.strip()


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(
    path: Path | None,
    overrides: CliOverrides | None = None,
    *,
    cwd: Path | None = None,
) -> Config:
    """Read and validate the config file (None: defaults only), then apply `overrides`.

    `cwd` (default: the process's) anchors the no-config defaults and relative CLI paths."""
    overrides = overrides or CliOverrides()
    here = (cwd or Path.cwd()).resolve()
    if path is None:
        raw: dict[str, Any] = {}
        base = here
        source = None
    else:
        source = (here / path).resolve() if not path.is_absolute() else path.resolve()
        raw = _read_toml(source)
        base = source.parent
    try:
        config = _build(raw, base, source)
        config = _apply_overrides(config, overrides, here)
        return _finish(config)
    except ConfigError as exc:
        exc.file = source
        raise


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("--config", f"file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError("--config", f"is a directory, not a file: {path}") from None
    except PermissionError:
        raise ConfigError("--config", f"permission denied: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("--config", f"not UTF-8 text: {exc}", path) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already says where ("... (at line 3, column 7)").
        raise ConfigError("(toml)", f"invalid TOML: {exc}", path) from None


class _Table:
    """A TOML table being consumed: typed getters that name the key path, unknown-key check."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self.used: set[str] = set()

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
        return check(self.key(name), self.data[name])

    def optional(self, name: str, check: Callable[[str, Any], _T]) -> _T | None:
        self.used.add(name)
        if name not in self.data:
            return None
        return check(self.key(name), self.data[name])

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            name = unknown[0]
            hint = difflib.get_close_matches(name, sorted(self.used), n=1)
            extra = f' (did you mean "{hint[0]}"?)' if hint else ""
            allowed = ", ".join(sorted(self.used))
            raise ConfigError(self.key(name), f"unknown key{extra}; allowed: {allowed}")


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


def _int(key: str, value: Any) -> int:
    # bool is a subclass of int in Python: `port = true` must not become port 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {_describe(value)}")
    return value


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number, got {_describe(value)}")
    # TOML allows inf and nan; neither is a sensible timeout or backoff.
    if not math.isfinite(value):
        raise ConfigError(key, f"expected a finite number, got {value}")
    return float(value)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {_describe(value)}")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {_describe(value)}")
    if not value.strip():
        raise ConfigError(key, "must not be empty")
    if "\x00" in value:
        raise ConfigError(key, "must not contain NUL characters")
    return value


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of strings, got {_describe(value)}")
    return tuple(_str(f"{key}[{i}]", item) for i, item in enumerate(value))


def _positive(check: Callable[[str, Any], _N]) -> Callable[[str, Any], _N]:
    def checked(key: str, value: Any) -> _N:
        result = check(key, value)
        if result <= 0:
            raise ConfigError(key, f"must be greater than 0, got {result!r}")
        return result

    return checked


def _non_negative(check: Callable[[str, Any], _N]) -> Callable[[str, Any], _N]:
    def checked(key: str, value: Any) -> _N:
        result = check(key, value)
        if result < 0:
            raise ConfigError(key, f"must be 0 or more, got {result!r}")
        return result

    return checked


_N = TypeVar("_N", int, float)


def _enum(*choices: str) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        text = _str(key, value)
        if text not in choices:
            allowed = " or ".join(f'"{c}"' for c in choices)
            raise ConfigError(key, f"expected {allowed}, got {_describe(value)}")
        return text

    return check


def _port(key: str, value: Any) -> int:
    port = _int(key, value)
    if not 0 <= port <= 65535:
        raise ConfigError(key, f"expected a port number 0-65535, got {port}")
    return port


def _name(key: str, value: Any) -> str:
    text = _str(key, value)
    if not _NAME_RE.fullmatch(text):
        raise ConfigError(
            key,
            f"invalid name {_describe(value)}: use letters, digits, '_', '.', '-' "
            "(up to 64, starting with a letter or digit)",
        )
    return text


def _env_name(key: str, value: Any) -> str:
    text = _str(key, value)
    if not _ENV_NAME_RE.fullmatch(text):
        raise ConfigError(key, f"not an environment variable name: {_describe(value)}")
    return text


def _url(key: str, value: Any) -> str:
    text = _str(key, value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(key, f"expected an http:// or https:// URL, got {_describe(value)}")
    return text


def _regex(key: str, value: Any) -> str:
    text = _str(key, value)
    try:
        re.compile(text)
    except re.error as exc:
        raise ConfigError(key, f"invalid regular expression: {exc}") from None
    return text


def _argv(key: str, value: Any) -> CommandLine:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of strings (argv), got {_describe(value)}")
    if not value:
        raise ConfigError(key, "must not be empty")
    return CommandLine(_str_list(key, value))


def _argv_or_shell(key: str, value: Any) -> CommandLine:
    if isinstance(value, str):
        return CommandLine(_str(key, value))
    if not isinstance(value, list):
        raise ConfigError(
            key, f"expected an array of strings (argv) or a shell string, got {_describe(value)}"
        )
    return _argv(key, value)


def _path_in(base: Path) -> Callable[[str, Any], Path]:
    def check(key: str, value: Any) -> Path:
        text = _str(key, value)
        # `~` is what people write in config files; expanding it is what they mean.
        return (base / Path(text).expanduser()).resolve()

    return check


def _table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a table ([{key}]), got {_describe(value)}")
    return cast(Mapping[str, Any], value)


def _array_of_tables(key: str, value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, dict):
        raise ConfigError(key, f"expected an array of tables ([[{key}]]), got a table ([{key}])")
    if not isinstance(value, list):
        raise ConfigError(key, f"expected an array of tables ([[{key}]]), got {_describe(value)}")
    return [_table(f"{key}[{i}]", item) for i, item in enumerate(value)]


def _no_tables() -> list[Mapping[str, Any]]:
    return []


def _build(raw: Mapping[str, Any], base: Path, source: Path | None) -> Config:
    top = _Table(raw, "")
    node = _node(top, base)
    workspaces = tuple(
        _workspace(_Table(t, f"workspace[{i}]"), base)
        for i, t in enumerate(top.get("workspace", _array_of_tables, _no_tables()))
    )
    if not workspaces:
        workspaces = (WorkspaceConfig(name=DEFAULT_WORKSPACE_NAME, path=base),)
    supervisor = _supervisor(top)
    slack_raw = top.optional("slack", _table)
    slack = _slack(_Table(slack_raw, "slack")) if slack_raw is not None else None
    tunnels = tuple(
        _tunnel(_Table(t, f"tunnel[{i}]"))
        for i, t in enumerate(top.get("tunnel", _array_of_tables, _no_tables()))
    )
    services = tuple(
        _service(_Table(t, f"service[{i}]"), base)
        for i, t in enumerate(top.get("service", _array_of_tables, _no_tables()))
    )
    log = _log(top, base)
    top.finish()
    _unique("workspace", [w.name for w in workspaces])
    _unique("tunnel", [t.name for t in tunnels])
    _unique("service", [s.name for s in services])
    return Config(node, workspaces, supervisor, slack, tunnels, services, log, source)


def _node(top: _Table, base: Path) -> NodeConfig:
    t = _Table(top.get("node", _table, {}), "node")
    node = NodeConfig(
        host=t.get("host", _host, DEFAULT_HOST),
        port=t.get("port", _port, DEFAULT_PORT),
        state_dir=t.get("state_dir", _path_in(base), base / DEFAULT_STATE_DIR),
        durability=cast(Durability, t.get("durability", _enum("full", "normal"), "full")),
        trusted_proxies=t.optional("trusted_proxies", _networks),
    )
    t.finish()
    return node


def _networks(key: str, value: Any) -> tuple[str, ...]:
    items = _str_list(key, value)
    for i, item in enumerate(items):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                f"{key}[{i}]", f"expected an IP address or network, got {item!r}"
            ) from None
    return items


def _host(key: str, value: Any) -> str:
    text = _str(key, value)
    if any(c.isspace() for c in text) or "/" in text:
        raise ConfigError(key, f"expected a host name or IP address, got {_describe(value)}")
    return text


def _workspace(t: _Table, base: Path) -> WorkspaceConfig:
    if not t.has("name"):
        raise ConfigError(t.key("name"), "missing (every [[workspace]] needs a name)")
    if not t.has("path"):
        raise ConfigError(t.key("path"), "missing (every [[workspace]] needs a path)")
    path = t.get("path", _path_in(base), base)
    if not path.exists():
        raise ConfigError(t.key("path"), f"does not exist: {path}")
    if not path.is_dir():
        raise ConfigError(t.key("path"), f"is not a directory: {path}")
    include = t.get("include", _str_list, DEFAULT_INCLUDE)
    if not include:
        raise ConfigError(t.key("include"), "must not be empty (no file could be patched)")
    ws = WorkspaceConfig(
        name=t.get("name", _name, DEFAULT_WORKSPACE_NAME),
        path=path,
        include=include,
        exclude=t.get("exclude", _str_list, DEFAULT_EXCLUDE),
        **_test_command(t),
        test_timeout_s=t.get("test_timeout_s", _positive(_number), 300.0),
        rollback_on_test_failure=t.get("rollback_on_test_failure", _bool, True),
        approval=cast(Approval, t.get("approval", _enum("auto", "manual"), "auto")),
        max_file_bytes=t.get("max_file_bytes", _positive(_int), MIB),
        test_sandbox=cast(TestSandbox, t.get("test_sandbox", _enum("none", "bwrap"), "none")),
    )
    t.finish()
    if ws.test_sandbox == "bwrap" and shutil.which("bwrap") is None:
        raise ConfigError(
            t.key("test_sandbox"),
            "bwrap (bubblewrap) is not on PATH: install it (apt-get install bubblewrap) or "
            'use "none"',
        )
    return ws


def _test_command(t: _Table) -> dict[str, Any]:
    """`test_command`: a command; `false` for none; absent: detected when the node starts."""
    if t.has("test_command") and t.raw("test_command") is False:
        return {"detect_tests": False, "tests_absent_reason": "test_command = false in the config"}
    command = t.optional("test_command", _argv_or_shell)
    return {"test_command": command, "detect_tests": command is None}


def _supervisor(top: _Table) -> SupervisorConfig:
    t = _Table(top.get("supervisor", _table, {}), "supervisor")
    sup = SupervisorConfig(
        min_backoff_s=t.get("min_backoff_s", _positive(_number), 0.5),
        max_backoff_s=t.get("max_backoff_s", _positive(_number), 30.0),
        max_restarts=t.get("max_restarts", _non_negative(_int), 5),
        period_s=t.get("period_s", _positive(_number), 60.0),
    )
    t.finish()
    if sup.max_backoff_s < sup.min_backoff_s:
        raise ConfigError(
            t.key("max_backoff_s"),
            f"must be at least min_backoff_s ({sup.min_backoff_s:g}), got {sup.max_backoff_s:g}",
        )
    return sup


def _slack(t: _Table) -> SlackConfig:
    slack = SlackConfig(
        webhook_url_env=t.optional("webhook_url_env", _env_name),
        bot_token_env=t.optional("bot_token_env", _env_name),
        channel=t.optional("channel", _str),
        signing_secret_env=t.optional("signing_secret_env", _env_name),
    )
    t.finish()
    if slack.webhook_url_env is None and slack.bot_token_env is None:
        raise ConfigError(
            t.key("webhook_url_env"), "missing: [slack] needs webhook_url_env or bot_token_env"
        )
    if slack.bot_token_env is not None and slack.channel is None:
        raise ConfigError(t.key("channel"), "missing: bot_token_env needs a channel to post to")
    return slack


def _tunnel(t: _Table) -> TunnelConfig:
    if not t.has("name"):
        raise ConfigError(t.key("name"), "missing (every [[tunnel]] needs a name)")
    if not t.has("command"):
        raise ConfigError(t.key("command"), "missing (every [[tunnel]] needs a command)")
    tunnel = TunnelConfig(
        name=t.get("name", _name, ""),
        command=t.get("command", _argv, CommandLine(())),
        url_pattern=t.optional("url_pattern", _regex),
        url=t.optional("url", _url),
        check_interval_s=t.get("check_interval_s", _positive(_number), 60.0),
    )
    t.finish()
    if tunnel.url_pattern is None and tunnel.url is None:
        raise ConfigError(
            t.key("url_pattern"),
            "missing: a tunnel needs url_pattern (to find its URL in the output) or url",
        )
    if tunnel.url_pattern is not None and tunnel.url is not None:
        raise ConfigError(t.key("url"), "give url_pattern or url, not both")
    return tunnel


def _service(t: _Table, base: Path) -> ServiceConfig:
    if not t.has("name"):
        raise ConfigError(t.key("name"), "missing (every [[service]] needs a name)")
    if not t.has("command"):
        raise ConfigError(t.key("command"), "missing (every [[service]] needs a command)")
    svc = ServiceConfig(
        name=t.get("name", _name, ""),
        command=t.get("command", _argv, CommandLine(())),
        port=t.optional("port", _port),
        health_url=t.optional("health_url", _url),
        max_rss_mb=t.optional("max_rss_mb", _positive(_int)),
        cwd=t.optional("cwd", _path_in(base)),
    )
    t.finish()
    if svc.port == 0:
        raise ConfigError(t.key("port"), "a service port must be 1-65535")
    if svc.cwd is not None and not svc.cwd.is_dir():
        raise ConfigError(t.key("cwd"), f"is not an existing directory: {svc.cwd}")
    return svc


def _log(top: _Table, base: Path) -> LogConfig:
    t = _Table(top.get("log", _table, {}), "log")
    log = LogConfig(
        file=t.optional("file", _path_in(base)),
        level=cast(
            LogLevel, t.get("level", _enum("debug", "info", "warning", "error", "critical"), "info")
        ),
        format=cast(LogFormat, t.get("format", _enum("json", "text"), "text")),
        max_bytes=t.get("max_bytes", _positive(_int), 10 * MIB),
        backups=t.get("backups", _non_negative(_int), 5),
    )
    t.finish()
    return log


def _unique(kind: str, names: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(
                f"{kind}[{i}].name", f'duplicate name "{name}" (also {kind}[{seen[name]}])'
            )
        seen[name] = i


def _apply_overrides(config: Config, o: CliOverrides, cwd: Path) -> Config:
    node = config.node
    if o.host is not None:
        node = replace(node, host=_host("--host", o.host))
    if o.port is not None:
        node = replace(node, port=_port("--port", o.port))
    if o.state_dir is not None:
        node = replace(node, state_dir=(cwd / o.state_dir.expanduser()).resolve())
    workspaces = config.workspaces
    if o.workspace is not None:
        if len(workspaces) > 1:
            names = ", ".join(w.name for w in workspaces)
            raise ConfigError(
                "--workspace",
                f"the config defines {len(workspaces)} workspaces ({names}); "
                "--workspace only replaces the path of a single one",
            )
        path = (cwd / o.workspace.expanduser()).resolve()
        if not path.is_dir():
            raise ConfigError("--workspace", f"is not an existing directory: {path}")
        workspaces = (replace(workspaces[0], path=path),)
    return replace(config, node=node, workspaces=workspaces)


def _finish(config: Config) -> Config:
    """Cross-checks that need the final paths; add the state dir to the workspaces' excludes."""
    state = config.node.state_dir
    for i, ws in enumerate(config.workspaces):
        for j, other in enumerate(config.workspaces[:i]):
            if _within(ws.path, other.path) or _within(other.path, ws.path):
                raise ConfigError(
                    f"workspace[{i}].path",
                    f'overlaps workspace[{j}] ("{other.name}"): {ws.path} and {other.path}',
                )
        if _within(ws.path, state):
            raise ConfigError(
                "node.state_dir",
                f'must not be workspace "{ws.name}" or contain it: {state} and {ws.path}',
            )
    for i, svc in enumerate(config.services):
        if svc.port is not None and svc.port == config.node.port:
            raise ConfigError(f"service[{i}].port", f"is the node's own port ({svc.port})")
    workspaces = tuple(
        _exclude_config_file(_exclude_state_dir(ws, state), config.source)
        for ws in config.workspaces
    )
    return replace(config, workspaces=workspaces)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _exclude_state_dir(ws: WorkspaceConfig, state: Path) -> WorkspaceConfig:
    if state == ws.path or ws.path not in state.parents:
        return ws
    rel = state.relative_to(ws.path).as_posix()
    # Anchored ("/" first) and directory-only ("/" last) in the gitignore-like syntax of
    # adapters/watching/patterns.py; glob characters in the path are escaped so that a state
    # dir named "run[1]" excludes exactly itself.
    pattern = "/" + _glob_escape(rel) + "/"
    if pattern in ws.exclude:
        return ws
    return replace(ws, exclude=(*ws.exclude, pattern))


def _exclude_config_file(ws: WorkspaceConfig, source: Path | None) -> WorkspaceConfig:
    """The loaded config file, like the state dir, is never read or written through the
    workspace: a patch that rewrote it could add a [[service]] that runs at the next start."""
    if source is None or ws.path not in source.parents:
        return ws
    pattern = "/" + _glob_escape(source.relative_to(ws.path).as_posix())
    if pattern in ws.exclude:
        return ws
    return replace(ws, exclude=(*ws.exclude, pattern))


def _glob_escape(text: str) -> str:
    # `!` is only special at the start, and the pattern starts with "/"; `]` alone is literal.
    return re.sub(r"([*?\[])", r"[\1]", text)
