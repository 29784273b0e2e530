"""Loading the node configuration (SPEC §3): TOML file + command-line overrides -> the frozen
dataclasses of model.py.

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

import re
import shutil
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

from adapters.config.checks import (
    Table,
    check_argv,
    check_argv_or_shell,
    check_array_of_tables,
    check_bool,
    check_enum,
    check_env_name,
    check_host,
    check_int,
    check_name,
    check_networks,
    check_no_tables,
    check_non_negative,
    check_number,
    check_path_in,
    check_port,
    check_positive,
    check_regex,
    check_str,
    check_str_list,
    check_table,
    check_url,
)
from adapters.config.model import (
    MIB,
    Approval,
    CliOverrides,
    CommandLine,
    Config,
    ConfigError,
    Durability,
    History,
    LogConfig,
    LogFormat,
    LogLevel,
    NodeConfig,
    ServiceConfig,
    SlackConfig,
    SupervisorConfig,
    TestSandbox,
    TunnelConfig,
    WorkspaceConfig,
)
from adapters.defaults import (
    DEFAULT_EXCLUDE,
    DEFAULT_HOST,
    DEFAULT_INCLUDE,
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
    DEFAULT_WORKSPACE_NAME,
)

# ---------------------------------------------------------------------------------------------
# Loading


_S = TypeVar("_S")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


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


def _build(raw: Mapping[str, Any], base: Path, source: Path | None) -> Config:
    # Every section is checked even when an earlier one is bad: all problems are reported at
    # once (Table.check_all), the way a compiler reports every error of a file.
    top = Table(raw, "")
    node = top.attempt(lambda: _node(top, base), NodeConfig())

    def section(build: Callable[[Table], _S], table: Mapping[str, Any], where: str) -> _S | None:
        return top.attempt(lambda: build(top.sub(table, where)), None)

    found = [
        section(lambda t: _workspace(t, base), table, f"workspace[{i}]")
        for i, table in enumerate(top.get("workspace", check_array_of_tables, check_no_tables()))
    ]
    workspaces = tuple(w for w in found if w is not None)
    if not found:
        workspaces = (WorkspaceConfig(name=DEFAULT_WORKSPACE_NAME, path=base),)
    supervisor = top.attempt(lambda: _supervisor(top), SupervisorConfig())
    slack_raw = top.optional("slack", check_table)
    slack = None if slack_raw is None else section(_slack, slack_raw, "slack")
    tunnels = tuple(
        tunnel
        for i, table in enumerate(top.get("tunnel", check_array_of_tables, check_no_tables()))
        if (tunnel := section(_tunnel, table, f"tunnel[{i}]")) is not None
    )
    services = tuple(
        service
        for i, table in enumerate(top.get("service", check_array_of_tables, check_no_tables()))
        if (service := section(lambda t: _service(t, base), table, f"service[{i}]")) is not None
    )
    log = top.attempt(lambda: _log(top, base), LogConfig())
    top.finish()
    top.check_all()
    _unique("workspace", [w.name for w in workspaces])
    _unique("tunnel", [t.name for t in tunnels])
    _unique("service", [s.name for s in services])
    return Config(node, workspaces, supervisor, slack, tunnels, services, log, source)


def _node(top: Table, base: Path) -> NodeConfig:
    t = top.sub(top.get("node", check_table, {}), "node")
    node = NodeConfig(
        host=t.get("host", check_host, DEFAULT_HOST),
        port=t.get("port", check_port, DEFAULT_PORT),
        state_dir=t.get("state_dir", check_path_in(base), base / DEFAULT_STATE_DIR),
        durability=cast(Durability, t.get("durability", check_enum("full", "normal"), "full")),
        trusted_proxies=t.optional("trusted_proxies", check_networks),
    )
    t.finish()
    return node


def _workspace(t: Table, base: Path) -> WorkspaceConfig:
    if not t.has("name"):
        raise ConfigError(t.key("name"), "missing (every [[workspace]] needs a name)")
    if not t.has("path"):
        raise ConfigError(t.key("path"), "missing (every [[workspace]] needs a path)")
    path = t.get("path", check_path_in(base), base)
    if not path.exists():
        raise ConfigError(t.key("path"), f"does not exist: {path}")
    if not path.is_dir():
        raise ConfigError(t.key("path"), f"is not a directory: {path}")
    include = t.get("include", check_str_list, DEFAULT_INCLUDE)
    if not include:
        raise ConfigError(t.key("include"), "must not be empty (no file could be patched)")
    ws = WorkspaceConfig(
        name=t.get("name", check_name, DEFAULT_WORKSPACE_NAME),
        path=path,
        include=include,
        exclude=t.get("exclude", check_str_list, DEFAULT_EXCLUDE),
        **_test_command(t),
        test_timeout_s=t.get("test_timeout_s", check_positive(check_number), 300.0),
        rollback_on_test_failure=t.get("rollback_on_test_failure", check_bool, True),
        approval=cast(Approval, t.get("approval", check_enum("auto", "manual"), "auto")),
        max_file_bytes=t.get("max_file_bytes", check_positive(check_int), MIB),
        test_sandbox=cast(TestSandbox, t.get("test_sandbox", check_enum("none", "bwrap"), "none")),
        history=cast(History, t.get("history", check_enum("patches", "all"), "patches")),
    )
    t.finish()
    if ws.test_sandbox == "bwrap" and shutil.which("bwrap") is None:
        raise ConfigError(
            t.key("test_sandbox"),
            "bwrap (bubblewrap) is not on PATH: install it (apt-get install bubblewrap) or "
            'use "none"',
        )
    return ws


def _test_command(t: Table) -> dict[str, Any]:
    """`test_command`: a command; `false` for none; absent: detected when the node starts."""
    if t.has("test_command") and t.raw("test_command") is False:
        return {"detect_tests": False, "tests_absent_reason": "test_command = false in the config"}
    command = t.optional("test_command", check_argv_or_shell)
    return {"test_command": command, "detect_tests": command is None}


def _supervisor(top: Table) -> SupervisorConfig:
    t = top.sub(top.get("supervisor", check_table, {}), "supervisor")
    sup = SupervisorConfig(
        min_backoff_s=t.get("min_backoff_s", check_positive(check_number), 0.5),
        max_backoff_s=t.get("max_backoff_s", check_positive(check_number), 30.0),
        max_restarts=t.get("max_restarts", check_non_negative(check_int), 5),
        period_s=t.get("period_s", check_positive(check_number), 60.0),
    )
    t.finish()
    if sup.max_backoff_s < sup.min_backoff_s:
        raise ConfigError(
            t.key("max_backoff_s"),
            f"must be at least min_backoff_s ({sup.min_backoff_s:g}), got {sup.max_backoff_s:g}",
        )
    return sup


def _slack(t: Table) -> SlackConfig:
    slack = SlackConfig(
        webhook_url_env=t.optional("webhook_url_env", check_env_name),
        bot_token_env=t.optional("bot_token_env", check_env_name),
        channel=t.optional("channel", check_str),
        signing_secret_env=t.optional("signing_secret_env", check_env_name),
    )
    t.finish()
    if slack.webhook_url_env is None and slack.bot_token_env is None:
        raise ConfigError(
            t.key("webhook_url_env"), "missing: [slack] needs webhook_url_env or bot_token_env"
        )
    if slack.bot_token_env is not None and slack.channel is None:
        raise ConfigError(t.key("channel"), "missing: bot_token_env needs a channel to post to")
    return slack


def _tunnel(t: Table) -> TunnelConfig:
    if not t.has("name"):
        raise ConfigError(t.key("name"), "missing (every [[tunnel]] needs a name)")
    if not t.has("command"):
        raise ConfigError(t.key("command"), "missing (every [[tunnel]] needs a command)")
    tunnel = TunnelConfig(
        name=t.get("name", check_name, ""),
        command=t.get("command", check_argv, CommandLine(())),
        url_pattern=t.optional("url_pattern", check_regex),
        url=t.optional("url", check_url),
        check_interval_s=t.get("check_interval_s", check_positive(check_number), 60.0),
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


def _service(t: Table, base: Path) -> ServiceConfig:
    if not t.has("name"):
        raise ConfigError(t.key("name"), "missing (every [[service]] needs a name)")
    if not t.has("command"):
        raise ConfigError(t.key("command"), "missing (every [[service]] needs a command)")
    svc = ServiceConfig(
        name=t.get("name", check_name, ""),
        command=t.get("command", check_argv, CommandLine(())),
        port=t.optional("port", check_port),
        health_url=t.optional("health_url", check_url),
        max_rss_mb=t.optional("max_rss_mb", check_positive(check_int)),
        cwd=t.optional("cwd", check_path_in(base)),
    )
    t.finish()
    if svc.port == 0:
        raise ConfigError(t.key("port"), "a service port must be 1-65535")
    if svc.cwd is not None and not svc.cwd.is_dir():
        raise ConfigError(t.key("cwd"), f"is not an existing directory: {svc.cwd}")
    return svc


def _log(top: Table, base: Path) -> LogConfig:
    t = top.sub(top.get("log", check_table, {}), "log")
    log = LogConfig(
        file=t.optional("file", check_path_in(base)),
        level=cast(
            LogLevel,
            t.get("level", check_enum("debug", "info", "warning", "error", "critical"), "info"),
        ),
        format=cast(LogFormat, t.get("format", check_enum("json", "text"), "text")),
        max_bytes=t.get("max_bytes", check_positive(check_int), 10 * MIB),
        backups=t.get("backups", check_non_negative(check_int), 5),
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
        node = replace(node, host=check_host("--host", o.host))
    if o.port is not None:
        node = replace(node, port=check_port("--port", o.port))
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
        if o.state_dir is None and config.source is None:
            # No config: the state lives with the project it is about (`ghost-node
            # --workspace ~/code/app` keeps it in ~/code/app/.ghost/, where `ghost` run in
            # that project finds it), as it does when the node starts from there.
            node = replace(node, state_dir=path / DEFAULT_STATE_DIR)
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
