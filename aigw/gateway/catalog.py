"""The catalog: how backends' tools, prompts and resources are named to the client.

Tools and prompts are exposed as ``<backend>__<name>`` (``protocol/names.py``),
filtered by the backend's tool selector and the access policy, and held back by
the backend's trust checks (``pinning``, then ``screening``); a name that had
to be mapped is recorded in a ``NameTable`` when a list exposes it, and learnt
by listing when a call names one this process never listed.  The tools'
``x-mcp-header`` annotations (``ParamHeaders``) are learnt from the same lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from aigw.gateway.access import AccessPolicy
from aigw.gateway.errors import GatewayError
from aigw.gateway.lists import list_page
from aigw.gateway.pinning import Pinning
from aigw.gateway.screening import Named, Screening
from aigw.protocol import jsonrpc
from aigw.protocol.names import (
    NAME_SEPARATOR,
    NameTable,
    could_be_mapped,
    expose_uri,
    resolve_uri,
    split_name,
)
from aigw.protocol.paramheaders import Annotations, as_text, header_annotations, value_at
from aigw.protocol.revision import encode_header_value
from aigw.protocol.versions import is_modern
from aigw.upstream.api import UpstreamError

if TYPE_CHECKING:
    from aigw.gateway.client_sessions import ClientSession
    from aigw.gateway.exchange import Exchange

LEARN_AGAIN_SECONDS = 30.0
LEARN_MAX_PAGES = 20
#: Tool names remembered per backend as listed (``lists_tool``): a bound against a
#: backend that lists without end.
MAX_LISTED_TOOLS = 10_000


class ParamHeaders:
    """x-mcp-header annotations per (backend, tool), from the tool lists."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], Annotations] = {}

    def remember(self, backend: str, tool: dict[str, Any]) -> None:
        """A tool's ``x-mcp-header`` annotations (paramheaders.py), as last listed."""
        found = header_annotations(tool.get("inputSchema"))
        if found:
            self._found[(backend, tool["name"])] = found
        else:
            self._found.pop((backend, tool["name"]), None)

    def of(self, backend: str, tool: str) -> Annotations:
        return self._found.get((backend, tool), {})

    def mirrored(self, backend: str, params: dict[str, Any]) -> dict[bytes, bytes]:
        """``Mcp-Param-{Name}`` for a call to a 2026-07-28 backend ("Client Behavior")."""
        headers: dict[bytes, bytes] = {}
        for name, path in self.of(backend, str(params.get("name"))).items():
            text = as_text(value_at(params.get("arguments"), path))
            if text is not None:
                headers[f"Mcp-Param-{name}".encode("ascii", "replace")] = encode_header_value(
                    text
                ).encode("ascii")
        return headers


def selected(items: list[Any], kind: Named, allows: Callable[[str], bool]) -> list[Any]:
    """The tools or prompts of a listed page that have a name and that the backend's
    tool selector (``allows``; prompts have none) lets through: what is pinned and
    what the policy is asked about."""
    return [
        item
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("name"), str)
        and (kind == "prompt" or allows(item["name"]))
    ]


class Catalog:
    """Exposes list items to the client and resolves the names the client sends back."""

    log = Logger()

    def __init__(
        self,
        policy: AccessPolicy,
        param_headers: ParamHeaders,
        exchange: Exchange,
        clock: Any,
        screening: Screening,
        pinning: Pinning,
    ) -> None:
        self.policy = policy
        self.screening = screening
        self.pinning = pinning
        self.param_headers = param_headers
        self.exchange = exchange
        self.clock = clock
        # Exposed tool and prompt names, mapped ones included, as served in lists.
        self._names = {"tool": NameTable(), "prompt": NameTable()}
        # Which backends' tools and prompts this process has listed, and when it last
        # listed one only to route a call (see learn_names).
        self._listed: set[tuple[str, str]] = set()
        self._learned: dict[tuple[str, str], float] = {}
        # Each backend's tools its selector allows, as listed to this process.
        self._tools_listed: dict[str, set[str]] = {}
        # Changes whenever a tool name is first listed: screening verdicts depend on it.
        self._names_version = 0

    def expose_items(
        self, session: ClientSession, backend: str, key: str, items: list[Any], method: str
    ) -> Iterable[Any]:
        """One backend's list items as the client sees them, filtered by policy: each item
        is decided with the list ``method`` (``tools/list``), resources by upstream URI
        (templates by their template)."""
        if key in ("tools", "prompts"):
            yield from self._expose_named(session, backend, key, items, method)
            return
        field = "uri" if key == "resources" else "uriTemplate"
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get(field), str):
                continue
            uri = item[field]
            if self.policy.decide(session.principal, backend, uri, kind="resource", method=method):
                yield {**item, field: expose_uri(backend, uri)}

    async def observe(
        self, session: ClientSession, backend: str, key: str, items: list[Any]
    ) -> None:
        """Before a page of tools or prompts is exposed: pin them (``pinning``), those
        the backend's selector allows, whoever the policy lets see them."""
        mode = session.snapshot.backends[backend].pin_tools
        if key not in ("tools", "prompts") or mode == "off":
            return
        kind: Named = "tool" if key == "tools" else "prompt"
        allows = session.snapshot.filters[backend].allows
        await self.pinning.observe(backend, mode, kind, selected(items, kind, allows))

    def _expose_named(
        self, session: ClientSession, backend: str, key: str, items: list[Any], method: str
    ) -> Iterable[Any]:
        """Tools and prompts as ``<backend>__<name>``, filtered by selector and policy
        (asked with ``method``)."""
        kind: Named = "tool" if key == "tools" else "prompt"
        table = self._names[kind]
        principal = session.principal
        allows = session.snapshot.filters[backend].allows
        self._listed.add((backend, kind))
        if kind == "tool":
            self._remember_tools(backend, items, allows)
        decide = self.policy.decide
        kept = [
            item
            for item in selected(items, kind, allows)
            if decide(principal, backend, item["name"], kind=kind, method=method)
        ]
        kept = self._trusted(session, backend, kind, kept)
        for name in table.add(backend, [item["name"] for item in kept]):
            self.log.warn(
                "backend {backend}: {kind} {name!r} cannot be exposed; left out",
                backend=backend,
                kind=kind,
                name=name,
            )
        for item in kept:
            exposed = table.expose(backend, item["name"])
            if exposed is not None:
                if kind == "tool":
                    self.param_headers.remember(backend, item)
                yield {**item, "name": exposed}

    def _trusted(
        self, session: ClientSession, backend: str, kind: Named, items: list[Any]
    ) -> list[Any]:
        """The items the backend's trust checks let through: under ``block``, a changed
        pin (``pin_tools``) or a screening flag (``screen_tools``) hides an item; other
        backends' names are what an item must not name."""
        settings = session.snapshot.backends[backend]
        pinned = settings.pin_tools
        if pinned != "off":
            usable = self.pinning.usable
            items = [item for item in items if usable(backend, pinned, kind, item["name"])]
        mode = settings.screen_tools
        if mode == "off":
            return items
        order = session.snapshot.order
        others = [f"{b}{NAME_SEPARATOR}" for b in order if b != backend]
        others += [n for b, names in self._tools_listed.items() if b != backend for n in names]
        own = self._tools_listed.get(backend, set())
        context = (order, self._names_version)
        admit = self.screening.admit
        return [item for item in items if admit(backend, mode, kind, item, others, own, context)]

    def held(self, session: ClientSession, backend: str, kind: Named, name: str) -> str | None:
        """The key of the trust check that holds ``name`` back from use (``pin_tools``,
        ``screen_tools``), or None when it may be used."""
        settings = session.snapshot.backends[backend]
        if not self.pinning.usable(backend, settings.pin_tools, kind, name):
            return "pin_tools"
        if not self.screening.usable(backend, settings.screen_tools, kind, name):
            return "screen_tools"
        return None

    def _remember_tools(
        self, backend: str, items: list[Any], allows: Callable[[str], bool]
    ) -> None:
        listed = self._tools_listed.setdefault(backend, set())
        for item in items:
            if len(listed) >= MAX_LISTED_TOOLS:
                return
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and allows(name) and name not in listed:
                listed.add(name)
                self._names_version += 1

    def lists_tool(self, backend: str, name: str) -> bool:
        """Whether ``backend`` listed the tool ``name`` to this process, its selector
        allowing it, whoever the policy let see it: what the metrics may name."""
        return name in self._tools_listed.get(backend, ())

    def param_headers_of(self, exposed: str) -> Annotations:
        """The annotations of an exposed tool name (empty when none or unknown)."""
        resolved = self._names["tool"].resolve(exposed) or split_name(exposed)
        return self.param_headers.of(*resolved) if resolved else {}

    def resolve_name(self, session: ClientSession, exposed: Any, kind: str) -> tuple[str, str]:
        """``(backend, upstream name)`` of an exposed tool or prompt name of this session."""
        if not isinstance(exposed, str):
            raise GatewayError(jsonrpc.INVALID_PARAMS, f"{kind} name must be a string")
        resolved = self._names[kind].resolve(exposed) or split_name(exposed)
        if resolved is None:
            raise GatewayError(jsonrpc.INVALID_PARAMS, f"unknown {kind}: {exposed}")
        backend, name = resolved
        if backend in session.snapshot.removed:
            raise GatewayError.removed(backend)
        if backend not in session.snapshot.backends or backend not in session.backends:
            raise GatewayError(jsonrpc.INVALID_PARAMS, f"unknown {kind}: {exposed}")
        return backend, name

    @staticmethod
    def resolve_uri(session: ClientSession, exposed: Any) -> tuple[str, str]:
        """``(backend, upstream uri)`` of an exposed resource URI."""
        if not isinstance(exposed, str):
            raise GatewayError(jsonrpc.INVALID_PARAMS, "uri must be a string")
        resolved = resolve_uri(exposed)
        if resolved is not None and resolved[0] in session.snapshot.removed:
            raise GatewayError.removed(resolved[0])
        if resolved is None or resolved[0] not in session.snapshot.backends:
            raise GatewayError(jsonrpc.RESOURCE_NOT_FOUND, "resource not found", {"uri": exposed})
        return resolved

    async def before_call(self, session: ClientSession, method: str, exposed: Any) -> None:
        """What a ``tools/call`` or ``prompts/get`` needs before it is routed: its name
        learnt (``learn_names``), and, when its pin holds it back, the pins read again
        (an operator may have accepted the change: ``Pinning.recheck``)."""
        await self.learn_names(session, method, exposed)
        if not isinstance(exposed, str):
            return
        kind: Named = "tool" if method == "tools/call" else "prompt"
        resolved = self._names[kind].resolve(exposed) or split_name(exposed)
        if resolved is None or resolved[0] not in session.snapshot.backends:
            return
        backend, name = resolved
        mode = session.snapshot.backends[backend].pin_tools
        await self.pinning.recheck(backend, mode, kind, name)

    async def learn_names(self, session: ClientSession, method: str, exposed: Any) -> None:
        """List a backend's tools (or prompts) in this process before routing a call to it,
        when what routing needs comes only from a list: a mapped (hashed) name, or the
        ``Mcp-Param`` headers of a 2026-07-28 backend's tools.  Another process of the
        same deployment may have served the list (sealed sessions: any process serves
        any request).  At most once per backend and kind every LEARN_AGAIN_SECONDS, so
        made-up names cannot make aigw list for every call; failures leave routing as
        it was (the call then fails as unknown, or goes without mirrored headers).
        """
        if not isinstance(exposed, str):
            return
        kind: Named = "tool" if method == "tools/call" else "prompt"
        split = split_name(exposed)
        if split is None or split[0] not in session.backends:
            return
        backend = split[0]
        table = self._names[kind]
        unresolved = table.resolve(exposed) is None and could_be_mapped(exposed)
        settings = session.snapshot.backends[backend]
        unscreened = settings.screen_tools == "block" and (
            not self.screening.screened(backend, kind, split[1])
        )
        unpinned = settings.pin_tools == "block" and not self.pinning.seen(backend, kind, split[1])
        unlisted = (
            kind == "tool"
            and is_modern(session.backends[backend].protocol_version)
            and (backend, kind) not in self._listed
        )
        if not (unresolved or unlisted or unscreened or unpinned):
            return
        now = self.clock.seconds()
        if self._learned.get((backend, kind), -LEARN_AGAIN_SECONDS) + LEARN_AGAIN_SECONDS > now:
            return
        self._learned[(backend, kind)] = now
        try:
            await self._list_until(session, backend, kind, exposed if unresolved else None)
        except UpstreamError as error:
            self.log.info(
                "listing {backend} to route {name!r}: {error}",
                backend=backend,
                name=exposed,
                error=error,
            )

    async def _list_until(
        self, session: ClientSession, backend: str, kind: str, wanted: str | None
    ) -> None:
        """List the backend's tools or prompts, page by page (at most LEARN_MAX_PAGES),
        until ``wanted`` resolves or the list ends."""
        cursor: str | None = None
        # Asked as the call it routes, which the call's own decision repeats.
        call = "tools/call" if kind == "tool" else "prompts/get"
        for _ in range(LEARN_MAX_PAGES):
            items, cursor = await list_page(
                self.exchange, session, backend, f"{kind}s/list", cursor
            )
            await self.observe(session, backend, kind + "s", items)
            for _item in self._expose_named(session, backend, kind + "s", items, call):
                pass  # exposing fills the name table and the header annotations
            if cursor is None or (wanted is not None and self._names[kind].resolve(wanted)):
                return
