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

import base64
import binascii
import itertools
import os
import textwrap
from collections.abc import Iterable, Mapping

import attrs
import yaml

from aigw.config import nodes as cp
from aigw.config.errors import ConfigError, Problem
from aigw.config.mcp_servers import plain

LISTEN_INTERFACE = "127.0.0.1"
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
_ENV_ANNOTATION = "substitution.aigw.run/env/"
_FILE_ANNOTATION = "substitution.aigw.run/file/"
#: Access rules one Envoy rule may become (its claim values times its backends).
MAX_RULES = 256


def _names(node: cp.Node) -> list[str]:
    if not isinstance(node, cp.MappingNode):
        return []
    return [key.value for key, _ in node.value if isinstance(key, cp.ScalarNode)]


def is_envoy(text: str) -> bool:
    """Whether ``text`` is in the Envoy format: some document has ``apiVersion`` and ``kind``."""
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except (yaml.YAMLError, RecursionError):
        return False
    return any({"apiVersion", "kind"} <= set(_names(d)) for d in documents if d is not None)


def _empty(document: cp.Node | None) -> bool:
    """A document of comments only (between two ``---``) is no resource."""
    return document is None or (
        isinstance(document, cp.ScalarNode) and document.tag == cp.TAG + "null"
    )


def _documents(ctx: cp.Context, text: str) -> list[cp.Node]:
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


def _text(value: str, at: cp.Node) -> cp.ScalarNode:
    """A string computed here, quoted so the native reader takes it as it is."""
    return cp.ScalarNode(cp.STR, value, at.start_mark, at.end_mark, style="'")


def _mapping(pairs: Iterable[tuple[str, cp.Node]], at: cp.Node) -> cp.MappingNode:
    keyed = [(cp.ScalarNode(cp.STR, k, at.start_mark, at.end_mark), v) for k, v in pairs]
    return cp.MappingNode(cp.TAG + "map", keyed, at.start_mark, at.end_mark)


def _sequence(items: Iterable[cp.Node], at: cp.Node) -> cp.SequenceNode:
    return cp.SequenceNode(cp.TAG + "seq", list(items), at.start_mark, at.end_mark)


def _literal(value: str) -> str:
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


class _Translator:
    def __init__(self, ctx: cp.Context) -> None:
        self.ctx = ctx
        self.paths: dict[str, str] = {}
        self.notes: list[tuple[str, str]] = []
        self.by_kind: dict[str, list[Resource]] = {}
        self.backend_names: list[str] = []
        self.seen: set[str] = set()
        #: Every backendRef's name, converted or not: what authorization targets may name.
        self.ref_names: set[str] = set()
        self.claims_path = ""
        self.origin = ""
        self._tls: dict[str, cp.Section | None] | None = None

    # --- helpers --------------------------------------------------------------

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

    def named(self, kind: str, name: str) -> Resource | None:
        return next((r for r in self.by_kind.get(kind, []) if r.name == name), None)

    # --- documents ------------------------------------------------------------

    def read(self, documents: list[cp.Node]) -> None:
        for index, node in enumerate(documents):
            self.resource(f"(document {index + 1})", node)

    def resource(self, where: str, node: cp.Node) -> None:
        if not isinstance(node, cp.MappingNode):
            cp.expected(self.ctx, where, node, "a mapping with apiVersion and kind")
            return
        given = {k.value: v for k, v in node.value if isinstance(k, cp.ScalarNode)}
        kind = (
            cp.as_nonempty_str(self.ctx, f"{where}.kind", given["kind"])
            if "kind" in given
            else None
        )
        if kind is None:
            if "kind" not in given:
                self.ctx.report(where, node, "required key 'kind' is missing")
            return
        self.seen.add(kind)
        if kind not in _GROUPS:
            self.ctx.report(
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
                self.ctx,
                metadata,
                f"{kind}.metadata",
                ("name", "namespace", "labels", "annotations"),
            )
        )
        name = None if meta is None else self.string(meta, "name")
        if meta is not None and not meta.has("name"):
            meta.missing("name")
        if metadata is None:
            self.ctx.report(f"{kind}.metadata", node, "required key 'metadata' is missing")
        if name is None:
            return
        path = f"{kind}/{name}"
        known = _SECRET_KEYS if kind == "Secret" else _TOP_KEYS
        section = cp.Section(self.ctx, node, path, known)
        version = self.string(section, "apiVersion")
        group = _GROUPS[kind]
        if version is not None and not (version == group or version.startswith(group)):
            self.ctx.report(
                section.child("apiVersion"),
                section.values["apiVersion"],
                f"{kind} is in {group.rstrip('/')}, not {version!r}",
            )
        if kind in _LEFT_OUT:
            self.notes.append(("", f"{path} left out: {_LEFT_OUT[kind]}."))
            return
        if kind != "Secret" and not section.has("spec"):
            section.missing("spec")
            return
        if self.named(kind, name) is not None:
            self.ctx.report(path, node, f"a second {kind} named {name!r}")
            return
        self.by_kind.setdefault(kind, []).append(Resource(kind, name, node, section))

    # --- the whole config ------------------------------------------------------

    def translate(self) -> cp.MappingNode | None:
        gateways = self.by_kind.get("Gateway", [])
        routes = self.by_kind.get("MCPRoute", [])
        anchor = next(iter(routes or gateways), None)
        for kind, found in (("Gateway", gateways), ("MCPRoute", routes)):
            if len(found) > 1:
                self.ctx.report(
                    found[1].path,
                    found[1].node,
                    f"one {kind} only: aigw serves one MCP endpoint (the first is {found[0].path})",
                )
            elif not found and kind not in self.seen:
                where = anchor.node if anchor is not None else None
                self.ctx.report(kind, where, f"the file has no {kind}")
        if not gateways or not routes:
            return None
        listen, port = self.gateway(gateways[0])
        route = routes[0]
        return self.route(route, listen, port)

    def gateway(self, gateway: Resource) -> tuple[list[cp.Node], int | None]:
        spec = self.open(
            gateway.section,
            "spec",
            ("gatewayClassName", "listeners", "infrastructure", "addresses"),
        )
        if spec is None:
            return [], None
        self.refuse(spec, "addresses", "aigw listens where `listen` says; remove it")
        if spec.has("infrastructure"):
            self.notes.append(
                ("", f"{spec.child('infrastructure')} left out (Envoy's proxy settings).")
            )
        listen: list[cp.Node] = []
        first: int | None = None
        for path, item in self.items(spec, "listeners"):
            listener = cp.open_section(
                self.ctx,
                item,
                path,
                ("name", "protocol", "port", "hostname", "tls", "allowedRoutes"),
            )
            if listener is None:
                continue
            self.refuse(listener, "hostname", "aigw does not route by host name; remove it")
            self.refuse(listener, "tls", "aigw terminates no TLS here: put a TLS proxy in front")
            self.refuse(
                listener, "allowedRoutes", "aigw serves the one MCPRoute of the file; remove it"
            )
            protocol = listener.read("protocol", cp.as_str, "HTTP")
            if protocol != "HTTP":
                self.ctx.report(
                    listener.child("protocol"),
                    listener.values["protocol"],
                    f"protocol {protocol!r}: aigw listens for plain HTTP only (HTTP)",
                )
            port = listener.need("port", cp.integer(1), 0)
            if port:
                native = f"listen[{len(listen)}]"
                self.paths[native] = listener.child("port")
                listen.append(
                    _text(f"tcp:{port}:interface={LISTEN_INTERFACE}", listener.values["port"])
                )
                first = first or port
        if not spec.has("listeners"):
            spec.missing("listeners")
        if listen:
            self.notes.append(
                (
                    "listen",
                    f"Envoy listens on every interface; aigw on {LISTEN_INTERFACE} only. To "
                    "serve other machines, listen on tcp:PORT and set public_url to the URL "
                    "they use.",
                )
            )
        return listen, first

    def route(
        self, route: Resource, listen: list[cp.Node], port: int | None
    ) -> cp.MappingNode | None:
        spec = self.open(
            route.section,
            "spec",
            (
                "parentRefs",
                "path",
                "headers",
                "hostnames",
                "backendRefs",
                "securityPolicy",
                "backendSelector",
            ),
        )
        if spec is None:
            return None
        self.refuse(spec, "headers", "aigw does not match requests on headers; remove it")
        self.refuse(spec, "hostnames", "aigw does not route by host name; remove it")
        self.refuse(
            spec,
            "backendSelector",
            "CEL expressions are not supported by aigw (access rules decide which backends "
            "a user may use)",
        )
        pairs: list[tuple[str, cp.Node]] = [("listen", _sequence(listen, route.node))]
        mcp_path_node = spec.values.get("path")
        mcp_path = (
            "/mcp"
            if mcp_path_node is None
            else cp.as_nonempty_str(self.ctx, spec.child("path"), mcp_path_node)
        )
        if mcp_path_node is not None:
            self.paths["mcp_path"] = spec.child("path")
        policy = self.open(
            spec, "securityPolicy", ("oauth", "authorization", "apiKeyAuth", "extAuth")
        )
        oauth = None
        if policy is not None:
            self.refuse(policy, "extAuth", "external authorization is not supported by aigw")
            self.refuse(
                policy,
                "apiKeyAuth",
                "client API keys are not supported by aigw (clients authenticate with OAuth)",
            )
            oauth = self.open(
                policy,
                "oauth",
                ("issuer", "audiences", "jwks", "protectedResourceMetadata", "claimToHeaders"),
            )
        auth, public_url, claims = self.oauth(oauth, route, mcp_path or "/mcp", port)
        if public_url is not None:
            pairs.append(("public_url", public_url))
        pairs.append(("mcp_path", mcp_path_node or _text("/mcp", route.node)))
        pairs.append(("auth", auth))
        backends = self.backends(spec, claims)
        pairs.append(("backends", _sequence(backends, spec.values.get("backendRefs", route.node))))
        names = self.ref_names
        if policy is not None and policy.has("authorization"):
            access = self.authorization(policy, names, oauth is not None)
            if access is not None:
                pairs.append(("access", access))
        return _mapping(pairs, route.node)

    # --- oauth ------------------------------------------------------------------

    def oauth(
        self, oauth: cp.Section | None, route: Resource, mcp_path: str, port: int | None
    ) -> tuple[cp.Node, cp.Node | None, cp.Node | None]:
        """``auth``, ``public_url`` and the claims every backend gets as headers."""
        local = None if port is None else f"http://{LISTEN_INTERFACE}:{port}"
        public_url: cp.Node | None = None if local is None else _text(local, route.node)
        if oauth is None:
            self.notes.append(
                (
                    "auth",
                    "no securityPolicy.oauth: auth: none, as Envoy serves the route without "
                    "tokens; anyone who reaches the listener uses every backend.",
                )
            )
            return _text("none", route.node), public_url, None
        self.paths["auth"] = oauth.path
        pairs: list[tuple[str, cp.Node]] = []
        if oauth.has("issuer"):
            pairs.append(("issuer", oauth.values["issuer"]))
            self.paths["auth.issuer"] = oauth.child("issuer")
        else:
            oauth.missing("issuer")
        if oauth.has("audiences"):
            pairs.append(("audiences", oauth.values["audiences"]))
            self.paths["auth.audiences"] = oauth.child("audiences")
        else:
            self.notes.append(
                (
                    "auth",
                    "no oauth.audiences: Envoy would accept a token of any audience; aigw "
                    "requires the resource URL (public_url + mcp_path) as audience, as the "
                    "MCP specification does.",
                )
            )
        jwks = self.open(oauth, "jwks", ("remoteJWKS", "localJWKS"))
        if jwks is not None:
            self.refuse(
                jwks,
                "localJWKS",
                "aigw fetches the keys from a URL: give remoteJWKS.uri, or leave jwks out to "
                "discover it from the issuer",
            )
            remote = self.open(
                jwks, "remoteJWKS", ("uri", "cacheDuration", "backendRefs", "backendSettings")
            )
            if remote is not None:
                self.refuse(remote, "backendRefs", "aigw fetches the JWKS URI directly")
                self.refuse(remote, "backendSettings", "aigw fetches the JWKS URI directly")
                if remote.has("uri"):
                    pairs.append(("jwks_uri", remote.values["uri"]))
                    self.paths["auth.jwks_uri"] = remote.child("uri")
                else:
                    remote.missing("uri")
                if remote.has("cacheDuration"):
                    pairs.append(("jwks_refresh_interval", remote.values["cacheDuration"]))
                    self.paths["auth.jwks_refresh_interval"] = remote.child("cacheDuration")
        metadata = self.open(
            oauth,
            "protectedResourceMetadata",
            (
                "resource",
                "resourceName",
                "scopesSupported",
                "resourceSigningAlgValuesSupported",
                "resourceDocumentation",
                "resourcePolicyUri",
            ),
        )
        if metadata is None and not oauth.has("protectedResourceMetadata"):
            oauth.missing("protectedResourceMetadata")
        if metadata is not None:
            self.refuse(
                metadata,
                "resourcePolicyUri",
                "aigw's resource metadata has no policy URI; remove it",
            )
            for envoy_key, native in (
                ("resourceName", "resource_name"),
                ("scopesSupported", "scopes_supported"),
                ("resourceSigningAlgValuesSupported", "algorithms"),
                ("resourceDocumentation", "resource_documentation"),
            ):
                if metadata.has(envoy_key):
                    pairs.append((native, metadata.values[envoy_key]))
                    self.paths[f"auth.{native}"] = metadata.child(envoy_key)
            resource = self.string(metadata, "resource")
            if resource is not None:
                public_url = self.public_url(metadata, resource, mcp_path) or public_url
            elif not metadata.has("resource"):
                metadata.missing("resource")
        claims = self.claims(oauth)
        return _mapping(pairs, oauth.node), public_url, claims

    def public_url(self, metadata: cp.Section, resource: str, mcp_path: str) -> cp.Node | None:
        node = metadata.values["resource"]
        path = metadata.child("resource")
        if not resource.endswith(mcp_path) or len(resource) == len(mcp_path):
            self.ctx.report(
                path,
                node,
                f"the resource must be the URL clients reach the route at, ending with its "
                f"path {mcp_path!r}: aigw serves the MCP resource at public_url + mcp_path",
            )
            return None
        self.paths["public_url"] = path
        return _text(resource[: -len(mcp_path)], node)

    def claims(self, oauth: cp.Section) -> cp.Node | None:
        listed = self.items(oauth, "claimToHeaders")
        if not listed:
            return None
        pairs: list[tuple[str, cp.Node]] = []
        for path, item in listed:
            entry = cp.open_section(self.ctx, item, path, ("claim", "header"))
            if entry is None:
                continue
            claim = entry.need("claim", cp.as_nonempty_str, "")
            if entry.has("header") and claim:
                pairs.append((claim, entry.values["header"]))
            elif not entry.has("header"):
                entry.missing("header")
        self.notes.append(
            (
                "backends",
                "oauth.claimToHeaders is the route's: every backend gets the claims as "
                "headers (auth.claims_to_headers).",
            )
        )
        self.claims_path = oauth.child("claimToHeaders")
        return _mapping(pairs, oauth.values["claimToHeaders"])

    # --- backends ---------------------------------------------------------------

    def backends(self, spec: cp.Section, claims: cp.Node | None) -> list[cp.Node]:
        self.backend_names = []
        found: list[cp.Node] = []
        if not spec.has("backendRefs"):
            spec.missing("backendRefs")
        for path, item in self.items(spec, "backendRefs"):
            ref = cp.open_section(
                self.ctx,
                item,
                path,
                (
                    "name",
                    "kind",
                    "group",
                    "namespace",
                    "port",
                    "path",
                    "toolSelector",
                    "securityPolicy",
                    "forwardHeaders",
                ),
            )
            if ref is None:
                continue
            native = f"backends[{len(found)}]"
            given = ref.values.get("name")
            if isinstance(given, cp.ScalarNode):
                self.ref_names.add(given.value)
            mark = len(self.notes)
            backend = self.backend(ref, native, claims)
            if backend is not None:
                self.paths[native] = path
                found.append(backend)
                self.notes.insert(mark, (native, self.origin))
        return found

    def backend(self, ref: cp.Section, native: str, claims: cp.Node | None) -> cp.Node | None:
        self.refuse(
            ref,
            "forwardHeaders",
            "aigw never forwards a client's headers upstream (a user's credential must not "
            "reach a backend: MCP Authorization forbids token passthrough); give the backend "
            "its own credential with securityPolicy.apiKey",
        )
        kind = self.string(ref, "kind") or "Service"
        if kind != "Backend":
            where = ref.values.get("kind", ref.node)
            self.ctx.report(
                ref.child("kind"),
                where,
                f"kind {kind!r}: aigw reaches MCP servers named by a Backend resource "
                "(kind: Backend, group: gateway.envoyproxy.io)",
            )
            return None
        self.refuse(ref, "port", "a Backend's port is in its endpoints; remove it")
        name = ref.need("name", cp.as_nonempty_str, "")
        if not name:
            return None
        self.backend_names.append(name)
        pairs: list[tuple[str, cp.Node]] = [("name", ref.values["name"])]
        self.paths[f"{native}.name"] = ref.child("name")
        url = self.url(ref, name)
        if url is None:
            return None
        pairs.append(("url", url))
        selector = self.open(
            ref, "toolSelector", ("include", "includeRegex", "exclude", "excludeRegex")
        )
        if selector is not None:
            tools = []
            for envoy_key, native_key in (
                ("include", "include"),
                ("includeRegex", "include_regex"),
                ("exclude", "exclude"),
                ("excludeRegex", "exclude_regex"),
            ):
                if selector.has(envoy_key):
                    given = selector.values[envoy_key]
                    if envoy_key.endswith("Regex"):
                        given = self.regexes(selector.child(envoy_key), given)
                    tools.append((native_key, given))
                    self.paths[f"{native}.tools.{native_key}"] = selector.child(envoy_key)
            pairs.append(("tools", _mapping(tools, selector.node)))
        security = self.open(ref, "securityPolicy", ("apiKey",))
        key = (
            None
            if security is None
            else self.open(security, "apiKey", ("secretRef", "inline", "header", "queryParam"))
        )
        if key is not None:
            header = self.api_key(key)
            if header is not None:
                pairs.append(("headers", header))
                self.paths[f"{native}.headers"] = key.path
        if claims is not None:
            pairs.append(("auth", _mapping([("claims_to_headers", claims)], claims)))
            self.paths[f"{native}.auth.claims_to_headers"] = self.claims_path
        return _mapping(pairs, ref.node)

    def url(self, ref: cp.Section, name: str) -> cp.Node | None:
        resource = self.named("Backend", name)
        if resource is None:
            self.ctx.report(
                ref.child("name"), ref.values["name"], f"no Backend named {name!r} in the file"
            )
            return None
        spec = self.open(resource.section, "spec", ("endpoints",))
        if spec is None:
            return None
        listed = self.items(spec, "endpoints")
        if not spec.has("endpoints"):
            spec.missing("endpoints")
        if len(listed) > 1:
            self.ctx.report(
                listed[1][0],
                listed[1][1],
                "one endpoint only: aigw sends a backend's requests to one URL",
            )
        if len(listed) != 1:
            return None
        path, item = listed[0]
        endpoint = cp.open_section(self.ctx, item, path, ("fqdn", "ip", "unix"))
        if endpoint is None:
            return None
        self.refuse(endpoint, "unix", "aigw reaches backends over TCP only")
        chosen = next((k for k in ("fqdn", "ip") if endpoint.has(k)), None)
        if chosen is None:
            if not endpoint.has("unix"):
                self.ctx.report(path, item, "give fqdn (hostname, port) or ip (address, port)")
            return None
        host_key = "hostname" if chosen == "fqdn" else "address"
        where = self.open(endpoint, chosen, (host_key, "port"))
        if where is None:
            return None
        host = where.need(host_key, cp.as_nonempty_str, "")
        port = where.need("port", cp.integer(1), 0)
        if not host or not port:
            return None
        tls = self.tls(resource, host)
        scheme = "https" if tls else "http"
        self.origin = f"{ref.path}: {resource.path}" + (
            ", HTTPS (a BackendTLSPolicy targets it; the system's trust store)" if tls else ""
        )
        shown = f"[{host}]" if ":" in host else host
        default_port = 443 if tls else 80
        authority = shown if port == default_port else f"{shown}:{port}"
        backend_path = self.string(ref, "path") or "/mcp"
        if not backend_path.startswith("/"):
            self.ctx.report(
                ref.child("path"), ref.values["path"], f"must start with '/', got {backend_path!r}"
            )
            return None
        return _text(f"{scheme}://{authority}{backend_path}", ref.values.get("path", where.node))

    def tls_policies(self) -> dict[str, cp.Section | None]:
        """Backend name -> the ``validation`` of the BackendTLSPolicy that targets it."""
        if self._tls is not None:
            return self._tls
        self._tls = {}
        for policy in self.by_kind.get("BackendTLSPolicy", []):
            spec = self.open(policy.section, "spec", ("targetRefs", "validation", "options"))
            if spec is None:
                continue
            self.refuse(spec, "options", "aigw's TLS settings are its own; remove it")
            validation = self.open(
                spec,
                "validation",
                ("wellKnownCACertificates", "caCertificateRefs", "hostname", "subjectAltNames"),
            )
            if validation is not None:
                self.refuse(
                    validation,
                    "caCertificateRefs",
                    "aigw reads a backend's CA bundle from a file: write it to one and set "
                    "the backend's ca_file in the native config (aigw convert)",
                )
                self.refuse(
                    validation,
                    "subjectAltNames",
                    "aigw checks the certificate against the backend's host name only",
                )
                known = validation.read("wellKnownCACertificates", cp.as_str, "System")
                if known != "System":
                    self.ctx.report(
                        validation.child("wellKnownCACertificates"),
                        validation.values["wellKnownCACertificates"],
                        f"{known!r}: aigw knows the System trust store only",
                    )
            for path, item in self.items(spec, "targetRefs"):
                known_keys = ("group", "kind", "name", "sectionName")
                target = cp.open_section(self.ctx, item, path, known_keys)
                if target is None:
                    continue
                self.refuse(target, "sectionName", "aigw has no sections of a Backend")
                if target.read("kind", cp.as_str, "") == "Backend":
                    self._tls[target.read("name", cp.as_str, "")] = validation
        return self._tls

    def tls(self, backend: Resource, host: str) -> bool:
        """Whether a BackendTLSPolicy targets ``backend`` (then HTTPS, checked as it says)."""
        policies = self.tls_policies()
        if backend.name not in policies:
            return False
        validation = policies[backend.name]
        checked = host if validation is None else validation.read("hostname", cp.as_str, host)
        if validation is not None and checked != host:
            self.ctx.report(
                validation.child("hostname"),
                validation.values["hostname"],
                f"aigw checks the certificate against the backend's host {host!r}, not {checked!r}",
            )
        return True

    def regexes(self, path: str, node: cp.Node) -> cp.Node:
        """Envoy's tool regexes match anywhere in the name; aigw's the whole name."""
        listed = cp.items(self.ctx, path, node)
        if listed is None:
            return node
        made: list[cp.Node] = []
        changed = False
        for item_path, item in listed:
            pattern = cp.as_str(self.ctx, item_path, item)
            if pattern is not None:
                made.append(_text(_anywhere(pattern), item))
                changed = changed or _anywhere(pattern) != pattern
        if changed:
            self.notes.append(
                (
                    f"backends[{len(self.backend_names) - 1}]",
                    "toolSelector regexes match anywhere in a tool name (Envoy); aigw's "
                    "match the whole name, so each is wrapped in .*(?:...).* where not anchored.",
                )
            )
        return _sequence(made, node)

    def api_key(self, key: cp.Section) -> cp.Node | None:
        """The static header that carries the API key."""
        self.refuse(
            key,
            "queryParam",
            "aigw sends credentials in headers only (a key in the URL ends up in logs): use header",
        )
        if key.has("queryParam"):
            return None
        header_node = key.values.get("header")
        header = self.string(key, "header") or "Authorization"
        value = self.key_value(key)
        if value is None:
            return None
        if header.lower() == "authorization":
            value = (
                _text("Bearer " + value.value, value)
                if value.style == "'"
                else cp.ScalarNode(
                    cp.STR,
                    "Bearer " + value.value,
                    value.start_mark,
                    value.end_mark,
                    style=value.style,
                )
            )
        name = header_node if header_node is not None else _text(header, key.node)
        return cp.MappingNode(
            cp.TAG + "map", [(name, value)], key.node.start_mark, key.node.end_mark
        )

    def key_value(self, key: cp.Section) -> cp.ScalarNode | None:
        if key.has("inline") == key.has("secretRef"):
            self.ctx.report(key.path, key.node, "give exactly one of secretRef and inline")
            return None
        if key.has("inline"):
            node = key.values["inline"]
            if not isinstance(node, cp.ScalarNode) or node.tag != cp.STR:
                cp.expected(self.ctx, key.child("inline"), node, "a string")
                return None
            return node
        ref = self.open(key, "secretRef", ("name", "namespace", "kind", "group"))
        if ref is None:
            return None
        name = ref.need("name", cp.as_nonempty_str, "")
        secret = self.named("Secret", name) if name else None
        if name and secret is None:
            self.ctx.report(
                ref.child("name"), ref.values["name"], f"no Secret named {name!r} in the file"
            )
        return None if secret is None else self.secret_value(secret, "apiKey")

    def secret_value(self, secret: Resource, item: str) -> cp.ScalarNode | None:
        """The Secret's ``item``: an environment variable its annotation names, else
        ``stringData``, else ``data`` (base64)."""
        section = secret.section
        meta = cp.value_node(secret.node, "metadata")
        annotations = (
            cp.value_node(meta, "annotations") if isinstance(meta, cp.MappingNode) else None
        )
        if isinstance(annotations, cp.MappingNode):
            for key_node, value in annotations.value:
                if key_node.value == _FILE_ANNOTATION + item:
                    self.ctx.report(
                        f"{secret.path}.metadata.annotations.{key_node.value}",
                        value,
                        "file substitution is not supported by aigw: use "
                        f"{_ENV_ANNOTATION}{item} (an environment variable), or write the "
                        "native config with headers_file",
                    )
                    return None
                if key_node.value == _ENV_ANNOTATION + item:
                    variable = cp.as_nonempty_str(
                        self.ctx, f"{secret.path}.metadata.annotations", value
                    )
                    if variable is None:
                        return None
                    self.notes.append(
                        (
                            "backends",
                            f"{secret.path}: {item} is ${{{variable}}}, read from aigw's "
                            "environment at start (unset, aigw refuses to start; Envoy's CLI "
                            "would send the Secret's placeholder).",
                        )
                    )
                    return _text(f"${{{variable}}}", value)
        for where in ("stringData", "data"):
            node = section.values.get(where)
            if node is None:
                continue
            found = cp.value_node(node, item) if isinstance(node, cp.MappingNode) else None
            if found is None or found is node:
                continue
            if not isinstance(found, cp.ScalarNode) or found.tag != cp.STR:
                cp.expected(self.ctx, f"{secret.path}.{where}.{item}", found, "a string")
                return None
            if where == "stringData":
                return found
            try:
                decoded = base64.b64decode(found.value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                self.ctx.report(f"{secret.path}.data.{item}", found, "not base64 of UTF-8 text")
                return None
            return _text(_literal(decoded), found)
        self.ctx.report(
            secret.path, secret.node, f"the Secret has no {item!r} in stringData or data"
        )
        return None

    # --- authorization ----------------------------------------------------------

    def authorization(self, policy: cp.Section, names: set[str], oauth: bool) -> cp.Node | None:
        section = self.open(policy, "authorization", ("defaultAction", "rules"))
        if section is None:
            return None
        self.paths["access"] = section.path
        default = section.read("defaultAction", _action, "Deny")
        rules: list[cp.Node] = []
        for path, item in self.items(section, "rules"):
            first = len(rules)
            rules.extend(self.rule(path, item, names, oauth))
            for index in range(first, len(rules)):
                self.paths[f"access.rules[{index}]"] = path
        at = section.values.get("defaultAction", section.node)
        self.notes.append(
            (
                "access",
                "authorization: Envoy's rules govern tools only; aigw's access.default also "
                "decides prompts and resources, and a rule without target matches them too. A "
                "denied call answers as an unknown tool (Envoy: 403). A rule with several "
                "claim values or backends is one aigw rule for each; a claim matches a string "
                "equal to the value or a list holding it, whatever its valueType.",
            )
        )
        pairs = [("default", _text(default.lower(), at)), ("rules", _sequence(rules, section.node))]
        return _mapping(pairs, section.node)

    def rule(self, path: str, node: cp.Node, names: set[str], oauth: bool) -> list[cp.Node]:
        rule = cp.open_section(self.ctx, node, path, ("source", "target", "cel", "action"))
        if rule is None:
            return []
        self.refuse(rule, "cel", "CEL expressions are not supported by aigw")
        effect = rule.read("action", _action, "Allow").lower()
        conditions: list[tuple[str, cp.Node]] = []
        claim_values: list[list[tuple[str, cp.Node]]] = []
        source = self.open(rule, "source", ("jwt",))
        jwt = None if source is None else self.open(source, "jwt", ("scopes", "claims"))
        if jwt is not None and not oauth:
            self.ctx.report(jwt.path, jwt.node, "a jwt source needs securityPolicy.oauth")
        if jwt is not None:
            if jwt.has("scopes"):
                conditions.append(("scopes", jwt.values["scopes"]))
            for claim_path, claim_node in self.items(jwt, "claims"):
                values = self.claim(claim_path, claim_node)
                if values is not None:
                    claim_values.append(values)
        targets: list[tuple[cp.Node, list[cp.Node]]] = []
        target = self.open(rule, "target", ("tools",))
        if target is not None:
            groups: dict[str, tuple[cp.Node, list[cp.Node]]] = {}
            for tool_path, tool_node in self.items(target, "tools"):
                call = cp.open_section(self.ctx, tool_node, tool_path, ("backend", "tool"))
                if call is None:
                    continue
                backend = call.need("backend", cp.as_nonempty_str, "")
                tool = call.need("tool", cp.as_nonempty_str, "")
                if backend and backend not in names:
                    self.ctx.report(
                        call.child("backend"),
                        call.values["backend"],
                        f"{backend!r} is not one of the route's backendRefs",
                    )
                elif backend and tool:
                    escaped = _text(_glob_escape(tool), call.values["tool"])
                    groups.setdefault(backend, (call.values["backend"], []))[1].append(escaped)
            targets = list(groups.values())
        combos = list(itertools.product(*claim_values)) if claim_values else [()]
        count = len(combos) * max(1, len(targets))
        if count > MAX_RULES:
            self.ctx.report(
                path,
                node,
                f"becomes {count} aigw rules (each claim value times each backend), more "
                f"than {MAX_RULES}: split it",
            )
            return []
        made: list[cp.Node] = []
        for combo in combos:
            chosen: list[tuple[cp.Node, list[cp.Node]] | None] = [*targets] or [None]
            for backend_and_tools in chosen:
                pairs: list[tuple[str, cp.Node]] = [("effect", _text(effect, node)), *conditions]
                if combo:
                    pairs.append(("claims", _mapping(combo, node)))
                if backend_and_tools is not None:
                    backend_node, tools = backend_and_tools
                    pairs.append(("backends", _sequence([backend_node], backend_node)))
                    pairs.append(("tools", _sequence(tools, backend_node)))
                made.append(_mapping(pairs, node))
        return made

    def claim(self, path: str, node: cp.Node) -> list[tuple[str, cp.Node]] | None:
        claim = cp.open_section(self.ctx, node, path, ("name", "valueType", "values"))
        if claim is None:
            return None
        name = claim.need("name", cp.as_nonempty_str, "")
        claim.read("valueType", cp.choice("String", "StringArray"), "String")
        values = self.items(claim, "values")
        if not claim.has("values"):
            claim.missing("values")
        if not name:
            return None
        if "." in name:
            self.ctx.report(
                claim.child("name"),
                claim.values["name"],
                f"{name!r} is a nested claim: aigw's access rules match top-level claims only",
            )
            return None
        if name in ("scope", "scp"):
            self.ctx.report(
                claim.child("name"), claim.values["name"], f"{name!r} is for scopes: use scopes"
            )
            return None
        found = []
        for value_path, value in values:
            if cp.as_nonempty_str(self.ctx, value_path, value) is not None:
                found.append((name, value))
        return found or None


def _action(ctx: cp.Context, path: str, node: cp.Node) -> str | None:
    return cp.choice("Allow", "Deny")(ctx, path, node)


def _anywhere(pattern: str) -> str:
    """A full-match pattern that matches where ``pattern`` matches anywhere (RE2's
    MatchString); an anchored end (``^``, ``$``, no top-level ``|``) needs no ``.*``."""
    alternatives = _top_level_bar(pattern)
    head = "" if pattern.startswith("^") and not alternatives else ".*"
    tail = (
        "" if pattern.endswith("$") and not pattern.endswith("\\$") and not alternatives else ".*"
    )
    if not head and not tail:
        return pattern
    return f"{head}(?:{pattern}){tail}"


def _top_level_bar(pattern: str) -> bool:
    """Whether ``pattern`` has a ``|`` outside groups and classes (anchors bind one side)."""
    depth, escaped, in_class = 0, False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
    return False


def _glob_escape(name: str) -> str:
    """A tool name as an fnmatch pattern that matches it alone."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def translate(ctx: cp.Context, text: str) -> Translation | None:
    """The native config the Envoy-format ``text`` stands for; None when a problem was found
    (each reported in ``ctx`` with its Envoy key path and line)."""
    translator = _Translator(ctx)
    documents = _documents(ctx, text)
    translator.read(documents)
    root = translator.translate()
    if root is None or ctx.problems:
        return None
    return Translation(root, translator.paths, tuple(translator.notes))


# --- aigw convert ----------------------------------------------------------------


def _comment(text: str, indent: str = "") -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text, 88 - len(indent))]


def render(source: str, translation: Translation) -> str:
    """The native config as YAML text, with a comment where a choice was made."""
    lines = [
        f"# Converted from {source} (Envoy AI Gateway) by `aigw convert`.",
        "# Check it with `aigw check FILE`; etc/aigw/aigw.yaml explains every key.",
    ]
    notes = translation.notes
    for _, note in (n for n in notes if n[0] == ""):
        lines.extend(_comment(note))
    for key_node, value in translation.root.value:
        key = key_node.value
        for _, note in (n for n in notes if n[0] == key):
            lines.extend(_comment(note))
        if key != "backends":
            dumped = yaml.safe_dump({key: plain(value)}, sort_keys=False, allow_unicode=True)
            lines.append(dumped.rstrip("\n"))
            continue
        lines.append("backends:")
        for index, item in enumerate(value.value):
            for _, note in (n for n in notes if n[0] == f"backends[{index}]"):
                lines.extend(_comment(note, "  "))
            entry = yaml.safe_dump([plain(item)], sort_keys=False, allow_unicode=True)
            lines.extend(f"  {line}" for line in entry.rstrip("\n").split("\n"))
    return "\n".join(lines) + "\n"


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
    try:
        text = cp.read_bounded(path).decode("utf-8")
    except OSError as error:
        raise ConfigError(
            path, [Problem("(file)", None, f"cannot read: {error.strerror}")]
        ) from None
    except (cp.FileTooLarge, UnicodeDecodeError) as error:
        raise ConfigError(path, [Problem("(file)", None, f"cannot read: {error}")]) from None
    base_dir = os.path.dirname(os.path.abspath(path))
    return convert(text, path, base_dir, os.environ if env is None else env)
