"""A backend's upstream headers (static ones, and claims as headers): never one aigw writes.

What a header may be and which ones aigw writes itself is upstream's to say
(``aigw.upstream.headers``, a pure module the config may import: ``.importlinter``);
a static header of one of those names would go upstream twice.
"""

from __future__ import annotations

import re

import yaml

from aigw.config import nodes as cp
from aigw.config import secrets
from aigw.upstream import headers as reserved


def static_headers(ctx: cp.Context, path: str, node: cp.Node, is_file: bool) -> dict[str, str]:
    """Static upstream headers: an inline mapping, or a YAML/JSON file holding one
    (a ``nodes.TwinConverter``)."""
    if not is_file:
        headers = cp.as_str_map(ctx, path, node) or {}
        for header in headers:
            if secrets.is_credential_header(header):
                where = cp.value_node(node, header)
                ctx.literal_secret(f"{path}.{header}", where, f"the {header} header")
        return _valid_headers(ctx, path, node, headers, inline=True)
    name = cp.as_nonempty_str(ctx, path, node)
    data = None if name is None else cp.read_file(ctx, path, node, name)
    if name is None or data is None:
        return {}
    ctx.secret_file(path, node, name)
    headers = _headers_from_file(ctx, path, node, ctx.resolve_path(name), data)
    return _valid_headers(ctx, path, node, headers, inline=False)


#: The claim paths ``claims_to_headers`` reads: names, dot-separated into nested objects.
_CLAIM_PATH = re.compile(r"[^.\s]+(\.[^.\s]+)*")


def claims_headers(ctx: cp.Context, path: str, node: cp.Node) -> dict[str, str] | None:
    """``claims_to_headers``: claim path -> header name, each name a header aigw may send.

    ``Authorization`` is the credential modes' own and can carry no claim; two claims
    cannot fill one header.  The values are checked per request (``upstream.claims``).
    """
    mapping = cp.as_str_map(ctx, path, node)
    if mapping is None:
        return None
    chosen: dict[str, str] = {}
    taken: set[str] = set()
    for claim, header in mapping.items():
        where = (f"{path}.{claim}", cp.value_node(node, claim))
        if not _CLAIM_PATH.fullmatch(claim):
            ctx.report(*where, f"{claim!r} is not a claim name or dotted path")
        elif not reserved.FIELD_NAME.fullmatch(header):
            ctx.report(*where, f"{header!r} is not a valid header name")
        elif reserved.is_reserved(header) or header.lower() == "authorization":
            ctx.report(*where, f"{header} is set by aigw and cannot carry a claim")
        elif header.lower() in taken:
            ctx.report(*where, f"{header} already carries another claim")
        else:
            taken.add(header.lower())
            chosen[claim] = header
    return chosen


def _valid_headers(
    ctx: cp.Context, path: str, node: cp.Node, headers: dict[str, str], *, inline: bool
) -> dict[str, str]:
    """Only well-formed headers that aigw does not set itself; the rest are problems."""
    valid = {}
    for name, value in headers.items():
        where = (f"{path}.{name}", cp.value_node(node, name)) if inline else (path, node)
        if not reserved.FIELD_NAME.fullmatch(name):
            ctx.report(*where, f"{name!r} is not a valid header name")
        elif reserved.is_reserved(name):
            ctx.report(*where, f"{name} is set by aigw and cannot be configured")
        elif any(c in value for c in "\r\n\0"):
            ctx.report(*where, f"the value of {name} contains a line break or NUL")
        elif not reserved.FIELD_VALUE.fullmatch(value):
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
