"""``{"mcpServers": {...}}`` files, the format of MCP clients, read as aigw backends.

Claude Desktop, Claude Code (``.mcp.json``), Cursor and the Envoy AI Gateway CLI
describe MCP servers this way.  Each server becomes one native backend mapping,
made of the JSON file's own nodes (so every problem names the file's line and a
key path like ``mcpServers.context7.url``):

- the server's name is the backend's name; one that cannot prefix tool names is
  an error with a suggestion, never renamed behind the user's back (the name is
  what clients see and what access rules match);
- ``type: http`` / ``streamable-http`` (or no type and a ``url``): ``url``,
  ``headers``;
- ``type: stdio`` (or no type and a ``command``): ``command``, ``args``, ``env``,
  ``cwd``, as the native stdio backend keys;
- ``type: sse`` (HTTP+SSE, MCP 2024-11-05): aigw does not speak it, an error;
- ``timeout`` (seconds, as Cline writes it): the backend's ``timeout``;
- ``disabled: true``: the server is left out;
- ``${VAR}`` and ``${VAR:-default}`` are kept as written: the native reader
  substitutes them from aigw's environment, with the syntax Claude Code uses;
- any other key of a server is an error naming it; keys beside ``mcpServers``
  at the top are the client's own settings and are not read.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs

from aigw.config import fields
from aigw.config import nodes as cp
from aigw.config.model import BackendConfig
from aigw.protocol.names import BACKEND_NAME_PATTERN, NAME_SEPARATOR

Transport = Literal["http", "stdio"]

TOP_KEY = "mcpServers"
HTTP_KEYS = ("url", "headers")
STDIO_KEYS = ("command", "args", "env", "cwd")
_TYPES: dict[str, Transport | None] = {
    "http": "http",
    "streamable-http": "http",
    "stdio": "stdio",
    "sse": None,
}
#: Keys some clients write that mean something only to the client itself.
_CLIENT_ONLY = {
    "autoApprove": "which tools the client calls without asking",
    "alwaysAllow": "which tools the client calls without asking",
}
_SERVER_KEYS = ("type", *HTTP_KEYS, *STDIO_KEYS, "timeout", "disabled", *_CLIENT_ONLY)


@attrs.frozen
class Server:
    """One server of the file, as a native backend mapping of the file's own nodes."""

    name: str
    path: str
    transport: Transport
    #: What the file said of its type: ``type: streamable-http``, ``command given``...
    origin: str
    node: cp.MappingNode


@attrs.frozen
class Servers:
    """The servers to run, and what was left out (for ``aigw convert``'s comments)."""

    servers: tuple[Server, ...]
    left_out: tuple[str, ...]


def read_servers(ctx: cp.Context, root: cp.Node) -> Servers:
    """Every server of an ``mcpServers`` document, problems reported in ``ctx``."""
    if not isinstance(root, cp.MappingNode):
        cp.expected(ctx, "(root)", root, 'a JSON object {"mcpServers": {...}}')
        return Servers((), ())
    # Every key is "known" at the top and among the servers: only a repeated one is reported.
    top = cp.Section(ctx, root, "", _names(root)).values
    left_out = [f"top-level key {key!r} (a client setting)" for key in top if key != TOP_KEY]
    node = top.get(TOP_KEY)
    if node is None:
        close = difflib.get_close_matches(TOP_KEY, list(top), n=1, cutoff=0.6)
        hint = f" (is {close[0]!r} a misspelling of it?)" if close else ""
        ctx.report(TOP_KEY, root, f"required key {TOP_KEY!r} is missing{hint}")
        return Servers((), tuple(left_out))
    listed = cp.open_section(ctx, node, TOP_KEY, _names(node))
    if listed is None:
        return Servers((), tuple(left_out))
    servers: list[Server] = []
    pairs: list[tuple[cp.ScalarNode, cp.Node]] = listed.node.value
    for key_node, server_node in pairs:
        path = f"{TOP_KEY}.{key_node.value}"
        if listed.values.get(key_node.value) is not server_node:
            continue  # a repeated name, reported by Section
        server = _server(ctx, path, key_node, server_node)
        if isinstance(server, Server):
            servers.append(server)
        elif server is not None:
            left_out.append(f"{path}: {server}")
    return Servers(tuple(servers), tuple(left_out))


def _names(node: cp.Node) -> tuple[str, ...]:
    """The keys of a mapping node, whatever they are."""
    if not isinstance(node, cp.MappingNode):
        return ()
    return tuple(key.value for key, _ in node.value if isinstance(key, cp.ScalarNode))


def _server(ctx: cp.Context, path: str, key: cp.ScalarNode, node: cp.Node) -> Server | str | None:
    """The server at ``path``, the reason it is left out, or None after a problem."""
    section = cp.open_section(ctx, node, path, _SERVER_KEYS)
    if section is None:
        return None
    disabled = section.values.get("disabled")
    if disabled is not None and cp.as_bool(ctx, section.child("disabled"), disabled):
        return "disabled: true, left out"
    ok = _valid_name(ctx, path, key)
    for name, what in _CLIENT_ONLY.items():
        if section.has(name):
            ctx.report(
                section.child(name),
                section.values[name],
                f"{name} says {what}: a client setting aigw has no equivalent for "
                "(remove it; backends[].tools selects the tools aigw exposes)",
            )
            ok = False
    chosen = _transport(section)
    if chosen is None or not ok:
        return None
    transport, origin = chosen
    if not _own_keys_only(section, transport, origin):
        return None
    if transport == "stdio" and not _valid_stdio(section):
        return None
    keys = (*(STDIO_KEYS if transport == "stdio" else HTTP_KEYS), "timeout")
    pairs: list[tuple[cp.ScalarNode, cp.Node]]
    pairs = [(_key("name", key), cp.ScalarNode(cp.STR, key.value, key.start_mark, key.end_mark))]
    pairs += [(_key(k, section.values[k]), section.values[k]) for k in keys if section.has(k)]
    native = cp.MappingNode(cp.TAG + "map", pairs, node.start_mark, node.end_mark)
    return Server(key.value, path, transport, origin, native)


def _key(name: str, at: cp.Node) -> cp.ScalarNode:
    return cp.ScalarNode(cp.STR, name, at.start_mark, at.end_mark)


def _valid_name(ctx: cp.Context, path: str, key: cp.ScalarNode) -> bool:
    """A server name that can be a backend name, else a problem suggesting one."""
    name = key.value
    if BACKEND_NAME_PATTERN.fullmatch(name) and NAME_SEPARATOR not in name:
        return True
    ctx.report(
        path,
        key,
        f"server name {name!r} cannot name an aigw backend: 1 to 32 letters, digits, '_' "
        f"or '-', starting with a letter or digit, without {NAME_SEPARATOR!r} (it prefixes "
        f"tool names as <backend>{NAME_SEPARATOR}<tool>); rename it, e.g. {suggest_name(name)!r}",
    )
    return False


def suggest_name(name: str) -> str:
    """A backend name close to ``name``: other characters become '-', no '__', 32 at most."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", name)
    cleaned = re.sub(r"_{2,}", "_", cleaned).lstrip("_-")[:32].rstrip("_-")
    return cleaned or "backend"


def _transport(section: cp.Section) -> tuple[Transport, str] | None:
    """The server's transport and what said so, or None after a problem."""
    ctx, given = section.ctx, section.values.get("type")
    if given is None:
        if section.has("command") and section.has("url"):
            where = section.values["url"]
            message = "give url (Streamable HTTP) or command (stdio), not both"
            ctx.report(section.path, where, message)
            return None
        if section.has("command"):
            return "stdio", "command given, no type"
        if section.has("url"):
            return "http", "url given, no type"
        ctx.report(
            section.path,
            section.node,
            "needs url (a Streamable HTTP server) or command (a stdio server)",
        )
        return None
    path = section.child("type")
    name = cp.choice(*_TYPES)(ctx, path, given)
    if name is None:
        return None
    transport = _TYPES[name]
    if transport is None:
        ctx.report(
            path,
            given,
            "type 'sse' is the HTTP+SSE transport of MCP 2024-11-05, which aigw does not "
            "speak: point url at the server's Streamable HTTP endpoint (often /mcp where "
            "the SSE one is /sse) and write type 'http'",
        )
        return None
    return transport, f"type: {name}"


def _own_keys_only(section: cp.Section, transport: Transport, origin: str) -> bool:
    """No key of the other transport: which one was meant would be a guess."""
    foreign = HTTP_KEYS if transport == "stdio" else STDIO_KEYS
    ok = True
    for name in foreign:
        if section.has(name):
            section.ctx.report(
                section.child(name),
                section.values[name],
                f"{name} is for {'HTTP' if transport == 'stdio' else 'stdio'} servers; "
                f"this one is {transport} ({origin})",
            )
            ok = False
    if transport == "http" and not section.has("url"):
        section.missing("url")
        ok = False
    if transport == "stdio" and not section.has("command"):
        section.missing("command")
        ok = False
    return ok


def _valid_stdio(section: cp.Section) -> bool:
    """The types of the stdio keys, checked here until the native stdio backend reads them.

    The text is not substituted: the native reader does that when it loads them.
    """
    ok = True
    for name, (fits, what) in _STDIO_SHAPES.items():
        node = section.values.get(name)
        if node is not None and not fits(node):
            cp.expected(section.ctx, section.child(name), node, what)
            ok = False
    return ok


def _text(node: cp.Node) -> bool:
    return isinstance(node, cp.ScalarNode) and node.tag == cp.STR and node.value != ""


def _texts(node: cp.Node) -> bool:
    return isinstance(node, cp.SequenceNode) and all(
        isinstance(item, cp.ScalarNode) and item.tag == cp.STR for item in node.value
    )


def _text_map(node: cp.Node) -> bool:
    return isinstance(node, cp.MappingNode) and all(
        isinstance(value, cp.ScalarNode) and value.tag == cp.STR for _, value in node.value
    )


_STDIO_SHAPES: dict[str, tuple[Callable[[cp.Node], bool], str]] = {
    "command": (_text, "a non-empty string"),
    "args": (_texts, "a list of strings"),
    "env": (_text_map, "an object of strings"),
    "cwd": (_text, "a non-empty string"),
}


def backends(ctx: cp.Context, servers: Sequence[Server]) -> list[BackendConfig]:
    """The servers read as native backends: what the native reader checks, checked at
    the file's own lines and paths (``mcpServers.<name>.url``)."""
    read = fields.section_of(BackendConfig)
    found: list[BackendConfig] = []
    for server in servers:
        backend = read(ctx, server.path, server.node)
        if backend is not None:
            found.append(backend)
    return found


def plain(node: cp.Node) -> Any:
    """A node as plain data, strings as written (``${VAR}`` not substituted)."""
    if isinstance(node, cp.MappingNode):
        return {key.value: plain(value) for key, value in node.value}
    if isinstance(node, cp.SequenceNode):
        return [plain(item) for item in node.value]
    if not isinstance(node, cp.ScalarNode) or node.tag == cp.STR:
        return node.value
    return cp.scalar_value(cp.Context(env={}, base_dir=""), "", node)
