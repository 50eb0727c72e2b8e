"""The gateway's configuration: YAML in, frozen typed objects out.

Everything a user can write in the config file is declared here, once, as a
frozen ``attrs`` class.  The file is validated once, at start; every problem is
reported with its key path (``backends[1].url``) and its line in the file, and
nothing downstream re-checks what was validated here.

This module imports no other module of aigw: every layer imports it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import attrs

#: Backend names prefix tool names as ``<backend>__<tool>``; the exposed name is
#: split at its first ``__``, so a backend name must not contain it.
BACKEND_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
NAME_SEPARATOR = "__"

EX_CONFIG = 78  # sysexits.h: configuration error

DEFAULT_ALGORITHMS = (
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384",
    "EdDSA",
)


@attrs.frozen
class ToolSelector:
    """Which upstream tools a backend exposes; ``exclude`` wins over ``include``.

    Empty ``include`` and ``include_regex`` mean "every tool".
    """

    include: tuple[str, ...] = ()
    include_regex: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[str, ...] = ()
    exclude_regex: tuple[re.Pattern[str], ...] = ()


@attrs.frozen
class BackendConfig:
    name: str
    url: str
    tools: ToolSelector = ToolSelector()
    headers: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_connections: int = 32
    ca_file: str | None = None
    required_scopes: tuple[str, ...] = ()


@attrs.frozen
class IntrospectionConfig:
    """RFC 7662 token introspection, for opaque (non-JWT) access tokens."""

    endpoint: str
    client_id: str
    client_secret: str
    timeout: float = 10.0
    cache_size: int = 10000


@attrs.frozen
class AuthConfig:
    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str | None = None
    scopes_supported: tuple[str, ...] = ()
    required_scopes: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 30.0
    require_access_token_type: bool = False
    shared_secret: bytes | None = None
    jwks_refresh_interval: float = 300.0
    jwks_min_refresh_interval: float = 30.0
    jwks_unknown_kid_cooldown: float = 30.0
    jwks_max_bytes: int = 1024 * 1024
    jwks_max_keys: int = 64
    http_timeout: float = 10.0
    token_cache_size: int = 10000
    introspection: IntrospectionConfig | None = None
    relay_authorization_server_metadata: bool = True
    metadata_refresh_interval: float = 3600.0
    resource_name: str | None = None
    resource_documentation: str | None = None


@attrs.frozen
class AccessRule:
    """One rule of the access policy; the first rule that matches decides.

    A rule matches a request when every principal condition given matches
    (``subjects``, ``clients``, ``scopes`` all held, ``claims`` equal or
    contained) and its target matches (``backends`` and ``tools`` globs; empty
    means any).
    """

    effect: Literal["allow", "deny"]
    subjects: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    claims: Mapping[str, str] = attrs.field(factory=dict)
    backends: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()


@attrs.frozen
class AccessConfig:
    default: Literal["allow", "deny"] = "allow"
    rules: tuple[AccessRule, ...] = ()


@attrs.frozen
class SessionsConfig:
    """Keys that seal ``Mcp-Session-Id`` values (None: a random per-process key)."""

    secret: bytes | None = None
    old_secrets: tuple[bytes, ...] = ()
    ttl: float = 24 * 3600.0


@attrs.frozen
class LoggingConfig:
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warn", "error", "critical"] = "info"
    access_log: bool = True


@attrs.frozen
class ServerConfig:
    """Bounds of the HTTP server facing clients."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    idle_timeout: float = 60.0
    shutdown_timeout: float = 10.0


@attrs.frozen
class Config:
    listen: tuple[str, ...]
    public_url: str
    mcp_path: str
    auth: AuthConfig | None
    backends: tuple[BackendConfig, ...]
    access: AccessConfig = AccessConfig()
    sessions: SessionsConfig = SessionsConfig()
    logging: LoggingConfig = LoggingConfig()
    server: ServerConfig = ServerConfig()
    allowed_origins: tuple[str, ...] = ()
    source: str = "<memory>"

    @property
    def resource_url(self) -> str:
        """The canonical MCP resource URL (RFC 8707 §2): public_url + mcp_path."""
        return self.public_url.rstrip("/") + self.mcp_path


@attrs.frozen
class Problem:
    """One thing wrong with a config file."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.path}: {self.message}"


class ConfigError(Exception):
    """The config file cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__(source, problems)
        self.source = source
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(f"{self.source}:{p}" for p in self.problems)


def load_config(path: str) -> Config:
    """Read, substitute, validate and freeze the config file at ``path``.

    Raises ConfigError listing every problem found.
    """
    raise NotImplementedError


def parse_config(text: str, source: str = "<memory>") -> Config:
    """Like load_config, from text; ``*_file`` keys are read relative to the cwd."""
    raise NotImplementedError
