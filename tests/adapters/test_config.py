"""adapters/config.py: defaults, overrides, paths, and a table of bad configs naming their key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from adapters.config import (
    DEFAULT_EXCLUDE,
    DEFAULT_INCLUDE,
    CliOverrides,
    CommandLine,
    ConfigError,
    EnvSecrets,
    SlackConfig,
    load_config,
)


def write(tmp_path: Path, text: str, name: str = "ghost.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ defaults


def test_no_config_defaults(tmp_path: Path) -> None:
    config = load_config(None, CliOverrides(), cwd=tmp_path)
    assert config.source is None
    assert config.node.host == "127.0.0.1"
    assert config.node.port == 5051
    assert config.node.durability == "full"
    assert config.node.state_dir == tmp_path.resolve() / ".ghost"
    (ws,) = config.workspaces
    assert ws.name == "main"
    assert ws.path == tmp_path.resolve()
    assert ws.include == DEFAULT_INCLUDE
    assert ws.exclude == (*DEFAULT_EXCLUDE, "/.ghost/")
    assert ws.test_command is None
    assert ws.test_timeout_s == 300
    assert ws.rollback_on_test_failure is True
    assert ws.approval == "auto"
    assert ws.max_file_bytes == 1024 * 1024
    sup = config.supervisor
    assert (sup.min_backoff_s, sup.max_backoff_s, sup.max_restarts, sup.period_s) == (
        0.5,
        30,
        5,
        60,
    )
    assert config.slack is None
    assert config.tunnels == ()
    assert config.services == ()
    assert config.log.file is None
    assert config.log.level == "info"


def test_defaults_match_the_watcher() -> None:
    patterns = pytest.importorskip("adapters.watching.patterns")
    assert patterns.DEFAULT_INCLUDE == DEFAULT_INCLUDE
    assert patterns.DEFAULT_EXCLUDE == DEFAULT_EXCLUDE


def test_full_spec_example(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    path = write(
        tmp_path,
        f"""
        [node]
        host = "127.0.0.1"
        port = 5051
        state_dir = ".ghost"
        durability = "normal"

        [[workspace]]
        name = "main"
        path = "{app}"
        include = ["*.py"]
        exclude = ["node_modules/"]
        test_command = ["pytest", "-q"]
        test_timeout_s = 12.5
        rollback_on_test_failure = false
        approval = "manual"
        max_file_bytes = 2048

        [supervisor]
        min_backoff_s = 0.5
        max_backoff_s = 30
        max_restarts = 5
        period_s = 60

        [slack]
        webhook_url_env = "SLACK_WEBHOOK_URL"
        signing_secret_env = "SLACK_SIGNING_SECRET"

        [[tunnel]]
        name = "cloudflare"
        command = ["cloudflared", "tunnel", "--url", "http://127.0.0.1:5051"]
        url_pattern = "https://[a-z0-9-]+\\\\.trycloudflare\\\\.com"
        check_interval_s = 60

        [[service]]
        name = "expo"
        command = ["npx", "expo", "start"]
        port = 8081
        health_url = "http://127.0.0.1:8081/"
        max_rss_mb = 1024

        [log]
        file = ".ghost/logs/ghost-node.log"
        level = "info"
        format = "json"
        """,
    )
    config = load_config(path, CliOverrides(), cwd=Path("/"))
    assert config.source == path.resolve()
    assert config.node.durability == "normal"
    # state dir relative to the config file, and outside the workspace: no extra exclude
    assert config.node.state_dir == tmp_path.resolve() / ".ghost"
    (ws,) = config.workspaces
    assert ws.path == app.resolve()
    assert ws.exclude == ("node_modules/",)
    assert ws.test_command == CommandLine(("pytest", "-q"))
    assert ws.test_command is not None
    assert not ws.test_command.shell
    assert ws.test_timeout_s == 12.5
    assert ws.approval == "manual"
    assert config.slack == SlackConfig(
        webhook_url_env="SLACK_WEBHOOK_URL", signing_secret_env="SLACK_SIGNING_SECRET"
    )
    (tunnel,) = config.tunnels
    pattern = tunnel.compiled_pattern()
    assert pattern is not None
    assert pattern.search("see https://abc-1.trycloudflare.com now")
    (svc,) = config.services
    assert svc.port == 8081
    assert svc.max_rss_mb == 1024
    assert config.log.file == tmp_path.resolve() / ".ghost/logs/ghost-node.log"
    assert config.log.format == "json"


def test_shell_string_test_command(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [[workspace]]
        name = "w"
        path = "."
        test_command = "pytest -q && echo ok"
        """,
    )
    (ws,) = load_config(path, CliOverrides()).workspaces
    assert ws.test_command is not None
    assert ws.test_command.shell
    assert ws.test_command.popen_args() == "pytest -q && echo ok"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc"
    (conf_dir / "src").mkdir(parents=True)
    path = write(
        conf_dir,
        """
        [node]
        state_dir = "src/state"
        [[workspace]]
        name = "w"
        path = "src"
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = load_config(path, CliOverrides(), cwd=elsewhere)
    assert config.workspaces[0].path == (conf_dir / "src").resolve()
    assert config.node.state_dir == (conf_dir / "src/state").resolve()
    # state dir inside the workspace: excluded, anchored at the workspace root
    assert config.workspaces[0].exclude[-1] == "/state/"


def test_config_without_workspace_uses_its_directory(tmp_path: Path) -> None:
    path = write(tmp_path, "[node]\nport = 0\n")
    config = load_config(path, CliOverrides(), cwd=Path("/"))
    assert config.workspaces[0].path == tmp_path.resolve()
    assert config.node.port == 0


def test_overrides_win_and_are_cwd_relative(tmp_path: Path) -> None:
    path = write(tmp_path, '[node]\nport = 6000\nhost = "0.0.0.0"\n')
    cwd = tmp_path / "cwd"
    (cwd / "ws").mkdir(parents=True)
    config = load_config(
        path,
        CliOverrides(host="127.0.0.2", port=0, state_dir=Path("st"), workspace=Path("ws")),
        cwd=cwd,
    )
    assert config.node.host == "127.0.0.2"
    assert config.node.port == 0
    assert config.node.state_dir == cwd.resolve() / "st"
    assert config.workspaces[0].path == (cwd / "ws").resolve()
    assert "/st/" not in config.workspaces[0].exclude  # state dir not inside this workspace


def test_state_dir_with_glob_characters_is_escaped(tmp_path: Path) -> None:
    config = load_config(None, CliOverrides(state_dir=Path("run[1]*")), cwd=tmp_path)
    assert config.workspaces[0].exclude[-1] == "/run[[]1][*]/"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(None, CliOverrides(), cwd=tmp_path)
    with pytest.raises(AttributeError):
        config.node.port = 1  # type: ignore[misc]


# ------------------------------------------------------------------------------ bad configs

BAD: list[tuple[str, str, str, str]] = [
    # (id, toml, key the message must name, a word of the problem)
    ("unknown-top", "[nodes]\nport = 1\n", "nodes", "unknown key"),
    ("unknown-node-key", "[node]\nprot = 1\n", "node.prot", 'did you mean "port"'),
    ("port-string", '[node]\nport = "5051"\n', "node.port", "expected an integer"),
    ("port-bool", "[node]\nport = true\n", "node.port", "true (a boolean)"),
    ("port-range", "[node]\nport = 70000\n", "node.port", "0-65535"),
    ("port-float", "[node]\nport = 50.5\n", "node.port", "expected an integer"),
    ("durability", '[node]\ndurability = "fast"\n', "node.durability", '"full" or "normal"'),
    ("host-empty", '[node]\nhost = ""\n', "node.host", "must not be empty"),
    ("node-not-table", "node = 3\n", "node", "expected a table"),
    (
        "workspace-table",
        '[workspace]\nname = "w"\npath = "."\n',
        "workspace",
        "array of tables",
    ),
    (
        "ws-timeout-string",
        '[[workspace]]\nname = "a"\npath = "a"\n[[workspace]]\nname = "b"\npath = "b"\n'
        'test_timeout_s = "abc"\n',
        "workspace[1].test_timeout_s",
        'got "abc"',
    ),
    (
        "ws-timeout-bool",
        '[[workspace]]\nname = "a"\npath = "a"\ntest_timeout_s = true\n',
        "workspace[0].test_timeout_s",
        "expected a number",
    ),
    (
        "ws-timeout-inf",
        '[[workspace]]\nname = "a"\npath = "a"\ntest_timeout_s = inf\n',
        "workspace[0].test_timeout_s",
        "finite",
    ),
    (
        "ws-timeout-zero",
        '[[workspace]]\nname = "a"\npath = "a"\ntest_timeout_s = 0\n',
        "workspace[0].test_timeout_s",
        "greater than 0",
    ),
    (
        "ws-unknown-key",
        '[[workspace]]\nname = "a"\npath = "a"\ntest_comand = "x"\n',
        "workspace[0].test_comand",
        'did you mean "test_command"',
    ),
    (
        "ws-missing-path",
        '[[workspace]]\nname = "a"\npath = "nope"\n',
        "workspace[0].path",
        "does not exist",
    ),
    ("ws-no-path", '[[workspace]]\nname = "a"\n', "workspace[0].path", "missing"),
    ("ws-no-name", '[[workspace]]\npath = "a"\n', "workspace[0].name", "missing"),
    (
        "ws-path-is-file",
        '[[workspace]]\nname = "a"\npath = "file.txt"\n',
        "workspace[0].path",
        "not a directory",
    ),
    (
        "ws-bad-name",
        '[[workspace]]\nname = "a b"\npath = "a"\n',
        "workspace[0].name",
        "invalid name",
    ),
    (
        "ws-duplicate",
        '[[workspace]]\nname = "a"\npath = "a"\n[[workspace]]\nname = "a"\npath = "b"\n',
        "workspace[1].name",
        "duplicate",
    ),
    (
        "ws-overlap",
        '[[workspace]]\nname = "a"\npath = "."\n[[workspace]]\nname = "b"\npath = "b"\n',
        "workspace[1].path",
        "overlaps",
    ),
    (
        "ws-approval",
        '[[workspace]]\nname = "a"\npath = "a"\napproval = "maybe"\n',
        "workspace[0].approval",
        '"auto" or "manual"',
    ),
    (
        "ws-rollback-int",
        '[[workspace]]\nname = "a"\npath = "a"\nrollback_on_test_failure = 1\n',
        "workspace[0].rollback_on_test_failure",
        "true or false",
    ),
    (
        "ws-include-item",
        '[[workspace]]\nname = "a"\npath = "a"\ninclude = ["*.py", 3]\n',
        "workspace[0].include[1]",
        "expected a string",
    ),
    (
        "ws-include-empty",
        '[[workspace]]\nname = "a"\npath = "a"\ninclude = []\n',
        "workspace[0].include",
        "must not be empty",
    ),
    (
        "ws-test-command-type",
        '[[workspace]]\nname = "a"\npath = "a"\ntest_command = 5\n',
        "workspace[0].test_command",
        "argv",
    ),
    (
        "ws-test-command-empty",
        '[[workspace]]\nname = "a"\npath = "a"\ntest_command = []\n',
        "workspace[0].test_command",
        "must not be empty",
    ),
    (
        "ws-max-file-bytes",
        '[[workspace]]\nname = "a"\npath = "a"\nmax_file_bytes = -1\n',
        "workspace[0].max_file_bytes",
        "greater than 0",
    ),
    (
        "state-dir-is-workspace",
        '[node]\nstate_dir = "a"\n[[workspace]]\nname = "a"\npath = "a"\n',
        "node.state_dir",
        "must not be",
    ),
    ("sup-unknown", "[supervisor]\nretries = 3\n", "supervisor.retries", "unknown key"),
    ("sup-restarts-bool", "[supervisor]\nmax_restarts = false\n", "supervisor.max_restarts", "int"),
    (
        "sup-backoff-order",
        "[supervisor]\nmin_backoff_s = 10\nmax_backoff_s = 1\n",
        "supervisor.max_backoff_s",
        "at least min_backoff_s",
    ),
    ("slack-empty", "[slack]\n", "slack.webhook_url_env", "bot_token_env"),
    (
        "slack-bot-no-channel",
        '[slack]\nbot_token_env = "SLACK_BOT_TOKEN"\n',
        "slack.channel",
        "missing",
    ),
    (
        "slack-bad-env-name",
        '[slack]\nwebhook_url_env = "https://hooks.slack.com/x"\n',
        "slack.webhook_url_env",
        "environment variable name",
    ),
    (
        "slack-unknown",
        '[slack]\nwebhook_url_env = "X"\nwebhook_url = "https://x"\n',
        "slack.webhook_url",
        "unknown key",
    ),
    (
        "tunnel-no-url",
        '[[tunnel]]\nname = "t"\ncommand = ["x"]\n',
        "tunnel[0].url_pattern",
        "url_pattern",
    ),
    (
        "tunnel-bad-regex",
        '[[tunnel]]\nname = "t"\ncommand = ["x"]\nurl_pattern = "https://[a-z"\n',
        "tunnel[0].url_pattern",
        "invalid regular expression",
    ),
    (
        "tunnel-both",
        '[[tunnel]]\nname = "t"\ncommand = ["x"]\nurl_pattern = "x"\nurl = "https://a.b"\n',
        "tunnel[0].url",
        "not both",
    ),
    (
        "tunnel-bad-url",
        '[[tunnel]]\nname = "t"\ncommand = ["x"]\nurl = "ftp://a.b"\n',
        "tunnel[0].url",
        "http",
    ),
    (
        "tunnel-shell-command",
        '[[tunnel]]\nname = "t"\ncommand = "cloudflared tunnel"\nurl = "https://a.b"\n',
        "tunnel[0].command",
        "argv",
    ),
    (
        "tunnel-duplicate",
        '[[tunnel]]\nname = "t"\ncommand = ["x"]\nurl = "https://a"\n'
        '[[tunnel]]\nname = "t"\ncommand = ["y"]\nurl = "https://b"\n',
        "tunnel[1].name",
        "duplicate",
    ),
    (
        "tunnel-unknown",
        '[[tunnel]]\nname = "t"\ncommand = ["x"]\nurl = "https://a"\ninterval = 3\n',
        "tunnel[0].interval",
        "unknown key",
    ),
    (
        "service-port-bool",
        '[[service]]\nname = "s"\ncommand = ["x"]\nport = true\n',
        "service[0].port",
        "expected an integer",
    ),
    (
        "service-rss",
        '[[service]]\nname = "s"\ncommand = ["x"]\nmax_rss_mb = 0\n',
        "service[0].max_rss_mb",
        "greater than 0",
    ),
    (
        "service-health-url",
        '[[service]]\nname = "s"\ncommand = ["x"]\nhealth_url = "localhost:8081"\n',
        "service[0].health_url",
        "http",
    ),
    (
        "service-node-port",
        '[[service]]\nname = "s"\ncommand = ["x"]\nport = 5051\n',
        "service[0].port",
        "node's own port",
    ),
    (
        "service-duplicate",
        '[[service]]\nname = "s"\ncommand = ["x"]\n[[service]]\nname = "s"\ncommand = ["y"]\n',
        "service[1].name",
        "duplicate",
    ),
    ("log-format", '[log]\nformat = "xml"\n', "log.format", '"json" or "text"'),
    ("log-level", '[log]\nlevel = "verbose"\n', "log.level", '"debug"'),
    ("log-unknown", '[log]\npath = "x.log"\n', "log.path", "unknown key"),
    ("toml-syntax", "[node\nport = 1\n", "(toml)", "invalid TOML"),
]


@pytest.mark.parametrize(("toml", "key", "problem"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_names_the_key(tmp_path: Path, toml: str, key: str, problem: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "file.txt").write_text("x")
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, CliOverrides(), cwd=tmp_path)
    err = info.value
    assert err.key == key
    message = str(err)
    assert f"{key}: " in message
    assert problem in message
    assert str(path.resolve()) in message  # the daemon prints it as is: name the file too


def test_message_format_matches_the_brief(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = write(
        tmp_path,
        '[[workspace]]\nname = "a"\npath = "a"\n'
        '[[workspace]]\nname = "b"\npath = "b"\ntest_timeout_s = "abc"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, CliOverrides())
    assert str(info.value).endswith('workspace[1].test_timeout_s: expected a number, got "abc"')


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (CliOverrides(port=70000), "--port"),
        (CliOverrides(port=True), "--port"),
        (CliOverrides(host=""), "--host"),
        (CliOverrides(workspace=Path("missing")), "--workspace"),
    ],
)
def test_bad_overrides(tmp_path: Path, overrides: CliOverrides, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides, cwd=tmp_path)
    assert info.value.key == key


def test_workspace_override_with_several_workspaces(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = write(
        tmp_path, '[[workspace]]\nname = "a"\npath = "a"\n[[workspace]]\nname = "b"\npath = "b"\n'
    )
    with pytest.raises(ConfigError, match="--workspace"):
        load_config(path, CliOverrides(workspace=tmp_path), cwd=tmp_path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml", CliOverrides())
    assert info.value.key == "--config"
    assert "not found" in str(info.value)


# ------------------------------------------------------------------------------------ secrets


def test_env_secrets() -> None:
    slack = SlackConfig(webhook_url_env="HOOK", signing_secret_env="SIGN")
    env = {"GHOST_TOKEN": "tok-123", "GHOST_HMAC_SECRET": "hm", "HOOK": "https://h", "SIGN": "s"}
    secrets = EnvSecrets.from_env(env, slack)
    assert secrets.token == "tok-123"
    assert secrets.hmac_secret == "hm"
    assert secrets.slack_webhook_url == "https://h"
    assert secrets.slack_signing_secret == "s"
    assert secrets.values() == {"tok-123", "hm", "https://h", "s"}
    assert "tok-123" not in repr(secrets)
    assert EnvSecrets.from_env({}).values() == frozenset()


@pytest.mark.parametrize(
    ("env", "slack", "key"),
    [
        ({"GHOST_TOKEN": ""}, None, "GHOST_TOKEN"),
        ({"GHOST_TOKEN": " x "}, None, "GHOST_TOKEN"),
        ({"GHOST_HMAC_SECRET": "  "}, None, "GHOST_HMAC_SECRET"),
        ({}, SlackConfig(webhook_url_env="HOOK"), "slack.webhook_url_env"),
        ({}, SlackConfig(bot_token_env="BOT", channel="#c"), "slack.bot_token_env"),
    ],
)
def test_env_secrets_errors(env: dict[str, str], slack: SlackConfig | None, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        EnvSecrets.from_env(env, slack)
    assert info.value.key == key


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    from adapters.config.model import ConfigErrors

    path = tmp_path / "ghost.toml"
    path.write_text(
        '[node]\nport = "x"\nhots = 1\n\n[[workspace]]\nname = "main"\npath = "."\n'
        'test_timeout_s = "abc"\n\n[supervisor]\nretries = 3\n'
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    keys = [p.key for p in info.value.problems]
    assert keys == ["node.port", "node.hots", "workspace[0].test_timeout_s", "supervisor.retries"]
    text = str(info.value)
    assert text.startswith("4 problems:")
    assert f'{path}: node.hots: unknown key (did you mean "host"?)' in text
    assert info.value.key == "node.port"  # the first, as a single error would name it
