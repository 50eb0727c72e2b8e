"""The gateway's configuration: frozen typed objects, one class per YAML section.

Everything a user can write in the config file is declared here, once, as a
frozen ``attrs`` class.  The file is validated once, at start (``read.py``), and
nothing downstream re-checks what was validated there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import attrs

DEFAULT_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
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
    #: Upstream sessions kept for 2026-07-28 (stateless) clients, one per user and backend.
    pool_size: int = 10000
    pool_idle_timeout: float = 600.0
    #: Server-to-client streams (GET streams, subscriptions/listen) one user may hold.
    max_streams_per_user: int = 8


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
    #: Server-to-client streams open at once, all users together: each holds a client
    #: socket and, per backend, up to one upstream socket (shared within a user).
    max_streams: int = 1024


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
