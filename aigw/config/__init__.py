"""The configuration: the model (``model.py``), read (``read.py``) from YAML nodes
(``nodes.py``); what can be wrong with it (``errors.py``).

Everything else imports the configuration from here; this package imports none of
aigw's layers (web, auth, gateway, upstream), so any of them may depend on it.
"""

from aigw.config.errors import EX_CONFIG, ConfigError, Problem, format_problems
from aigw.config.model import (
    AccessConfig,
    AccessRule,
    AuthConfig,
    BackendConfig,
    Config,
    IntrospectionConfig,
    LoggingConfig,
    ServerConfig,
    SessionsConfig,
    ToolSelector,
)
from aigw.config.read import load_config, parse_config

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
