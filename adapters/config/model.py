"""What a loaded config is: frozen dataclasses the rest of the node trusts, the command-line
overrides, the secrets read from the environment, and ConfigError."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from adapters.defaults import (
    DEFAULT_EXCLUDE,
    DEFAULT_HOST,
    DEFAULT_INCLUDE,
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
)

MIB = 1024 * 1024

Durability = Literal["full", "normal"]
Approval = Literal["auto", "manual"]
TestSandbox = Literal["none", "bwrap"]
History = Literal["patches", "all"]
LogFormat = Literal["json", "text"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


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


class ConfigErrors(ConfigError):
    """Every problem of a config file at once (a user fixes them in one go): the first names
    `key` and `problem`; `str()` is one line per problem."""

    def __init__(self, problems: list[ConfigError]) -> None:
        first = problems[0]
        super().__init__(first.key, first.problem, first.file)
        self.problems = problems

    def __str__(self) -> str:
        prefix = f"{self.file}: " if self.file is not None else ""
        lines = [f"{prefix}{p.key}: {p.problem}" for p in self.problems]
        return f"{len(lines)} problems:\n" + "\n".join(lines)


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
    # "patches": the store keeps the contents patches write and find; "all": the watcher
    # also keeps those of changed text files (up to max_file_bytes), for `ghost cat --until`.
    history: History = "patches"
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
