"""Reading the config file into the model: YAML nodes in, frozen objects out.

Every problem is reported with its key path (``backends[1].url``) and its line
in the file.  Most of each section is read by its class's field metadata
(``fields.read_fields``); the functions here read what needs more: values that
depend on another field (the default audience, HS* algorithms), lists that must
not repeat a name, sections read in an order other than their fields'.
Problems are collected in the Context; a value found wrong is replaced by its
default so reading can go on, and the half-built Config is thrown away if any
problem was found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from aigw.config import fields, jsonnodes, mcp_servers, secrets
from aigw.config import nodes as cp
from aigw.config.envoy_detect import is_envoy
from aigw.config.errors import ConfigError, Problem, in_file_order
from aigw.config.model import (
    HTTP_KEYS,
    KNOWN_ALGORITHMS,
    STDIO_KEYS,
    SYMMETRIC_ALGORITHMS,
    AccessConfig,
    AuthConfig,
    BackendConfig,
    Config,
    IntrospectionConfig,
)

if TYPE_CHECKING:
    from aigw.config.envoy import Translation

_backend = fields.section_of(BackendConfig)


def _check_backend_auth(
    ctx: cp.Context, path: str, node: cp.Node, backend: BackendConfig, no_auth: bool
) -> None:
    """No header is written both by the backend's ``auth`` and its static ``headers``;
    a token exchange and per-user OAuth need a user, which ``auth: none`` never has."""
    auth = backend.auth
    if auth is None:
        return
    for mode in ("token_exchange", "user_oauth"):
        if no_auth and getattr(auth, mode) is not None:
            given = cp.value_node(cp.value_node(node, "auth"), mode)
            ctx.report(f"{path}.auth.{mode}", given, "needs auth (a verified user token)")
    static = {name.lower() for name in backend.headers}
    where = (f"{path}.auth", cp.value_node(node, "auth"))
    if (auth.client_credentials or auth.token_exchange or auth.user_oauth) and (
        "authorization" in static
    ):
        ctx.report(*where, "the static headers hold Authorization, which auth would set too")
    for header in auth.claims_to_headers.values():
        if header.lower() in static:
            ctx.report(*where, f"{header} is a static header and a claim header both")


@attrs.frozen
class ServersFile:
    """An ``mcpServers`` document whose servers are backends too: ``source`` names it in
    problems; ``base_dir`` is its directory."""

    source: str
    text: str
    base_dir: str


def _read_servers_file(root: cp.Section) -> ServersFile | None:
    """The file named at ``import_mcp_servers`` (relative to the config's directory)."""
    key = "import_mcp_servers"
    node = root.values.get(key)
    name = None if node is None else cp.as_nonempty_str(root.ctx, key, node)
    data = None if node is None or name is None else cp.read_file(root.ctx, key, node, name)
    if node is None or name is None or data is None:
        return None
    full = root.ctx.resolve_path(name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        root.ctx.report(key, node, f"{full} is not UTF-8 text: {error}")
        return None
    return ServersFile(full, text, os.path.dirname(full))


def _read_backends(
    root: cp.Section,
    servers: ServersFile | None,
    elsewhere: list[Problem],
    exposed: list[Problem],
) -> tuple[BackendConfig, ...]:
    """The native backends, each name unique, then the servers' ones (``elsewhere`` gets
    the problems of their file); at least one in all."""
    node = root.values.get("backends")
    if node is None and servers is None:
        root.missing("backends")
        return ()
    listed = [] if node is None else cp.items(root.ctx, "backends", node) or []
    if not listed and isinstance(node, cp.SequenceNode) and servers is None:
        root.ctx.report("backends", node, "at least one backend is needed")
    backends: list[BackendConfig] = []
    first: dict[str, tuple[int, str]] = {}
    no_auth = _is_auth_none(root.values.get("auth"))
    for path, item in listed:
        backend = _backend(root.ctx, path, item)
        if backend is None:
            continue
        _check_kind(root.ctx, path, item)
        _check_backend_auth(root.ctx, path, item, backend, no_auth)
        if backend.name and backend.name in first:
            root.ctx.report(
                f"{path}.name",
                cp.value_node(item, "name"),
                f"duplicate backend name {backend.name!r} (first on line {first[backend.name][0]})",
            )
        first.setdefault(backend.name, (item.start_mark.line + 1, path))
        backends.append(backend)
    if servers is not None:
        imported = _imported_backends(root.ctx, servers, first, elsewhere, exposed)
        if not backends and not imported and not root.ctx.problems and not elsewhere:
            elsewhere.append(Problem(mcp_servers.TOP_KEY, None, "no server to run", servers.source))
        backends.extend(imported)
    return tuple(backends)


def _imported_backends(
    ctx: cp.Context,
    servers: ServersFile,
    native: Mapping[str, tuple[int, str]],
    elsewhere: list[Problem],
    exposed: list[Problem],
) -> list[BackendConfig]:
    """The backends of an ``mcpServers`` file; a name a native backend has is a problem."""
    own = cp.Context(env=ctx.env, base_dir=servers.base_dir)
    node = jsonnodes.compose_json(own, servers.text)
    found = [] if node is None else list(mcp_servers.read_servers(own, node).servers)
    for server in found:
        if server.name in native:
            line, path = native[server.name]
            own.report(
                server.path,
                server.node.value[0][1],
                f"backend name {server.name!r} is taken: {path} on line {line} of the config "
                "file has it",
            )
    free = [server for server in found if server.name not in native]
    backends = mcp_servers.backends(own, free)
    elsewhere.extend(Problem(*problem, source=servers.source) for problem in own.problems)
    exposed.extend(
        Problem(*problem, source=servers.source)
        for problem in _exposed_secrets(own, servers.source)
    )
    return backends


def _check_kind(ctx: cp.Context, path: str, node: cp.Node) -> None:
    """Exactly one of ``url`` (Streamable HTTP) and ``command`` (stdio), and none of
    the other kind's keys: a key that would be silently ignored is a mistake."""
    given = {k.value: k for k, _ in node.value if isinstance(k, cp.ScalarNode)}
    if "url" in given and "command" in given:
        ctx.report(f"{path}.command", given["command"], "give url or command, not both")
        return
    if "url" not in given and "command" not in given:
        ctx.report(
            f"{path}.url", node, "required key 'url' is missing (or 'command', for a stdio server)"
        )
        return
    kind, others = ("url", STDIO_KEYS) if "url" in given else ("command", HTTP_KEYS)
    for key in others:
        if key in given:
            ctx.report(f"{path}.{key}", given[key], f"{key!r} does not go with {kind!r}")


def _algorithms(symmetric: bool) -> cp.Converter[tuple[str, ...]]:
    """Known algorithms only; never ``none``; HS* only with a shared secret."""

    def convert(ctx: cp.Context, path: str, node: cp.Node) -> tuple[str, ...]:
        chosen = []
        for item_path, item in cp.items(ctx, path, node) or []:
            name = cp.as_nonempty_str(ctx, item_path, item)
            if name is None:
                continue
            if name.lower() == "none":
                ctx.report(item_path, item, "'none' means unsigned tokens and is never accepted")
            elif name not in KNOWN_ALGORITHMS:
                hint = cp.did_you_mean(name, KNOWN_ALGORITHMS)
                ctx.report(item_path, item, f"unknown algorithm {name!r}{hint}")
            elif name in SYMMETRIC_ALGORITHMS and not symmetric:
                ctx.report(item_path, item, f"{name} needs shared_secret or shared_secret_file")
            else:
                chosen.append(name)
        if not chosen and isinstance(node, cp.SequenceNode) and not node.value:
            ctx.report(path, node, "at least one algorithm is needed")
        return tuple(chosen)

    return convert


_introspection = fields.section_of(IntrospectionConfig, first="client_secret")


def _audiences(section: cp.Section) -> tuple[str, ...]:
    return section.read("audiences", cp.as_str_list, ())


def _is_auth_none(node: cp.Node | None) -> bool:
    return isinstance(node, cp.ScalarNode) and node.tag == cp.STR and node.value == "none"


def _read_auth(root: cp.Section, resource_url: str) -> AuthConfig | None:
    """``auth: none`` (development only) or the resource server settings."""
    node = root.values.get("auth")
    if node is None:
        root.ctx.report("auth", root.node, "required key 'auth' is missing (or `auth: none`)")
        return None
    if _is_auth_none(node):
        return None
    if not isinstance(node, cp.MappingNode):
        cp.expected(root.ctx, "auth", node, "a mapping, or `none` for no authorization")
        return None
    section = cp.Section(root.ctx, node, "auth", fields.keys(AuthConfig))
    shared_secret = fields.read_field(section, AuthConfig, "shared_secret")
    algorithms = _algorithms(symmetric=shared_secret is not None)
    return fields.read_fields(
        section,
        AuthConfig,
        audiences=lambda: _audiences(section) or (resource_url,),
        algorithms=lambda: fields.read_field(section, AuthConfig, "algorithms", algorithms),
        shared_secret=lambda: shared_secret,
        introspection=lambda: fields.read_field(
            section, AuthConfig, "introspection", _introspection
        ),
    )


_access = fields.section_of(AccessConfig, first="rules")


def _read_config(
    root: cp.Section,
    source: str,
    servers: ServersFile | None,
    elsewhere: list[Problem],
    exposed: list[Problem],
) -> Config:
    # The resource URL is the default audience: read first.
    public_url: str = fields.read_field(root, Config, "public_url")
    mcp_path: str = fields.read_field(root, Config, "mcp_path")
    resource_url = public_url.rstrip("/") + mcp_path
    imported = _read_servers_file(root)
    if imported is not None and servers is not None:
        root.ctx.report(
            "import_mcp_servers",
            root.values["import_mcp_servers"],
            f"the servers come from {servers.source} already",
        )
    servers = servers or imported
    config = fields.read_fields(
        root,
        Config,
        public_url=lambda: public_url,
        mcp_path=lambda: mcp_path,
        auth=lambda: _read_auth(root, resource_url),
        backends=lambda: _read_backends(root, servers, elsewhere, exposed),
        import_mcp_servers=lambda: None if imported is None else imported.source,
        access=lambda: fields.read_field(root, Config, "access", _access),
        source=lambda: source,
    )
    _check_state(root, config)
    return config


def _check_state(root: cp.Section, config: Config) -> None:
    """Pins and ``user_oauth`` tokens need ``state_dir``, where they persist; the store
    there needs a key to seal its secrets with (``token_store``, or the session key it
    is derived from)."""
    if config.state_dir is not None:
        if config.token_store.key is None and config.sessions.secret is None:
            root.ctx.report(
                "state_dir",
                root.values["state_dir"],
                "the store there seals its secrets with token_store.key_file, or with a key "
                "derived from sessions.secret_file: set one of them",
            )
        return
    by_name = {backend.name: backend for backend in config.backends}
    node = root.values.get("backends")
    listed = cp.items(root.ctx, "backends", node) if isinstance(node, cp.SequenceNode) else []
    for path, item in listed or []:
        name = cp.value_node(item, "name")
        backend = by_name.get(name.value) if isinstance(name, cp.ScalarNode) else None
        if backend is None:
            continue
        if backend.pin_tools != "off":
            root.ctx.report(
                f"{path}.pin_tools",
                cp.value_node(item, "pin_tools"),
                f"pin_tools: {backend.pin_tools} needs state_dir, where the pins persist",
            )
        if backend.auth is not None and backend.auth.user_oauth is not None:
            root.ctx.report(
                f"{path}.auth.user_oauth",
                cp.value_node(cp.value_node(item, "auth"), "user_oauth"),
                "user_oauth needs state_dir, where users' tokens persist (sealed)",
            )


def _problems(
    ctx: cp.Context, elsewhere: list[Problem], translation: Translation | None = None
) -> list[Problem]:
    """The problems found, the config file's in file order, then the imported file's;
    an Envoy-format file's said with its own key paths."""
    said = translation.envoy_path if translation is not None else str
    return in_file_order(
        [*(Problem(said(path), line, message) for path, line, message in ctx.problems), *elsewhere]
    )


def _parse(
    text: str,
    source: str,
    base_dir: str,
    env: Mapping[str, str],
    servers: ServersFile | None = None,
    *,
    from_file: bool = False,
) -> Config:
    ctx = cp.Context(env=env, base_dir=base_dir)
    translation = None
    if is_envoy(text):  # the Envoy AI Gateway's standalone format (envoy/)
        from aigw.config import envoy

        translation = envoy.translate(ctx, text)
        node: cp.Node | None = None if translation is None else translation.root
    else:
        node = cp.compose(ctx, text)
    if node is None and not ctx.problems:
        ctx.problems.append(("(root)", None, "the file is empty"))
    root = None if node is None else cp.open_section(ctx, node, "", fields.keys(Config))
    if root is None:
        raise ConfigError(source, _problems(ctx, []))
    elsewhere: list[Problem] = []
    # Secrets others may read: the imported file's (set while reading), then this file's.
    exposed: list[Problem] = []
    config = _read_config(root, source, servers, elsewhere, exposed)
    exposed += [Problem(*w) for w in _exposed_secrets(ctx, source if from_file else None)]
    if config.strict_file_modes:
        elsewhere += exposed
    if ctx.problems or elsewhere:
        raise ConfigError(source, _problems(ctx, elsewhere, translation))
    if not exposed:
        return config
    return attrs.evolve(config, warnings=tuple(in_file_order(exposed)))


def _exposed_secrets(ctx: cp.Context, config_file: str | None) -> list[cp.ProblemTuple]:
    """Secrets others may read: each secret file whose mode or owner lets them, and each
    secret written out in a config file (``config_file``) that every user may read."""
    exposed = [
        (path, line, problem)
        for path, line, name in ctx.secret_files
        for problem in secrets.file_mode_problems(name)
    ]
    if config_file is not None and secrets.readable_by_others(config_file):
        exposed += [
            (
                path,
                line,
                f"{what} is written out in {config_file}, which every user may read: "
                f"chmod o-r {config_file}, or give it in a file or as ${{VAR}}",
            )
            for path, line, what in ctx.literal_secrets
        ]
    return exposed


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute, validate and freeze the config file at ``path``.

    ``env`` (default: os.environ) resolves ``${VAR}`` references.
    Raises ConfigError listing every problem found, and nothing else.
    """
    text = cp.read_text(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    return _parse(text, path, base_dir, os.environ if env is None else env, from_file=True)


def parse_config(
    text: str,
    source: str = "<memory>",
    env: Mapping[str, str] | None = None,
    *,
    servers: ServersFile | None = None,
) -> Config:
    """Like load_config, from text; ``*_file`` keys are read relative to the cwd.

    ``servers``: an ``mcpServers`` document whose servers are backends too (``aigw run
    --mcp-config``), as ``import_mcp_servers`` would name it.
    """
    return _parse(text, source, os.getcwd(), os.environ if env is None else env, servers)
