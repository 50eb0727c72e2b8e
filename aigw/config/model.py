"""The gateway's configuration: frozen typed objects, one class per YAML section.

Everything a user can write in the config file is declared here, once, as a
frozen ``attrs`` class whose fields say their default and, in their metadata,
how their key is read (``fields.py``).  The file is validated once, at start
(``read.py``), and nothing downstream re-checks what was validated there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, get_args

import attrs

from aigw.config import nodes as cp
from aigw.config import values
from aigw.config.credentials import BackendAuthConfig, backend_auth
from aigw.config.errors import Problem
from aigw.config.fields import (
    derived,
    own_reader,
    read_as,
    read_either,
    required,
    section_of,
    section_or_switch,
)
from aigw.config.headers import static_headers
from aigw.config.limits import LimitsConfig, limits_section
from aigw.config.redis import REDIS_TIMEOUT_MAX, RedisAddress, redis_url, with_redis_trust

#: JWS algorithms verified unless ``auth.algorithms`` says otherwise.
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
#: Every JWS algorithm aigw can verify; HS* need ``shared_secret``.
KNOWN_ALGORITHMS = (*DEFAULT_ALGORITHMS, "ES512", "HS256", "HS384", "HS512")
SYMMETRIC_ALGORITHMS = ("HS256", "HS384", "HS512")

Effect = Literal["allow", "deny"]
LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warn", "error", "critical"]
AuditFormat = Literal["json"]
AuditWriteErrorPolicy = Literal["log", "refuse"]
StdioScope = Literal["shared", "user"]
ScreenMode = Literal["off", "warn", "block"]

#: The longest ``sessions.stream_retry``: a client told to wait longer has lost what its
#: stream's backends sent meanwhile long before it comes back (``stream_linger``).
STREAM_RETRY_MAX = 60.0

# How the common kinds of field are read (fields.py).
_duration = read_as(cp.duration())
_duration_or_zero = read_as(cp.duration(allow_zero=True))
_size = read_as(cp.as_size)
_count = read_as(cp.integer(1))
_count_or_zero = read_as(cp.integer(0))
_strings = read_as(cp.as_str_list)
_scopes = read_as(values.scopes)
_regexes = read_as(values.regexes)


@attrs.frozen
class ToolSelector:
    """Which upstream tools a backend exposes; ``exclude`` wins over ``include``.

    Empty ``include`` and ``include_regex`` mean "every tool".
    """

    include: tuple[str, ...] = attrs.field(default=(), metadata=_strings)
    include_regex: tuple[re.Pattern[str], ...] = attrs.field(default=(), metadata=_regexes)
    exclude: tuple[str, ...] = attrs.field(default=(), metadata=_strings)
    exclude_regex: tuple[re.Pattern[str], ...] = attrs.field(default=(), metadata=_regexes)


#: The keys only one kind of backend takes; read.py refuses the other kind's.
#: Keys of a Streamable HTTP backend only; ``auth`` sets HTTP headers (a stdio child
#: gets its secrets through ``env``).
HTTP_KEYS = (
    "url",
    "headers",
    "headers_file",
    "connect_timeout",
    "max_connections",
    "keep_alive_timeout",
    "ca_file",
    "auth",
)
STDIO_KEYS = ("command", "args", "env", "cwd", "stdio")


@attrs.frozen
class StdioConfig:
    """How many child processes a stdio backend runs: one for the gateway (``shared``)
    or one per user (``user``: at most ``max_processes``, each stopped after
    ``idle_timeout`` unused)."""

    scope: StdioScope = attrs.field(
        default="shared", metadata=read_as(cp.choice(*get_args(StdioScope)))
    )
    max_processes: int = attrs.field(default=100, metadata=_count)
    idle_timeout: float = attrs.field(default=600.0, metadata=_duration)


@attrs.frozen
class BackendConfig:
    """One MCP server: reached at ``url`` (Streamable HTTP) or run as ``command`` (stdio);
    exactly one of the two (read.py checks it, and the keys only one of them takes)."""

    name: str = attrs.field(metadata=required(values.backend_name, ""))
    url: str | None = attrs.field(default=None, metadata=read_as(values.url(ascii_only=True)))
    tools: ToolSelector = attrs.field(
        default=ToolSelector(), metadata=read_as(section_of(ToolSelector))
    )
    headers: Mapping[str, str] = attrs.field(
        factory=dict, metadata=read_either("headers_file", static_headers)
    )
    timeout: float = attrs.field(default=30.0, metadata=_duration)
    connect_timeout: float = attrs.field(default=10.0, metadata=_duration)
    max_connections: int = attrs.field(default=32, metadata=_count)
    #: How long an idle connection to the backend is kept for the next request: under
    #: the 5 s after which Node's and uvicorn's servers close theirs, so aigw closes
    #: first.  A response's ``Keep-Alive: timeout=N`` shortens it to N less a second.
    keep_alive_timeout: float = attrs.field(default=4.0, metadata=_duration)
    #: The largest message read from the backend: a JSON reply body, one SSE event, one
    #: line of a stdio child.  A stream of many messages has no total bound (a GET
    #: stream may last for days); one message past this fails as ``bad_reply``.
    max_message_bytes: int = attrs.field(default=16 * 1024 * 1024, metadata=_size)
    #: How long the backend's stream (GET stream, or aigw's ``subscriptions/listen``) of
    #: an upstream session stays open after its last client stream closed, for the next
    #: one of the same user (or session), with what the backend sent meanwhile: a client
    #: that closes and reopens its stream does not race the backend's one-stream rule
    #: (409, ``gateway/linger.py``).  0: closed at once.
    stream_linger: float = attrs.field(default=5.0, metadata=_duration_or_zero)
    ca_file: str | None = attrs.field(default=None, metadata=read_as(values.ca_file))
    required_scopes: tuple[str, ...] = attrs.field(default=(), metadata=_scopes)
    #: stdio (MCP basic/transports "stdio"): the program, its arguments, the variables
    #: added to its minimal environment, its working directory.
    command: str | None = attrs.field(default=None, metadata=read_as(cp.as_nonempty_str))
    args: tuple[str, ...] = attrs.field(default=(), metadata=read_as(cp.list_of(cp.as_str)))
    env: Mapping[str, str] = attrs.field(factory=dict, metadata=read_as(values.environment))
    cwd: str | None = attrs.field(default=None, metadata=read_as(values.directory))
    stdio: StdioConfig = attrs.field(
        default=StdioConfig(), metadata=read_as(section_of(StdioConfig))
    )
    auth: BackendAuthConfig | None = attrs.field(default=None, metadata=read_as(backend_auth))
    #: Tool and prompt descriptions screened for poisoning (``gateway/screening.py``):
    #: ``warn`` serves them and reports, ``block`` hides them.
    screen_tools: ScreenMode = attrs.field(default="off", metadata=read_as(values.screening_mode))
    #: Tool and prompt definitions pinned on first sight (``gateway/pinning.py``); a later
    #: change is reported, and under ``block`` hidden until accepted (``aigw tools accept``).
    #: Pins persist in ``state_dir``.
    pin_tools: ScreenMode = attrs.field(default="off", metadata=read_as(values.screening_mode))


@attrs.frozen
class IntrospectionConfig:
    """RFC 7662 token introspection, for opaque (non-JWT) access tokens."""

    endpoint: str = attrs.field(metadata=required(values.url(), ""))
    client_id: str = attrs.field(metadata=required(cp.as_nonempty_str, ""))
    client_secret: str = attrs.field(
        metadata=read_either("client_secret_file", cp.secret_text, required=True, placeholder="")
    )
    timeout: float = attrs.field(default=10.0, metadata=_duration)
    cache_size: int = attrs.field(default=10000, metadata=_count_or_zero)
    #: How long an active answer is trusted (never past the token's ``exp``): a token
    #: revoked at the authorization server is refused at most this much later (RFC
    #: 7662 section 4); 0: every request introspected.
    cache_ttl: float = attrs.field(default=60.0, metadata=_duration_or_zero)


@attrs.frozen
class BrowserLoginConfig:
    """aigw's own client at ``auth.issuer``, to sign in whoever opens a ``user_oauth`` link
    (``auth/browser_login.py``); without it aigw registers itself there once (RFC 7591)."""

    client_id: str = attrs.field(metadata=required(cp.as_nonempty_str, ""))
    client_secret: str | None = attrs.field(
        default=None, repr=False, metadata=read_either("client_secret_file", cp.secret_text)
    )


@attrs.frozen
class AuthConfig:
    issuer: str = attrs.field(metadata=required(values.url(query=False), ""))
    #: Default: the resource URL (public_url + mcp_path).
    audiences: tuple[str, ...] = attrs.field(metadata=own_reader())
    jwks_uri: str | None = attrs.field(default=None, metadata=read_as(values.url()))
    scopes_supported: tuple[str, ...] = attrs.field(default=(), metadata=_scopes)
    required_scopes: tuple[str, ...] = attrs.field(default=(), metadata=_scopes)
    algorithms: tuple[str, ...] = attrs.field(default=DEFAULT_ALGORITHMS, metadata=own_reader())
    leeway: float = attrs.field(default=30.0, metadata=_duration_or_zero)
    require_access_token_type: bool = attrs.field(default=False, metadata=read_as(cp.as_bool))
    shared_secret: bytes | None = attrs.field(
        default=None, metadata=read_either("shared_secret_file", cp.secret)
    )
    jwks_refresh_interval: float = attrs.field(default=300.0, metadata=_duration)
    jwks_min_refresh_interval: float = attrs.field(default=30.0, metadata=_duration)
    jwks_unknown_kid_cooldown: float = attrs.field(default=30.0, metadata=_duration_or_zero)
    jwks_max_bytes: int = attrs.field(default=1024 * 1024, metadata=_size)
    jwks_max_keys: int = attrs.field(default=64, metadata=_count)
    http_timeout: float = attrs.field(default=10.0, metadata=_duration)
    token_cache_size: int = attrs.field(default=10000, metadata=_count_or_zero)
    introspection: IntrospectionConfig | None = attrs.field(default=None, metadata=own_reader())
    browser_login: BrowserLoginConfig | None = attrs.field(
        default=None, metadata=read_as(section_of(BrowserLoginConfig))
    )
    relay_authorization_server_metadata: bool = attrs.field(
        default=True, metadata=read_as(cp.as_bool)
    )
    metadata_refresh_interval: float = attrs.field(default=3600.0, metadata=_duration)
    resource_name: str | None = attrs.field(default=None, metadata=read_as(cp.as_nonempty_str))
    resource_documentation: str | None = attrs.field(default=None, metadata=read_as(values.url()))


@attrs.frozen
class AccessRule:
    """One rule of the access policy; the first rule that matches decides.

    A rule matches a request when every principal condition given matches
    (``subjects``, ``clients``, ``scopes`` all held, ``claims`` equal or
    contained, a claim named by its dotted path when no claim has the whole name)
    and its target matches (``backends`` and ``methods`` globs; then ``tools``,
    ``prompts``, ``resources`` globs: when any of the three is given, the request
    must name an item of one of those kinds that its globs match; empty means any).
    """

    effect: Effect = attrs.field(metadata=required(cp.choice(*get_args(Effect)), "deny"))
    subjects: tuple[str, ...] = attrs.field(default=(), metadata=_strings)
    clients: tuple[str, ...] = attrs.field(default=(), metadata=_strings)
    scopes: tuple[str, ...] = attrs.field(default=(), metadata=_scopes)
    claims: Mapping[str, str] = attrs.field(factory=dict, metadata=read_as(cp.as_str_map))
    backends: tuple[str, ...] = attrs.field(default=(), metadata=_strings)
    tools: tuple[str, ...] = attrs.field(default=(), metadata=_strings)
    #: MCP methods (``tools/call``, ``tools/list``, globs such as ``resources/*``).
    methods: tuple[str, ...] = attrs.field(default=(), metadata=read_as(values.method_globs))
    prompts: tuple[str, ...] = attrs.field(default=(), metadata=_strings)
    #: Upstream resource URIs (as the backend names them, not ``aigw:<backend>/...``).
    resources: tuple[str, ...] = attrs.field(default=(), metadata=_strings)


@attrs.frozen
class AccessConfig:
    default: Effect = attrs.field(default="allow", metadata=read_as(cp.choice(*get_args(Effect))))
    rules: tuple[AccessRule, ...] = attrs.field(
        default=(), metadata=read_as(cp.list_of(section_of(AccessRule)))
    )


@attrs.frozen
class SessionsConfig:
    """Keys that seal ``Mcp-Session-Id`` values (None: a random per-process key)."""

    secret: bytes | None = attrs.field(
        default=None, metadata=read_either("secret_file", values.sealing_key)
    )
    old_secrets: tuple[bytes, ...] = attrs.field(
        default=(), metadata=read_either("old_secret_files", values.sealing_keys)
    )
    ttl: float = attrs.field(default=24 * 3600.0, metadata=_duration)
    #: Upstream sessions kept for 2026-07-28 (stateless) clients, one per user and backend.
    pool_size: int = attrs.field(default=10000, metadata=_count)
    pool_idle_timeout: float = attrs.field(default=600.0, metadata=_duration)
    #: Server-to-client streams (GET streams, subscriptions/listen) one user may hold.
    max_streams_per_user: int = attrs.field(default=8, metadata=_count)
    #: The SSE ``retry`` of a session's GET stream (sent in milliseconds): how long its
    #: client waits before it reconnects, given on the priming event and on the last one
    #: before aigw ends the stream (a stop).  2025-11-25 basic/transports: the client MUST
    #: respect it.  Both SDK clients try twice: the default keeps both tries within the
    #: default ``backends[].stream_linger``, so what the backend sent meanwhile is held.
    stream_retry: float = attrs.field(
        default=2.0, metadata=read_as(cp.duration(at_most=STREAM_RETRY_MAX))
    )
    #: A session client asked on a 2026-07-28 backend's behalf (input_required,
    #: basic/patterns/mrtr): at most this many rounds per call, each answered within
    #: ``input_timeout``.
    input_max_rounds: int = attrs.field(default=10, metadata=_count)
    input_timeout: float = attrs.field(default=300.0, metadata=_duration)
    #: Calls of 2026-07-28 clients parked while a session backend waits for the
    #: client's input: at most ``max_parked`` in this process, each for ``park_timeout``.
    max_parked: int = attrs.field(default=1000, metadata=_count)
    park_timeout: float = attrs.field(default=300.0, metadata=_duration)
    #: Where the other aigw processes reach this one's MCP endpoint, so that a retry
    #: landing elsewhere is forwarded to the process holding its parked call.
    peer_url: str | None = attrs.field(default=None, metadata=read_as(values.url(query=False)))
    #: Where every process hears of the sessions ended with DELETE, so that each answers
    #: their ids 404 (``gateway/ended_sessions.py``); None: only the process that ended one.
    redis_url: RedisAddress | None = attrs.field(default=None, metadata=read_as(redis_url))
    #: How long one Redis call may take, connecting included: past it the call failed
    #: (counted, logged, and each caller falls back).  Read, and unused, without
    #: ``redis_url``, as ``limits.redis_timeout`` is.
    redis_timeout: float = attrs.field(
        default=5.0, metadata=read_as(cp.duration(at_most=REDIS_TIMEOUT_MAX))
    )
    #: PEM certificates a ``rediss://`` server's must chain to; None: the system's roots.
    redis_ca_file: str | None = attrs.field(default=None, metadata=read_as(values.ca_file))


@attrs.frozen
class TokenStoreConfig:
    """The key that seals the secrets of the store in ``state_dir`` (``store/sqlite.py``).

    Absent: derived from ``sessions.secret`` with the sealer's HKDF under a purpose of
    its own (independent of the sessions' keys), so one key file serves both.
    ``old_keys`` still open what they sealed, for rotation.
    """

    key: bytes | None = attrs.field(
        default=None, metadata=read_either("key_file", values.sealing_key)
    )
    old_keys: tuple[bytes, ...] = attrs.field(
        default=(), metadata=read_either("old_key_files", values.sealing_keys)
    )


@attrs.frozen
class LoggingConfig:
    format: LogFormat = attrs.field(
        default="text", metadata=read_as(cp.choice(*get_args(LogFormat)))
    )
    level: LogLevel = attrs.field(default="info", metadata=read_as(cp.choice(*get_args(LogLevel))))
    access_log: bool = attrs.field(default=True, metadata=read_as(cp.as_bool))


@attrs.frozen
class AuditConfig:
    """The audit trail (``aigw/audit.py``): on the ``aigw.audit`` log namespace whenever
    enabled, and in a file of its own when ``file`` is set."""

    enabled: bool = attrs.field(default=True, metadata=read_as(cp.as_bool))
    file: str | None = attrs.field(default=None, metadata=read_as(values.appended_file))
    #: JSON lines, one object per event; the only format for now.
    format: AuditFormat = attrs.field(
        default="json", metadata=read_as(cp.choice(*get_args(AuditFormat)))
    )
    #: Tool and prompt arguments in the events (they may hold personal data).
    include_arguments: bool = attrs.field(default=False, metadata=read_as(cp.as_bool))
    #: When ``file`` cannot be written (``audit_file.py``): ``log`` (warn, count, lose
    #: the events, serve on) or ``refuse`` (fail closed: audited requests get 503 and
    #: /readyz says not ready until the file takes writes again).
    on_write_error: AuditWriteErrorPolicy = attrs.field(
        default="log", metadata=read_as(cp.choice(*get_args(AuditWriteErrorPolicy)))
    )


@attrs.frozen
class ServerConfig:
    """Bounds of the HTTP server facing clients."""

    max_body_bytes: int = attrs.field(default=4 * 1024 * 1024, metadata=_size)
    max_header_bytes: int = attrs.field(default=16 * 1024, metadata=_size)
    max_headers: int = attrs.field(default=100, metadata=_count)
    idle_timeout: float = attrs.field(default=60.0, metadata=_duration)
    #: A request head must be whole this long after its first byte: the idle timeout
    #: restarts with every byte, so a head trickled a byte at a time (slowloris) is
    #: cut by this deadline instead, answered 408.
    header_timeout: float = attrs.field(default=20.0, metadata=_duration)
    shutdown_timeout: float = attrs.field(default=10.0, metadata=_duration)
    #: Server-to-client streams open at once, all users together: each holds a client
    #: socket and, per backend, up to one upstream socket (shared within a user).
    max_streams: int = attrs.field(default=1024, metadata=_count)


@attrs.frozen
class MetricsConfig:
    """Prometheus metrics on a listener of their own (``GET /metrics``, no token):
    reachable from the monitoring side only.  ``metrics: off`` turns them off."""

    enabled: bool = attrs.field(default=True, metadata=read_as(cp.as_bool))
    listen: str = attrs.field(
        default="tcp:9464:interface=127.0.0.1", metadata=read_as(values.endpoint)
    )


@attrs.frozen
class TracingConfig:
    """OpenTelemetry spans exported over OTLP/HTTP (``aigw/tracing``); absent: off
    (a client's ``traceparent`` is still passed on to the backends)."""

    otlp_endpoint: str = attrs.field(metadata=required(values.url(), ""))
    service_name: str = attrs.field(default="aigw", metadata=read_as(cp.as_nonempty_str))
    sample_ratio: float = attrs.field(default=1.0, metadata=read_as(values.ratio))
    export_timeout: float = attrs.field(default=10.0, metadata=_duration)


@attrs.frozen
class Config:
    listen: tuple[str, ...] = attrs.field(metadata=required(values.listen, ()))
    public_url: str = attrs.field(metadata=required(values.url(query=False), ""))
    mcp_path: str = attrs.field(metadata=required(values.mcp_path, "/mcp"))
    #: None: ``auth: none`` (development only).
    auth: AuthConfig | None = attrs.field(metadata=own_reader())
    #: The native ``backends`` then those of ``import_mcp_servers`` (read.py).
    backends: tuple[BackendConfig, ...] = attrs.field(metadata=own_reader())
    #: An ``{"mcpServers": ...}`` file of an MCP client (``mcp_servers.py``), resolved.
    import_mcp_servers: str | None = attrs.field(default=None, metadata=own_reader())
    access: AccessConfig = attrs.field(default=AccessConfig(), metadata=own_reader())
    sessions: SessionsConfig = attrs.field(
        default=SessionsConfig(), metadata=read_as(with_redis_trust(section_of(SessionsConfig)))
    )
    logging: LoggingConfig = attrs.field(
        default=LoggingConfig(), metadata=read_as(section_of(LoggingConfig))
    )
    server: ServerConfig = attrs.field(
        default=ServerConfig(), metadata=read_as(section_of(ServerConfig))
    )
    audit: AuditConfig = attrs.field(
        default=AuditConfig(), metadata=read_as(section_of(AuditConfig))
    )
    allowed_origins: tuple[str, ...] = attrs.field(default=(), metadata=read_as(values.origins))
    metrics: MetricsConfig = attrs.field(
        default=MetricsConfig(),
        metadata=read_as(
            section_or_switch(MetricsConfig, lambda enabled: MetricsConfig(enabled=enabled))
        ),
    )
    limits: LimitsConfig = attrs.field(default=LimitsConfig(), metadata=read_as(limits_section))
    tracing: TracingConfig | None = attrs.field(
        default=None, metadata=read_as(section_of(TracingConfig))
    )
    #: Where aigw keeps what persists: tool pins and the encrypted token store
    #: (``<state_dir>/aigw.sqlite3``); None: nothing persists.
    state_dir: str | None = attrs.field(default=None, metadata=read_as(values.directory))
    token_store: TokenStoreConfig = attrs.field(
        default=TokenStoreConfig(), metadata=read_as(section_of(TokenStoreConfig))
    )
    #: A secret file (or a config file holding a secret) others may read is a problem,
    #: not a warning (``secrets.file_mode_problems``).
    strict_file_modes: bool = attrs.field(default=False, metadata=read_as(cp.as_bool))
    #: Where the config was read from: set by the loader, whatever the file says.
    source: str = attrs.field(default="<memory>", metadata=own_reader())
    #: What is unwise but allowed (a key file others may read): the loader's, logged at
    #: start and on reload.
    warnings: tuple[Problem, ...] = attrs.field(default=(), eq=False, metadata=derived())

    @property
    def resource_url(self) -> str:
        """The canonical MCP resource URL (RFC 8707 §2): public_url + mcp_path."""
        return self.public_url.rstrip("/") + self.mcp_path
