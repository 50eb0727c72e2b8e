"""Reading the file's YAML documents into resources, and the native nodes made at its places."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import yaml

from aigw.config import nodes as cp

#: The kinds read, and the API group each belongs to.
_GROUPS = {
    "Gateway": "gateway.networking.k8s.io/",
    "GatewayClass": "gateway.networking.k8s.io/",
    "BackendTLSPolicy": "gateway.networking.k8s.io/",
    "MCPRoute": "aigateway.envoyproxy.io/",
    "Backend": "gateway.envoyproxy.io/",
    "EnvoyProxy": "gateway.envoyproxy.io/",
    "Secret": "v1",
}
_LEFT_OUT = {
    "GatewayClass": "names Envoy Gateway's controller; aigw is its own",
    "EnvoyProxy": "Envoy's own settings (logging, bootstrap, telemetry); aigw has "
    "`logging`, `metrics` and `audit`",
}
_TOP_KEYS = ("apiVersion", "kind", "metadata", "spec")
_SECRET_KEYS = ("apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable")


def _empty(document: cp.Node | None) -> bool:
    """A document of comments only (between two ``---``) is no resource."""
    return document is None or (
        isinstance(document, cp.ScalarNode) and document.tag == cp.TAG + "null"
    )


def parse(ctx: cp.Context, text: str) -> list[cp.Node]:
    try:
        return [d for d in yaml.compose_all(text, Loader=yaml.SafeLoader) if not _empty(d)]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        message = " ".join(str(part) for part in (error.context, error.problem) if part)
        ctx.problems.append(("(root)", line, f"YAML syntax error: {message}"))
    except (yaml.YAMLError, RecursionError) as error:
        ctx.problems.append(("(root)", None, f"YAML syntax error: {error}"))
    return []


# --- native nodes made at the Envoy file's places ------------------------------


def scalar(value: str, at: cp.Node) -> cp.ScalarNode:
    """A string computed here, quoted so the native reader takes it as it is."""
    return cp.ScalarNode(cp.STR, value, at.start_mark, at.end_mark, style="'")


def mapping(pairs: Iterable[tuple[str, cp.Node]], at: cp.Node) -> cp.MappingNode:
    keyed = [(cp.ScalarNode(cp.STR, k, at.start_mark, at.end_mark), v) for k, v in pairs]
    return cp.MappingNode(cp.TAG + "map", keyed, at.start_mark, at.end_mark)


def sequence(items: Iterable[cp.Node], at: cp.Node) -> cp.SequenceNode:
    return cp.SequenceNode(cp.TAG + "seq", list(items), at.start_mark, at.end_mark)


def literal(value: str) -> str:
    """A value read from the file that must not be substituted again (a decoded secret)."""
    return value.replace("${", "$${")


@attrs.define
class Resource:
    kind: str
    name: str
    node: cp.MappingNode
    section: cp.Section

    @property
    def path(self) -> str:
        return f"{self.kind}/{self.name}"


@attrs.frozen
class Translation:
    """The native config's root, where each native key came from, and the choices made."""

    root: cp.MappingNode
    #: Native key path -> the Envoy file's key path it was made from.
    paths: dict[str, str]
    #: (native top-level key, or "" for the whole file; what was chosen and why).
    notes: tuple[tuple[str, str], ...]

    def envoy_path(self, path: str) -> str:
        """A native key path said in the Envoy file's terms (its longest known prefix)."""
        best = ""
        for native in self.paths:
            if len(native) > len(best) and (
                path == native or path.startswith((native + ".", native + "["))
            ):
                best = native
        return path if not best else self.paths[best] + path[len(best) :]


@attrs.define
class Translator:
    """What the parts of a translation share: the context, the resources read, where each
    native key came from and the notes."""

    ctx: cp.Context
    paths: dict[str, str] = attrs.field(factory=dict)
    notes: list[tuple[str, str]] = attrs.field(factory=list)
    by_kind: dict[str, list[Resource]] = attrs.field(factory=dict)
    backend_names: list[str] = attrs.field(factory=list)
    seen: set[str] = attrs.field(factory=set)
    #: Every backendRef's name, converted or not: what authorization targets may name.
    ref_names: set[str] = attrs.field(factory=set)
    claims_path: str = ""
    origin: str = ""
    tls: dict[str, cp.Section | None] | None = None

    def refuse(self, section: cp.Section, key: str, why: str) -> None:
        """A field aigw cannot honour, reported on its key's line."""
        if section.has(key):
            at = next(k for k, v in section.node.value if v is section.values[key])
            self.ctx.report(section.child(key), at, f"{key}: {why}")

    def open(self, section: cp.Section, key: str, known: Iterable[str]) -> cp.Section | None:
        node = section.values.get(key)
        return None if node is None else cp.open_section(self.ctx, node, section.child(key), known)

    def items(self, section: cp.Section, key: str) -> list[tuple[str, cp.Node]]:
        node = section.values.get(key)
        return [] if node is None else cp.items(self.ctx, section.child(key), node) or []

    def string(self, section: cp.Section, key: str) -> str | None:
        node = section.values.get(key)
        return None if node is None else cp.as_nonempty_str(self.ctx, section.child(key), node)

    def carry(
        self, section: cp.Section, key: str, native: str, pairs: list[tuple[str, cp.Node]]
    ) -> bool:
        """``key`` of ``section``, if given, carried into ``pairs`` as the native key
        ``native`` names last (``auth.issuer``: ``issuer``), with where it came from;
        whether it was given."""
        if not section.has(key):
            return False
        pairs.append((native.rpartition(".")[2], section.values[key]))
        self.paths[native] = section.child(key)
        return True

    def named(self, kind: str, name: str) -> Resource | None:
        return next((r for r in self.by_kind.get(kind, []) if r.name == name), None)


def read(t: Translator, documents: list[cp.Node]) -> None:
    for index, node in enumerate(documents):
        _resource(t, f"(document {index + 1})", node)


def _resource(t: Translator, where: str, node: cp.Node) -> None:
    if not isinstance(node, cp.MappingNode):
        cp.expected(t.ctx, where, node, "a mapping with apiVersion and kind")
        return
    given = {k.value: v for k, v in node.value if isinstance(k, cp.ScalarNode)}
    kind = cp.as_nonempty_str(t.ctx, f"{where}.kind", given["kind"]) if "kind" in given else None
    if kind is None:
        if "kind" not in given:
            t.ctx.report(where, node, "required key 'kind' is missing")
        return
    t.seen.add(kind)
    if kind not in _GROUPS:
        t.ctx.report(
            f"{where}.kind",
            given["kind"],
            f"kind {kind!r} is not supported by aigw (it reads Gateway, MCPRoute, Backend, "
            "BackendTLSPolicy and Secret; GatewayClass and EnvoyProxy are left out)",
        )
        return
    metadata = given.get("metadata")
    meta = (
        None
        if metadata is None
        else cp.open_section(
            t.ctx,
            metadata,
            f"{kind}.metadata",
            ("name", "namespace", "labels", "annotations"),
        )
    )
    name = None if meta is None else t.string(meta, "name")
    if meta is not None and not meta.has("name"):
        meta.missing("name")
    if metadata is None:
        t.ctx.report(f"{kind}.metadata", node, "required key 'metadata' is missing")
    if name is None:
        return
    path = f"{kind}/{name}"
    known = _SECRET_KEYS if kind == "Secret" else _TOP_KEYS
    section = cp.Section(t.ctx, node, path, known)
    version = t.string(section, "apiVersion")
    group = _GROUPS[kind]
    if version is not None and not (version == group or version.startswith(group)):
        t.ctx.report(
            section.child("apiVersion"),
            section.values["apiVersion"],
            f"{kind} is in {group.rstrip('/')}, not {version!r}",
        )
    if kind in _LEFT_OUT:
        t.notes.append(("", f"{path} left out: {_LEFT_OUT[kind]}."))
        return
    if kind != "Secret" and not section.has("spec"):
        section.missing("spec")
        return
    if t.named(kind, name) is not None:
        t.ctx.report(path, node, f"a second {kind} named {name!r}")
        return
    t.by_kind.setdefault(kind, []).append(Resource(kind, name, node, section))
