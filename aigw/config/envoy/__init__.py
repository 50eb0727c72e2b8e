"""The Envoy AI Gateway's standalone format (its ``aigw run FILE``), read as native config.

A multi-document YAML of Kubernetes-style resources: ``Gateway`` (the listener),
``MCPRoute`` (the MCP endpoint, its backends and security policy), ``Backend``
(where each MCP server is), ``BackendTLSPolicy`` (HTTPS to a backend), ``Secret``
(API keys); ``GatewayClass`` and ``EnvoyProxy`` say nothing aigw needs and are left
out with a note.  Each resource is translated into native config nodes made of the
file's own nodes, so the native reader checks them at the file's lines, and each
problem's key path is said in the file's terms (``MCPRoute/mcp-route.spec.path``).

What aigw cannot honour (CEL, ``extAuth``, header matches, query-string API keys,
forwarded client headers, local JWKS, any unknown field) is an error naming the
field, never skipped: a security setting silently dropped would be worse than none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aigw.config import nodes as cp
from aigw.config.envoy.documents import Resource, Translation, Translator, parse, read
from aigw.config.envoy.render import render
from aigw.config.envoy_detect import is_envoy
from aigw.config.errors import ConfigError, Problem

__all__ = [
    "Resource",
    "Translation",
    "convert",
    "convert_file",
    "is_envoy",
    "render",
    "translate",
]


def translate(ctx: cp.Context, text: str) -> Translation | None:
    """The native config the Envoy-format ``text`` stands for; None when a problem was found
    (each reported in ``ctx`` with its Envoy key path and line).  The resources' readers
    are imported here, not with the package, which itself is imported only once
    ``envoy_detect.is_envoy`` said the file is in this format (docs/performance.md)."""
    from aigw.config.envoy import route

    translator = Translator(ctx)
    documents = parse(ctx, text)
    read(translator, documents)
    root = route.root(translator)
    if root is None or ctx.problems:
        return None
    return Translation(root, translator.paths, tuple(translator.notes))


# --- aigw convert ----------------------------------------------------------------
def convert(text: str, source: str, base_dir: str, env: Mapping[str, str]) -> str:
    """``aigw convert FILE``: the native YAML of an Envoy-format file; ConfigError listing
    every problem found in its shape.  Values are copied as written (``${VAR}`` too)."""
    ctx = cp.Context(env=env, base_dir=base_dir)
    if not is_envoy(text):
        raise ConfigError(
            source,
            [
                Problem(
                    "(root)",
                    None,
                    "not an Envoy AI Gateway file (no document has apiVersion and kind); "
                    "aigw convert --mcp-config FILE converts an mcpServers file",
                )
            ],
        )
    translation = translate(ctx, text)
    if translation is None:
        raise ConfigError(source, [Problem(*p) for p in ctx.problems])
    return render(source, translation)


def convert_file(path: str, env: Mapping[str, str] | None = None) -> str:
    """``aigw convert FILE`` for the file at ``path`` (ConfigError when it cannot be read)."""
    text = cp.read_text(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    return convert(text, path, base_dir, os.environ if env is None else env)
