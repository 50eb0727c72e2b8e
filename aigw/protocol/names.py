"""Names between the backends and the client: tools, prompts and resource URIs.

Tools and prompts
-----------------
A backend's tool ``search`` is exposed as ``<backend>__search``
(``NAME_SEPARATOR``).  Exposed names always match ``^[A-Za-z0-9_-]{1,64}$``,
the narrowest rule among the LLM APIs behind MCP clients (MCP 2025-11-25
server/tools "Tool Names" allows ``.`` and up to 128 characters, but several
model APIs refuse a dot or more than 64 characters).  When ``<backend>__<name>``
does not fit, the name is mapped deterministically: disallowed characters
become ``_``, the name is cut to fit, and ``_`` plus 8 hex digits of
SHA-256(backend NUL name) are appended, so distinct names stay distinct.
Mapped names cannot be reversed by string operations: a ``NameTable`` records
each one when a list result is exposed.  ``split_name`` reverses the common
case, at the FIRST ``__`` (backend names never contain ``__``).

Resource URIs
-------------
A backend's resource ``<uri>`` is exposed as::

    aigw:<backend>/<uri>

e.g. ``file:///src/main.rs`` of backend ``code`` becomes
``aigw:code/file:///src/main.rs``.  Why this form:

* it is an RFC 3986 URI (scheme ``aigw``, then a rootless path whose first
  segment is the backend name: letters, digits, ``_`` and ``-`` are all
  unreserved characters), as MCP server/resources "Custom URI Schemes" asks,
  provided the upstream URI is one;
* the original URI follows verbatim, never percent-encoded, so a resource
  template (``uriTemplate``, RFC 6570) exposed the same way still holds its
  ``{expressions}``: expanding the exposed template gives ``aigw:<backend>/``
  followed by exactly the upstream expansion, and ``resolve_uri`` gives it back;
* there is no ``//authority``: WHATWG URL parsers (browsers, pydantic's AnyUrl)
  treat the rest as an opaque path, so they neither lowercase the backend name
  (a host would be) nor remove ``..`` segments nor percent-encode ``{}`` in the
  original URI, which they would do in a hierarchical path;
* resolving splits after the first ``/``, and the backend name contains none,
  so it is exact, also for nested gateways (``aigw:outer/aigw:inner/...``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

#: What a backend name matches: it starts every exposed name and URI (the config
#: checks backend names against it).
BACKEND_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
#: Between the backend and the upstream name in an exposed name.
NAME_SEPARATOR = "__"
#: What every exposed tool or prompt name matches.
EXPOSED_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_EXPOSED_NAME = 64
URI_SCHEME = "aigw"

_DISALLOWED = re.compile(r"[^A-Za-z0-9_-]")
_HASH_HEX = 8
_URI_PREFIX = URI_SCHEME + ":"


def _suffix(backend: str, name: str) -> str:
    digest = hashlib.sha256(f"{backend}\0{name}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:_HASH_HEX]


def mapped_name(backend: str, upstream_name: str) -> str:
    """The hashed form of a name: always valid, used when the plain form is not."""
    prefix = backend + NAME_SEPARATOR
    room = MAX_EXPOSED_NAME - len(prefix) - 1 - _HASH_HEX
    cleaned = _DISALLOWED.sub("_", upstream_name[: room + 1])[:room]
    return f"{prefix}{cleaned}_{_suffix(backend, upstream_name)}"


def expose_name(backend: str, upstream_name: str) -> str | None:
    """``<backend>__<name>``, or its mapped form when that would not be a valid name.

    None when no name can be made: an empty upstream name, or a backend name
    that is not valid (config validation prevents that).
    """
    if not upstream_name or not BACKEND_NAME_PATTERN.fullmatch(backend):
        return None
    plain = backend + NAME_SEPARATOR + upstream_name
    if len(plain) <= MAX_EXPOSED_NAME and not _DISALLOWED.search(upstream_name):
        return plain
    return mapped_name(backend, upstream_name)


_MAPPED_SUFFIX = re.compile(rf"_[0-9a-f]{{{_HASH_HEX}}}")


def could_be_mapped(exposed: str) -> bool:
    """Whether ``exposed`` has the shape of a mapped name (ends in ``_`` + 8 hex digits)."""
    start = len(exposed) - _HASH_HEX - 1
    return start > 0 and _MAPPED_SUFFIX.fullmatch(exposed, start) is not None


def split_name(exposed: str) -> tuple[str, str] | None:
    """``(backend, name)`` split at the first ``__``; None if either side would be empty.

    This reverses ``expose_name`` for plain names (the common case); mapped
    names, and names of a backend ending in ``_``, need a ``NameTable``.
    """
    backend, separator, name = exposed.partition(NAME_SEPARATOR)
    if not separator or not backend or not name:
        return None
    return backend, name


class NameTable:
    """Exposed name <-> (backend, upstream name), for one kind (tools, or prompts).

    Filled from list results with ``add``; resolves every name it holds, mapped
    or plain.  Two upstream names
    that would be exposed the same way (a plain name equal to another's mapped
    form, or ``a_`` + ``__x`` against ``a`` + ``___x``) cannot both be
    routed: the plain name keeps its form, the other falls back to its mapped
    form, and a name with no free form is left out (``add`` returns it).
    """

    __slots__ = ("_exposed", "_routes")

    def __init__(self) -> None:
        self._routes: dict[str, tuple[str, str]] = {}
        self._exposed: dict[tuple[str, str], str] = {}

    def add(self, backend: str, upstream_names: Iterable[str]) -> list[str]:
        """Record these names of ``backend``; return those that cannot be exposed."""
        left_out: list[str] = []
        later: list[str] = []
        # Plain names first, so that a collision never takes a plain name's form.
        for name in upstream_names:
            key = (backend, name)
            if key in self._exposed:
                continue
            exposed = expose_name(backend, name)
            if exposed is None:
                left_out.append(name)
            elif exposed not in self._routes and split_name(exposed) == key:
                self._bind(exposed, key)
            else:
                later.append(name)
        for name in later:
            key = (backend, name)
            if key in self._exposed:
                continue
            for exposed in (expose_name(backend, name), mapped_name(backend, name)):
                if exposed is not None and exposed not in self._routes:
                    self._bind(exposed, key)
                    break
            else:
                left_out.append(name)
        return left_out

    def _bind(self, exposed: str, key: tuple[str, str]) -> None:
        self._routes[exposed] = key
        self._exposed[key] = exposed

    def expose(self, backend: str, upstream_name: str) -> str | None:
        """The exposed name recorded for this upstream name (None if not recorded)."""
        return self._exposed.get((backend, upstream_name))

    def resolve(self, exposed: str) -> tuple[str, str] | None:
        """``(backend, upstream name)`` recorded for an exposed name (None if not recorded)."""
        return self._routes.get(exposed)


# -- Resource URIs ---------------------------------------------------------------------


def expose_uri(backend: str, uri: str) -> str:
    """``aigw:<backend>/<uri>`` (see the module docstring); ``uri`` is kept verbatim.

    A resource template (RFC 6570) is exposed exactly like a URI: its expressions
    are kept, and an expansion of the exposed template resolves to the upstream one.
    """
    return f"{_URI_PREFIX}{backend}/{uri}"


def resolve_uri(exposed: str) -> tuple[str, str] | None:
    """``(backend, upstream uri)`` of an exposed URI; None if it is not one.

    The scheme is compared without case (RFC 3986 §3.1); the backend name
    exactly, and it must be a valid backend name.
    """
    if exposed[:5].lower() != _URI_PREFIX:
        return None
    slash = exposed.find("/", 5)
    if slash < 0:
        return None
    backend = exposed[5:slash]
    uri = exposed[slash + 1 :]
    if not uri or not BACKEND_NAME_PATTERN.fullmatch(backend):
        return None
    return backend, uri


def _expose_block(backend: str, block: Any) -> Any:
    """A content block with its resource URI exposed (MCP server/tools "Tool Result")."""
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == "resource_link":
        uri = block.get("uri")
        if isinstance(uri, str):
            return {**block, "uri": expose_uri(backend, uri)}
    elif kind == "resource":
        resource = block.get("resource")
        if isinstance(resource, dict) and isinstance(resource.get("uri"), str):
            exposed = {**resource, "uri": expose_uri(backend, resource["uri"])}
            return {**block, "resource": exposed}
    return block


def _expose_blocks(backend: str, blocks: list[Any]) -> list[Any] | None:
    """The blocks with URIs exposed, or None when none needed it (nothing copied)."""
    changed: list[Any] | None = None
    for index, block in enumerate(blocks):
        exposed = _expose_block(backend, block)
        if exposed is not block:
            if changed is None:
                changed = list(blocks)
            changed[index] = exposed
    return changed


def rewrite_resource_links(backend: str, result: dict[str, Any]) -> dict[str, Any]:
    """A ``tools/call`` result whose resource links and embedded resources use exposed URIs.

    Covers ``content`` items of type ``resource_link`` (``uri``) and
    ``resource`` (``resource.uri``), MCP server/tools "Resource Links" and
    "Embedded Resources".  The result is returned as is when nothing changes;
    otherwise only the changed containers are copied.
    """
    content = result.get("content")
    if not isinstance(content, list):
        return result
    changed = _expose_blocks(backend, content)
    return result if changed is None else {**result, "content": changed}


def rewrite_prompt_result(backend: str, result: dict[str, Any]) -> dict[str, Any]:
    """A ``prompts/get`` result whose messages' resource links use exposed URIs.

    Prompt messages hold one content block each, of the same types as tool
    results (MCP server/prompts "Data Types").
    """
    messages = result.get("messages")
    if not isinstance(messages, list):
        return result
    changed: list[Any] | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        block = message.get("content")
        exposed = _expose_block(backend, block)
        if exposed is not block:
            if changed is None:
                changed = list(messages)
            changed[index] = {**message, "content": exposed}
    return result if changed is None else {**result, "messages": changed}


def rewrite_read_result(backend: str, result: dict[str, Any]) -> dict[str, Any]:
    """A ``resources/read`` result whose ``contents[].uri`` are exposed URIs."""
    contents = result.get("contents")
    if not isinstance(contents, list):
        return result
    exposed = [
        {**item, "uri": expose_uri(backend, item["uri"])}
        if isinstance(item, dict) and isinstance(item.get("uri"), str)
        else item
        for item in contents
    ]
    return {**result, "contents": exposed}
