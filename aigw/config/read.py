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

from aigw.config import fields
from aigw.config import nodes as cp
from aigw.config.errors import ConfigError, Problem, in_file_order
from aigw.config.model import (
    KNOWN_ALGORITHMS,
    SYMMETRIC_ALGORITHMS,
    AccessConfig,
    AuthConfig,
    BackendConfig,
    Config,
    IntrospectionConfig,
)

_backend = fields.section_of(BackendConfig)


def _check_backend_auth(
    ctx: cp.Context, path: str, node: cp.Node, backend: BackendConfig, no_auth: bool
) -> None:
    """No header is written both by the backend's ``auth`` and its static ``headers``;
    a token exchange needs a user token, which ``auth: none`` never has."""
    auth = backend.auth
    if auth is None:
        return
    if no_auth and auth.token_exchange is not None:
        exchange = cp.value_node(cp.value_node(node, "auth"), "token_exchange")
        ctx.report(f"{path}.auth.token_exchange", exchange, "needs auth (a verified user token)")
    static = {name.lower() for name in backend.headers}
    where = (f"{path}.auth", cp.value_node(node, "auth"))
    if (auth.client_credentials or auth.token_exchange) and "authorization" in static:
        ctx.report(*where, "the static headers hold Authorization, which auth would set too")
    for header in auth.claims_to_headers.values():
        if header.lower() in static:
            ctx.report(*where, f"{header} is a static header and a claim header both")


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
    no_auth = _is_auth_none(root.values.get("auth"))
    for path, item in listed:
        backend = _backend(root.ctx, path, item)
        if backend is None:
            continue
        _check_backend_auth(root.ctx, path, item, backend, no_auth)
        if backend.name and backend.name in first_line:
            root.ctx.report(
                f"{path}.name",
                cp.value_node(item, "name"),
                f"duplicate backend name {backend.name!r} (first on line "
                f"{first_line[backend.name]})",
            )
        first_line.setdefault(backend.name, item.start_mark.line + 1)
        backends.append(backend)
    return tuple(backends)


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


def _introspection(ctx: cp.Context, path: str, node: cp.Node) -> IntrospectionConfig | None:
    section = cp.open_section(ctx, node, path, fields.keys(IntrospectionConfig))
    if section is None:
        return None
    # The secret is read first, as it always was: problems on one line are
    # reported in reading order.
    secret = fields.read_field(section, IntrospectionConfig, "client_secret")
    return fields.read_fields(section, IntrospectionConfig, client_secret=lambda: secret)


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


def _access(ctx: cp.Context, path: str, node: cp.Node) -> AccessConfig | None:
    section = cp.open_section(ctx, node, path, fields.keys(AccessConfig))
    if section is None:
        return None
    # The rules are read before the default, as they always were: problems on one
    # line are reported in reading order.
    rules = fields.read_field(section, AccessConfig, "rules")
    return fields.read_fields(section, AccessConfig, rules=lambda: rules)


def _read_config(root: cp.Section, source: str) -> Config:
    # The resource URL is the default audience: read first.
    public_url: str = fields.read_field(root, Config, "public_url")
    mcp_path: str = fields.read_field(root, Config, "mcp_path")
    resource_url = public_url.rstrip("/") + mcp_path
    return fields.read_fields(
        root,
        Config,
        public_url=lambda: public_url,
        mcp_path=lambda: mcp_path,
        auth=lambda: _read_auth(root, resource_url),
        backends=lambda: _read_backends(root),
        access=lambda: fields.read_field(root, Config, "access", _access),
        source=lambda: source,
    )


def _problems(ctx: cp.Context) -> list[Problem]:
    """The problems found, in file order."""
    return in_file_order(Problem(path, line, message) for path, line, message in ctx.problems)


def _parse(text: str, source: str, base_dir: str, env: Mapping[str, str]) -> Config:
    ctx = cp.Context(env=env, base_dir=base_dir)
    node = cp.compose(ctx, text)
    if node is None and not ctx.problems:
        ctx.problems.append(("(root)", None, "the file is empty"))
    root = None if node is None else cp.open_section(ctx, node, "", fields.keys(Config))
    if root is None:
        raise ConfigError(source, _problems(ctx))
    config = _read_config(root, source)
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
