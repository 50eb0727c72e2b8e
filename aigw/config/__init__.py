"""The configuration: the model (``model.py``) read from YAML nodes (``nodes.py``).

Everything else imports the configuration from here; this package imports none of
aigw's layers (web, auth, gateway, upstream), so any of them may depend on it.
"""

from aigw.config.model import (
    EX_CONFIG,
    AccessConfig,
    AccessRule,
    AuthConfig,
    BackendConfig,
    Config,
    ConfigError,
    IntrospectionConfig,
    LoggingConfig,
    Problem,
    ServerConfig,
    SessionsConfig,
    ToolSelector,
    format_problems,
    load_config,
    parse_config,
)

__all__ = [
    "EX_CONFIG",
    "AccessConfig",
    "AccessRule",
    "AuthConfig",
    "BackendConfig",
    "Config",
    "ConfigError",
    "IntrospectionConfig",
    "LoggingConfig",
    "Problem",
    "ServerConfig",
    "SessionsConfig",
    "ToolSelector",
    "format_problems",
    "load_config",
    "parse_config",
]
