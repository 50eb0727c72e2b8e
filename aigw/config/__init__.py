"""The configuration, read once at start from a YAML file.

- ``model.py``: the frozen classes; each field says its default and how it is read;
- ``fields.py``: reads a section into a class by those field declarations;
- ``read.py``: what needs more (cross-field defaults, unique names), load/parse;
- ``values.py``: aigw's kinds of values (URLs, scopes, endpoints, session keys);
- ``credentials.py``: a backend's ``auth`` (client credentials, token exchange, claims);
- ``headers.py``: a backend's static upstream headers, and claims as headers;
- ``nodes.py``: YAML node walking with line numbers, generic converters;
- ``envoy/``: the Envoy AI Gateway's standalone YAML, read as native config nodes;
- ``errors.py``: Problem, ConfigError, EX_CONFIG.

Everything else imports the configuration from here.  This package imports none
of aigw's layers (web, auth, gateway, upstream, sealed), so any of them may depend
on it, except two pure modules that own a rule it checks: ``upstream/headers.py``
and ``sealed/sealer.py`` (see ``.importlinter``).
"""

from aigw.config.credentials import (
    BackendAuthConfig,
    ClientCredentialsConfig,
    TokenExchangeConfig,
    UserOAuthConfig,
)
from aigw.config.errors import EX_CONFIG, ConfigError, Problem, format_problems
from aigw.config.model import (
    AccessConfig,
    AccessRule,
    AuditConfig,
    AuthConfig,
    BackendConfig,
    Config,
    IntrospectionConfig,
    LoggingConfig,
    MetricsConfig,
    ServerConfig,
    SessionsConfig,
    StdioConfig,
    ToolSelector,
    TracingConfig,
)
from aigw.config.read import load_config, parse_config

__all__ = [
    "EX_CONFIG",
    "AccessConfig",
    "AccessRule",
    "AuditConfig",
    "AuthConfig",
    "BackendAuthConfig",
    "BackendConfig",
    "ClientCredentialsConfig",
    "Config",
    "ConfigError",
    "IntrospectionConfig",
    "LoggingConfig",
    "MetricsConfig",
    "Problem",
    "ServerConfig",
    "SessionsConfig",
    "StdioConfig",
    "TokenExchangeConfig",
    "ToolSelector",
    "TracingConfig",
    "UserOAuthConfig",
    "format_problems",
    "load_config",
    "parse_config",
]
