"""Converters for aigw's own kinds of values: URLs, origins, endpoints, scopes,
backend names, session keys, files aigw appends to.

Each is a ``nodes.Converter`` (session keys: a ``nodes.TwinConverter``): it reads
one YAML node, reports what is wrong with it (with the node's line) and returns
None, or returns the value.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
import urllib.parse

from aigw import tls
from aigw.config import nodes as cp
from aigw.protocol.names import BACKEND_NAME_PATTERN, NAME_SEPARATOR
from aigw.protocol.versions import FEATURE_REQUESTS
from aigw.sealed.sealer import MIN_SECRET_BYTES


def is_loopback_name(host: str) -> bool:
    """``localhost`` and its subdomains (RFC 6761 §6.3) or a loopback address."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def insecure_url_problem(value: str) -> str | None:
    """Why a URL that credentials are sent to may not be used: plain http off loopback.

    OAuth 2.1 §1.5 (draft-ietf-oauth-v2-1) and RFC 6749 §3.2: requests carrying client
    credentials or tokens MUST use TLS; loopback is the one place plain http is
    allowed (RFC 8252 §7.3 makes the same exception for redirect URIs).
    """
    parts = urllib.parse.urlsplit(value)
    if parts.scheme == "http" and not is_loopback_name(parts.hostname or ""):
        return "credentials are sent here, so it must be an https:// URL (http only on loopback)"
    return None


def url(*, query: bool = True, ascii_only: bool = False, secure: bool = False) -> cp.Converter[str]:
    """A converter for absolute http(s) URLs with a host and no fragment.

    ``ascii_only`` for URLs aigw sends as raw bytes (the backends' URLs, RFC 3986 §2);
    ``secure`` for URLs that client secrets or tokens are sent to (``insecure_url_problem``).
    """

    def convert(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
        value = cp.as_nonempty_str(ctx, path, node)
        if value is None:
            return None
        problem = _url_problem(value, query=query)
        if problem is None and secure:
            problem = insecure_url_problem(value)
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


def ratio(ctx: cp.Context, path: str, node: cp.Node) -> float | None:
    """A number from 0 to 1 (``tracing.sample_ratio``)."""
    value = cp.scalar_value(ctx, path, node) if isinstance(node, cp.ScalarNode) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        cp.expected(ctx, path, node, "a number from 0 to 1")
        return None
    if not 0 <= value <= 1:
        ctx.report(path, node, f"must be from 0 to 1, got {value}")
        return None
    return float(value)


def origin(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    """An Origin header value: scheme://host[:port], nothing after it."""
    value = url(query=False)(ctx, path, node)
    if value is not None and urllib.parse.urlsplit(value).path not in ("", "/"):
        ctx.report(path, node, f"an origin has no path (write scheme://host[:port]): {value!r}")
        return None
    return value


origins = cp.list_of(origin)


def mcp_path(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
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


def endpoint(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
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
    # An ssl: (or a plugin's) string needs TLS to parse and later to listen: loaded now,
    # before twistd installs the reactor (aigw/tls.py).
    tls.allow_for_endpoint(description)
    from twisted.internet import endpoints

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


def regex(ctx: cp.Context, path: str, node: cp.Node) -> re.Pattern[str] | None:
    value = cp.as_str(ctx, path, node)
    if value is None:
        return None
    try:
        return re.compile(value)
    except re.error as error:
        ctx.report(path, node, f"invalid regular expression {value!r}: {error}")
        return None


regexes = cp.list_of(regex)

#: RFC 6749 §3.3 scope-token.
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def scope(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    value = cp.as_nonempty_str(ctx, path, node)
    if value is not None and not SCOPE_TOKEN.fullmatch(value):
        ctx.report(path, node, f"{value!r} is not a scope (no spaces, quotes or backslashes)")
        return None
    return value


scopes = cp.list_of(scope)


def scope_list(ctx: cp.Context, path: str, node: cp.Node) -> tuple[str, ...] | None:
    """Scopes to ask for: a list, or one string of space-separated scopes (RFC 6749 §3.3)."""
    if not isinstance(node, cp.ScalarNode):
        return scopes(ctx, path, node)
    value = cp.as_nonempty_str(ctx, path, node)
    if value is None:
        return None
    chosen = tuple(value.split())
    wrong = [token for token in chosen if not SCOPE_TOKEN.fullmatch(token)]
    if wrong:
        ctx.report(path, node, f"{wrong[0]!r} is not a scope (no quotes or backslashes)")
        return None
    return chosen


#: RFC 8707 §2: the resource a token is asked for, an absolute URI without a fragment.
resource = url()

#: RFC 3986 §3.1: a scheme, then anything but spaces (a URN such as RFC 8693's token types).
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s#]+")


def absolute_uri(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    value = cp.as_nonempty_str(ctx, path, node)
    if value is not None and not _ABSOLUTE_URI.fullmatch(value):
        ctx.report(path, node, f"{value!r} is not an absolute URI (such as urn:ietf:params:...)")
        return None
    return value


def backend_name(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
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


def ca_file(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    name = cp.as_nonempty_str(ctx, path, node)
    if name is None or cp.read_file(ctx, path, node, name) is None:
        return None
    return ctx.resolve_path(name)


def appended_file(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    """A file aigw appends to (made at start if missing): its directory must exist now."""
    name = cp.as_nonempty_str(ctx, path, node)
    if name is None:
        return None
    full = ctx.resolve_path(name)
    directory = os.path.dirname(full)
    if os.path.isdir(full):
        ctx.report(path, node, f"{full} is a directory, not a file")
    elif not os.path.isdir(directory):
        ctx.report(path, node, f"directory {directory} does not exist")
    else:
        return full
    return None


ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def environment(ctx: cp.Context, path: str, node: cp.Node) -> dict[str, str] | None:
    """Environment variables for a child process: POSIX names, values without NUL."""
    given = cp.as_str_map(ctx, path, node)
    if given is None:
        return None
    for name, value in list(given.items()):
        if not ENV_NAME_PATTERN.fullmatch(name) or "\0" in value:
            ctx.report(f"{path}.{name}", cp.value_node(node, name), "not a usable variable")
            del given[name]
    return given


def directory(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    """An existing directory, relative to the config file's."""
    name = cp.as_nonempty_str(ctx, path, node)
    if name is None:
        return None
    full = ctx.resolve_path(name)
    if not os.path.isdir(full):
        ctx.report(path, node, f"{full} is not a directory")
        return None
    return full


def listen(ctx: cp.Context, path: str, node: cp.Node) -> tuple[str, ...] | None:
    """One endpoint string or a non-empty list of them."""
    if isinstance(node, cp.ScalarNode) and node.tag == cp.STR:
        one = endpoint(ctx, path, node)
        return None if one is None else (one,)
    listed = cp.items(ctx, path, node)
    if listed is None:
        return None
    if not listed:
        ctx.report(path, node, "at least one endpoint is needed, e.g. tcp:1975:interface=127.0.0.1")
        return None
    values = [endpoint(ctx, item_path, item) for item_path, item in listed]
    return tuple(v for v in values if v is not None)


def sealing_key(ctx: cp.Context, path: str, node: cp.Node, is_file: bool) -> bytes | None:
    """A key the sealer derives its keys from (sessions, the token store): raw file bytes
    (not stripped) or inline UTF-8, as long as the sealer needs (checked here too, to
    name the line)."""
    text = cp.as_nonempty_str(ctx, path, node)
    if text is None:
        return None
    if is_file:
        data = cp.read_file(ctx, path, node, text)
        if data is not None:
            ctx.secret_file(path, node, text)
    else:
        data = text.encode("utf-8")
        ctx.literal_secret(path, node)
    if data is not None and len(data) < MIN_SECRET_BYTES:
        what = ctx.resolve_path(text) if is_file else "the secret"
        ctx.report(
            path,
            node,
            f"{what} holds {len(data)} bytes; sealing keys need at least "
            f"{MIN_SECRET_BYTES} (try: head -c {MIN_SECRET_BYTES} "
            f"/dev/urandom > {os.path.basename(text) if is_file else 'aigw.key'})",
        )
        return None
    return data


def sealing_keys(ctx: cp.Context, path: str, node: cp.Node, is_file: bool) -> tuple[bytes, ...]:
    """A list of sealing keys, inline or each in a file (bad ones are left out)."""
    keys = []
    for item_path, item in cp.items(ctx, path, node) or []:
        key = sealing_key(ctx, item_path, item, is_file)
        if key is not None:
            keys.append(key)
    return tuple(keys)


#: The MCP methods the access policy decides on: what ``access.rules[].methods`` names,
#: every request of a server's features.
DECIDED_METHODS = FEATURE_REQUESTS


def method_glob(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    """An MCP method name or glob that names at least one method the policy decides on:
    a typo (``tool/call``) would otherwise make a rule that never matches."""
    value = cp.as_nonempty_str(ctx, path, node)
    if value is not None and not any(fnmatch.fnmatchcase(m, value) for m in DECIDED_METHODS):
        hint = cp.did_you_mean(value, DECIDED_METHODS)
        ctx.report(path, node, f"{value!r} names no method access rules decide on{hint}")
        return None
    return value


method_globs = cp.list_of(method_glob)


def screening_mode(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    """``off``, ``warn`` or ``block`` (``screen_tools``, ``pin_tools``); YAML reads a bare
    ``off`` as false, taken as ``off``."""
    if isinstance(node, cp.ScalarNode) and cp.scalar_value(ctx, path, node) is False:
        return "off"
    return cp.choice("off", "warn", "block")(ctx, path, node)
