"""Reading the config file into the model: YAML nodes in, frozen objects out.

Every problem is reported with its key path (``backends[1].url``) and its line
in the file.  Each _read_* function turns one Section (a YAML mapping with its
path and line numbers) into one frozen class.  Problems are collected in the
Context; a value found wrong is replaced by its default so reading can go on,
and the half-built Config is thrown away if any problem was found.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping

import attrs
import yaml
from twisted.internet import endpoints

from aigw.config import nodes as cp
from aigw.config.errors import ConfigError, Problem
from aigw.config.model import (
    DEFAULT_ALGORITHMS,
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
from aigw.protocol.names import BACKEND_NAME_PATTERN, NAME_SEPARATOR
from aigw.upstream import headers as upstream_headers

#: Every JWS algorithm aigw can verify; HS* need ``shared_secret``.
KNOWN_ALGORITHMS = (*DEFAULT_ALGORITHMS, "ES512", "HS256", "HS384", "HS512")
SYMMETRIC_ALGORITHMS = ("HS256", "HS384", "HS512")
MIN_SESSION_SECRET_BYTES = 32


def _keys(cls: type, *extra: str) -> tuple[str, ...]:
    """The YAML keys of a section: its class's field names, plus ``*_file`` twins."""
    return (*attrs.fields_dict(cls), *extra)


def _url(*, query: bool = True, ascii_only: bool = False) -> cp.Converter[str]:
    """A converter for absolute http(s) URLs with a host and no fragment.

    ``ascii_only`` for URLs aigw sends as raw bytes (the backends' URLs, RFC 3986 §2).
    """

    def convert(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
        value = cp.as_nonempty_str(ctx, path, node)
        if value is None:
            return None
        problem = _url_problem(value, query=query)
        if problem is None and ascii_only and not value.isascii():
            problem = "the URL must be ASCII (write the host in punycode, percent-encode the path)"
        if problem:
            ctx.report(path, node, f"{problem}: {value!r}")
            return None
        return value

    return convert


def _url_problem(value: str, *, query: bool) -> str | None:
    if not value.isprintable() or any(c.isspace() for c in value):
        return "the URL contains spaces or control characters (percent-encode them)"
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        return f"not a valid URL ({error})"
    if parts.scheme not in ("http", "https"):
        return "must be an absolute http:// or https:// URL"
    if not parts.hostname:
        return "the URL has no host"
    if parts.fragment or value.endswith("#"):
        return "the URL must not have a #fragment"
    if not query and (parts.query or value.endswith("?")):
        return "the URL must not have a ?query"
    return None


def _origin(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    """An Origin header value: scheme://host[:port], nothing after it."""
    value = _url(query=False)(ctx, path, node)
    if value is not None and urllib.parse.urlsplit(value).path not in ("", "/"):
        ctx.report(path, node, f"an origin has no path (write scheme://host[:port]): {value!r}")
        return None
    return value


_origins = cp.list_of(_origin)


def _mcp_path(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    value = cp.as_nonempty_str(ctx, path, node)
    if value is None:
        return None
    if not value.startswith("/"):
        ctx.report(path, node, f"must start with '/', got {value!r}")
        return None
    if any(c in value for c in "?# ") or not value.isprintable():
        ctx.report(path, node, f"must be a plain URL path (no ?, #, spaces), got {value!r}")
        return None
    return value


def _endpoint(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    """A Twisted server endpoint string, checked by parsing it; nothing is bound."""
    value = cp.as_nonempty_str(ctx, path, node)
    if value is None:
        return None
    problem = _endpoint_problem(value)
    if problem:
        ctx.report(path, node, f"invalid endpoint {value!r}: {problem}")
        return None
    return value


def _endpoint_problem(description: str) -> str | None:
    try:
        if description.split(":", 1)[0] == "systemd":
            # Building it needs LISTEN_FDS, which exist only once systemd starts us.
            endpoints._parseServer(description, None)
        else:
            # The reactor is only stored by the endpoint, never used until listen().
            endpoints.serverFromString(object(), description)
    except Exception as error:  # any parser error is a bad string
        return str(error) or type(error).__name__
    return None


def _regex(ctx: cp.Context, path: str, node: cp.Node) -> re.Pattern[str] | None:
    value = cp.as_str(ctx, path, node)
    if value is None:
        return None
    try:
        return re.compile(value)
    except re.error as error:
        ctx.report(path, node, f"invalid regular expression {value!r}: {error}")
        return None


_regex_list = cp.list_of(_regex)

#: RFC 6749 §3.3 scope-token.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def _scope(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    value = cp.as_nonempty_str(ctx, path, node)
    if value is not None and not _SCOPE_TOKEN.fullmatch(value):
        ctx.report(path, node, f"{value!r} is not a scope (no spaces, quotes or backslashes)")
        return None
    return value


_scopes = cp.list_of(_scope)


def _backend_name(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    value = cp.as_nonempty_str(ctx, path, node)
    if value is None:
        return None
    if NAME_SEPARATOR in value:
        ctx.report(
            path,
            node,
            f"{value!r} contains {NAME_SEPARATOR!r}: tools are exposed as "
            f"<backend>{NAME_SEPARATOR}<tool> and split at the first {NAME_SEPARATOR!r}",
        )
        return None
    if not BACKEND_NAME_PATTERN.fullmatch(value):
        ctx.report(
            path,
            node,
            f"{value!r} is not a valid backend name: 1 to 32 letters, digits, '_' or '-', "
            "starting with a letter or digit (it prefixes tool names)",
        )
        return None
    return value


def _read_tools(section: cp.Section | None) -> ToolSelector:
    if section is None:
        return ToolSelector()
    return ToolSelector(
        include=section.read("include", cp.as_str_list, ()),
        include_regex=section.read("include_regex", _regex_list, ()),
        exclude=section.read("exclude", cp.as_str_list, ()),
        exclude_regex=section.read("exclude_regex", _regex_list, ()),
    )


def _read_headers(section: cp.Section) -> dict[str, str]:
    """Static upstream headers, inline or from a YAML/JSON mapping file."""
    given = section.twin("headers")
    if given is None:
        return {}
    path, node, is_file = given
    if not is_file:
        headers = cp.as_str_map(section.ctx, path, node) or {}
        return _valid_headers(section.ctx, path, node, headers, inline=True)
    name = cp.as_nonempty_str(section.ctx, path, node)
    data = None if name is None else cp.read_file(section.ctx, path, node, name)
    if name is None or data is None:
        return {}
    headers = _headers_from_file(section.ctx, path, node, section.ctx.resolve_path(name), data)
    return _valid_headers(section.ctx, path, node, headers, inline=False)


def _valid_headers(
    ctx: cp.Context, path: str, node: cp.Node, headers: dict[str, str], *, inline: bool
) -> dict[str, str]:
    """Only well-formed headers that aigw does not set itself; the rest are problems."""
    valid = {}
    for name, value in headers.items():
        where = (f"{path}.{name}", _value_node(node, name)) if inline else (path, node)
        if not upstream_headers.FIELD_NAME.fullmatch(name):
            ctx.report(*where, f"{name!r} is not a valid header name")
        elif upstream_headers.is_reserved(name):
            ctx.report(*where, f"{name} is set by aigw and cannot be configured")
        elif any(c in value for c in "\r\n\0"):
            ctx.report(*where, f"the value of {name} contains a line break or NUL")
        elif not upstream_headers.FIELD_VALUE.fullmatch(value):
            ctx.report(
                *where,
                f"the value of {name} holds a control character or a character "
                "outside Latin-1 (RFC 9110 §5.5)",
            )
        else:
            valid[name] = value
    return valid


def _headers_from_file(
    ctx: cp.Context, path: str, node: cp.Node, full: str, data: bytes
) -> dict[str, str]:
    try:
        loaded = yaml.safe_load(data.decode("utf-8"))
    except RecursionError:
        ctx.report(path, node, f"{full} is not valid YAML/JSON: it is nested too deeply")
        return {}
    except Exception as error:
        # Besides YAMLError, PyYAML's constructors raise KeyError, ValueError...
        # on a tag that does not fit its value (``!!bool foo``).
        ctx.report(path, node, f"{full} is not valid YAML/JSON: {error}")
        return {}
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) and not isinstance(v, bool)
        for k, v in loaded.items()
    ):
        ctx.report(path, node, f"{full} must hold a mapping of header names to strings")
        return {}
    return {k: str(v) for k, v in loaded.items()}


def _ca_file(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    name = cp.as_nonempty_str(ctx, path, node)
    if name is None or cp.read_file(ctx, path, node, name) is None:
        return None
    return ctx.resolve_path(name)


def _read_backend(ctx: cp.Context, path: str, node: cp.Node) -> BackendConfig | None:
    section = cp.open_section(ctx, node, path, _keys(BackendConfig, "headers_file"))
    if section is None:
        return None
    return BackendConfig(
        name=section.need("name", _backend_name, ""),
        url=section.need("url", _url(ascii_only=True), ""),
        tools=_read_tools(section.section("tools", _keys(ToolSelector))),
        headers=_read_headers(section),
        timeout=section.read("timeout", cp.duration(), 30.0),
        connect_timeout=section.read("connect_timeout", cp.duration(), 10.0),
        max_connections=section.read("max_connections", cp.integer(1), 32),
        ca_file=section.read("ca_file", _ca_file, None),
        required_scopes=section.read("required_scopes", _scopes, ()),
    )


def _value_node(node: cp.Node, key: str) -> cp.Node:
    """The value node at ``key`` of a mapping node (the node itself if absent)."""
    for key_node, value_node in node.value:
        if isinstance(key_node, cp.ScalarNode) and key_node.value == key:
            return value_node  # type: ignore[no-any-return]
    return node


def _read_backends(root: cp.Section) -> tuple[BackendConfig, ...]:
    """At least one backend, each name unique."""
    node = root.values.get("backends")
    if node is None:
        root.missing("backends")
        return ()
    listed = cp.items(root.ctx, "backends", node) or []
    if not listed and isinstance(node, cp.SequenceNode):
        root.ctx.report("backends", node, "at least one backend is needed")
    backends: list[BackendConfig] = []
    first_line: dict[str, int] = {}
    for path, item in listed:
        backend = _read_backend(root.ctx, path, item)
        if backend is None:
            continue
        if backend.name and backend.name in first_line:
            root.ctx.report(
                f"{path}.name",
                _value_node(item, "name"),
                f"duplicate backend name {backend.name!r} (first on line "
                f"{first_line[backend.name]})",
            )
        first_line.setdefault(backend.name, item.start_mark.line + 1)
        backends.append(backend)
    return tuple(backends)


def _read_algorithms(section: cp.Section, symmetric: bool) -> tuple[str, ...]:
    """Known algorithms only; never ``none``; HS* only with a shared secret."""
    node = section.values.get("algorithms")
    if node is None:
        return DEFAULT_ALGORITHMS
    chosen = []
    for path, item in cp.items(section.ctx, "auth.algorithms", node) or []:
        name = cp.as_nonempty_str(section.ctx, path, item)
        if name is None:
            continue
        if name.lower() == "none":
            section.ctx.report(path, item, "'none' means unsigned tokens and is never accepted")
        elif name not in KNOWN_ALGORITHMS:
            hint = cp.did_you_mean(name, KNOWN_ALGORITHMS)
            section.ctx.report(path, item, f"unknown algorithm {name!r}{hint}")
        elif name in SYMMETRIC_ALGORITHMS and not symmetric:
            section.ctx.report(path, item, f"{name} needs shared_secret or shared_secret_file")
        else:
            chosen.append(name)
    if not chosen and isinstance(node, cp.SequenceNode) and not node.value:
        section.ctx.report("auth.algorithms", node, "at least one algorithm is needed")
    return tuple(chosen)


def _read_introspection(section: cp.Section | None) -> IntrospectionConfig | None:
    if section is None:
        return None
    if not section.has("client_secret") and not section.has("client_secret_file"):
        section.missing("client_secret")
    secret = section.secret_text("client_secret")
    return IntrospectionConfig(
        endpoint=section.need("endpoint", _url(), ""),
        client_id=section.need("client_id", cp.as_nonempty_str, ""),
        client_secret=secret or "",
        timeout=section.read("timeout", cp.duration(), 10.0),
        cache_size=section.read("cache_size", cp.integer(0), 10000),
    )


def _read_auth(root: cp.Section, resource_url: str) -> AuthConfig | None:
    """``auth: none`` (development only) or the resource server settings."""
    node = root.values.get("auth")
    if node is None:
        root.ctx.report("auth", root.node, "required key 'auth' is missing (or `auth: none`)")
        return None
    if isinstance(node, cp.ScalarNode) and node.tag == cp.STR and node.value == "none":
        return None
    if not isinstance(node, cp.MappingNode):
        cp.expected(root.ctx, "auth", node, "a mapping, or `none` for no authorization")
        return None
    keys = _keys(AuthConfig, "shared_secret_file")
    section = cp.Section(root.ctx, node, "auth", keys)
    shared_secret = section.secret("shared_secret")
    duration, allow_zero = cp.duration(), cp.duration(allow_zero=True)
    return AuthConfig(
        issuer=section.need("issuer", _url(query=False), ""),
        audiences=section.read("audiences", cp.as_str_list, ()) or (resource_url,),
        jwks_uri=section.read("jwks_uri", _url(), None),
        scopes_supported=section.read("scopes_supported", _scopes, ()),
        required_scopes=section.read("required_scopes", _scopes, ()),
        algorithms=_read_algorithms(section, shared_secret is not None),
        leeway=section.read("leeway", allow_zero, 30.0),
        require_access_token_type=section.read("require_access_token_type", cp.as_bool, False),
        shared_secret=shared_secret,
        jwks_refresh_interval=section.read("jwks_refresh_interval", duration, 300.0),
        jwks_min_refresh_interval=section.read("jwks_min_refresh_interval", duration, 30.0),
        jwks_unknown_kid_cooldown=section.read("jwks_unknown_kid_cooldown", allow_zero, 30.0),
        jwks_max_bytes=section.read("jwks_max_bytes", cp.as_size, 1024 * 1024),
        jwks_max_keys=section.read("jwks_max_keys", cp.integer(1), 64),
        http_timeout=section.read("http_timeout", duration, 10.0),
        token_cache_size=section.read("token_cache_size", cp.integer(0), 10000),
        introspection=_read_introspection(
            section.section("introspection", _keys(IntrospectionConfig, "client_secret_file"))
        ),
        relay_authorization_server_metadata=section.read(
            "relay_authorization_server_metadata", cp.as_bool, True
        ),
        metadata_refresh_interval=section.read("metadata_refresh_interval", duration, 3600.0),
        resource_name=section.read("resource_name", cp.as_nonempty_str, None),
        resource_documentation=section.read("resource_documentation", _url(), None),
    )


def _read_rule(ctx: cp.Context, path: str, node: cp.Node) -> AccessRule | None:
    section = cp.open_section(ctx, node, path, _keys(AccessRule))
    if section is None:
        return None
    return AccessRule(
        effect=section.need("effect", cp.choice("allow", "deny"), "deny"),  # type: ignore[arg-type]
        subjects=section.read("subjects", cp.as_str_list, ()),
        clients=section.read("clients", cp.as_str_list, ()),
        scopes=section.read("scopes", _scopes, ()),
        claims=section.read("claims", cp.as_str_map, {}),
        backends=section.read("backends", cp.as_str_list, ()),
        tools=section.read("tools", cp.as_str_list, ()),
    )


def _read_access(section: cp.Section | None) -> AccessConfig:
    if section is None:
        return AccessConfig()
    no_rules: list[tuple[str, cp.Node]] = []
    listed = section.read("rules", cp.items, no_rules)
    rules = [_read_rule(section.ctx, path, node) for path, node in listed]
    return AccessConfig(
        default=section.read("default", cp.choice("allow", "deny"), "allow"),  # type: ignore[arg-type]
        rules=tuple(rule for rule in rules if rule is not None),
    )


def _session_secret(ctx: cp.Context, path: str, node: cp.Node, is_file: bool) -> bytes | None:
    """A session key: raw file bytes (not stripped) or inline UTF-8, >= 32 bytes."""
    text = cp.as_nonempty_str(ctx, path, node)
    if text is None:
        return None
    data = cp.read_file(ctx, path, node, text) if is_file else text.encode("utf-8")
    if data is not None and len(data) < MIN_SESSION_SECRET_BYTES:
        what = ctx.resolve_path(text) if is_file else "the secret"
        ctx.report(
            path,
            node,
            f"{what} holds {len(data)} bytes; session secrets need at least "
            f"{MIN_SESSION_SECRET_BYTES} (try: head -c 32 /dev/urandom > session.key)",
        )
        return None
    return data


def _old_session_secrets(section: cp.Section) -> tuple[bytes, ...]:
    given = section.twin("old_secrets", "old_secret_files")
    if given is None:
        return ()
    path, node, is_file = given
    secrets = []
    for item_path, item in cp.items(section.ctx, path, node) or []:
        secret = _session_secret(section.ctx, item_path, item, is_file)
        if secret is not None:
            secrets.append(secret)
    return tuple(secrets)


def _read_sessions(section: cp.Section | None) -> SessionsConfig:
    if section is None:
        return SessionsConfig()
    given = section.twin("secret")
    return SessionsConfig(
        secret=None if given is None else _session_secret(section.ctx, *given),
        old_secrets=_old_session_secrets(section),
        ttl=section.read("ttl", cp.duration(), 24 * 3600.0),
        pool_size=section.read("pool_size", cp.integer(1), 10000),
        pool_idle_timeout=section.read("pool_idle_timeout", cp.duration(), 600.0),
        max_streams_per_user=section.read("max_streams_per_user", cp.integer(1), 8),
    )


def _read_logging(section: cp.Section | None) -> LoggingConfig:
    if section is None:
        return LoggingConfig()
    levels = cp.choice("debug", "info", "warn", "error", "critical")
    return LoggingConfig(
        format=section.read("format", cp.choice("text", "json"), "text"),  # type: ignore[arg-type]
        level=section.read("level", levels, "info"),  # type: ignore[arg-type]
        access_log=section.read("access_log", cp.as_bool, True),
    )


def _read_server(section: cp.Section | None) -> ServerConfig:
    if section is None:
        return ServerConfig()
    return ServerConfig(
        max_body_bytes=section.read("max_body_bytes", cp.as_size, 4 * 1024 * 1024),
        max_header_bytes=section.read("max_header_bytes", cp.as_size, 16 * 1024),
        max_headers=section.read("max_headers", cp.integer(1), 100),
        idle_timeout=section.read("idle_timeout", cp.duration(), 60.0),
        shutdown_timeout=section.read("shutdown_timeout", cp.duration(), 10.0),
        max_streams=section.read("max_streams", cp.integer(1), 1024),
    )


def _listen(ctx: cp.Context, path: str, node: cp.Node) -> tuple[str, ...] | None:
    """One endpoint string or a non-empty list of them."""
    if isinstance(node, cp.ScalarNode) and node.tag == cp.STR:
        one = _endpoint(ctx, path, node)
        return None if one is None else (one,)
    listed = cp.items(ctx, path, node)
    if listed is None:
        return None
    if not listed:
        ctx.report(path, node, "at least one endpoint is needed, e.g. tcp:1975:interface=127.0.0.1")
        return None
    values = [_endpoint(ctx, item_path, item) for item_path, item in listed]
    return tuple(v for v in values if v is not None)


def _read_config(ctx: cp.Context, root: cp.Section, source: str) -> Config:
    public_url = root.need("public_url", _url(query=False), "")
    mcp_path = root.need("mcp_path", _mcp_path, "/mcp")
    resource_url = public_url.rstrip("/") + mcp_path
    return Config(
        listen=root.need("listen", _listen, ()),
        public_url=public_url,
        mcp_path=mcp_path,
        auth=_read_auth(root, resource_url),
        backends=_read_backends(root),
        access=_read_access(root.section("access", _keys(AccessConfig))),
        sessions=_read_sessions(
            root.section("sessions", _keys(SessionsConfig, "secret_file", "old_secret_files"))
        ),
        logging=_read_logging(root.section("logging", _keys(LoggingConfig))),
        server=_read_server(root.section("server", _keys(ServerConfig))),
        allowed_origins=root.read("allowed_origins", _origins, ()),
        source=source,
    )


def _problems(ctx: cp.Context) -> list[Problem]:
    """The problems in file order (a stable sort keeps same-line ones in reading order)."""
    found = [Problem(path, line, message) for path, line, message in ctx.problems]
    return sorted(found, key=lambda p: (p.line is None, p.line or 0))


def _parse(text: str, source: str, base_dir: str, env: Mapping[str, str]) -> Config:
    ctx = cp.Context(env=env, base_dir=base_dir)
    node = cp.compose(ctx, text)
    if node is None and not ctx.problems:
        ctx.problems.append(("(root)", None, "the file is empty"))
    root = None if node is None else cp.open_section(ctx, node, "", _keys(Config))
    if root is None:
        raise ConfigError(source, _problems(ctx))
    config = _read_config(ctx, root, source)
    if ctx.problems:
        raise ConfigError(source, _problems(ctx))
    return config


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute, validate and freeze the config file at ``path``.

    ``env`` (default: os.environ) resolves ``${VAR}`` references.
    Raises ConfigError listing every problem found, and nothing else.
    """
    try:
        text = cp.read_bounded(path).decode("utf-8")
    except OSError as error:
        raise ConfigError(
            path, [Problem("(file)", None, f"cannot read: {error.strerror}")]
        ) from None
    except cp.FileTooLarge as error:
        raise ConfigError(path, [Problem("(file)", None, f"cannot read: {error}")]) from None
    except UnicodeDecodeError as error:
        raise ConfigError(path, [Problem("(file)", None, f"not UTF-8 text: {error}")]) from None
    base_dir = os.path.dirname(os.path.abspath(path))
    return _parse(text, path, base_dir, os.environ if env is None else env)


def parse_config(
    text: str, source: str = "<memory>", env: Mapping[str, str] | None = None
) -> Config:
    """Like load_config, from text; ``*_file`` keys are read relative to the cwd."""
    return _parse(text, source, os.getcwd(), os.environ if env is None else env)
