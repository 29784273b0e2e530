"""The node configuration (SPEC §3): `load_config` (loading.py) reads the TOML file and the
command-line overrides into the frozen dataclasses of model.py, every value checked once
(checks.py) so that the rest of the node can trust it."""

from adapters.config.loading import load_config
from adapters.config.model import (
    CliOverrides,
    CommandLine,
    Config,
    ConfigError,
    EnvSecrets,
    LogConfig,
    NodeConfig,
    ServiceConfig,
    SlackConfig,
    SupervisorConfig,
    TunnelConfig,
    WorkspaceConfig,
)
from adapters.defaults import DEFAULT_EXCLUDE, DEFAULT_INCLUDE

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
