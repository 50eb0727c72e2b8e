"""The route's ``backendRefs``: each ``Backend`` (with its ``BackendTLSPolicy``), its
``toolSelector`` and its API key (inline or from a ``Secret``)."""

from __future__ import annotations

import base64
import binascii

from aigw.config import nodes as cp
from aigw.config.envoy.documents import Resource, Translator, literal, mapping, scalar, sequence

_ENV_ANNOTATION = "substitution.aigw.run/env/"
_FILE_ANNOTATION = "substitution.aigw.run/file/"


def backends(t: Translator, spec: cp.Section, claims: cp.Node | None) -> list[cp.Node]:
    t.backend_names = []
    found: list[cp.Node] = []
    if not spec.has("backendRefs"):
        spec.missing("backendRefs")
    for path, item in t.items(spec, "backendRefs"):
        ref = cp.open_section(
            t.ctx,
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
            t.ref_names.add(given.value)
        mark = len(t.notes)
        backend = _backend(t, ref, native, claims)
        if backend is not None:
            t.paths[native] = path
            found.append(backend)
            t.notes.insert(mark, (native, t.origin))
    return found


def _backend(t: Translator, ref: cp.Section, native: str, claims: cp.Node | None) -> cp.Node | None:
    t.refuse(
        ref,
        "forwardHeaders",
        "aigw never forwards a client's headers upstream (a user's credential must not "
        "reach a backend: MCP Authorization forbids token passthrough); give the backend "
        "its own credential with securityPolicy.apiKey",
    )
    kind = t.string(ref, "kind") or "Service"
    if kind != "Backend":
        where = ref.values.get("kind", ref.node)
        t.ctx.report(
            ref.child("kind"),
            where,
            f"kind {kind!r}: aigw reaches MCP servers named by a Backend resource "
            "(kind: Backend, group: gateway.envoyproxy.io)",
        )
        return None
    t.refuse(ref, "port", "a Backend's port is in its endpoints; remove it")
    name = ref.need("name", cp.as_nonempty_str, "")
    if not name:
        return None
    t.backend_names.append(name)
    pairs: list[tuple[str, cp.Node]] = []
    t.carry(ref, "name", f"{native}.name", pairs)
    url = _url(t, ref, name)
    if url is None:
        return None
    pairs.append(("url", url))
    selector = t.open(ref, "toolSelector", ("include", "includeRegex", "exclude", "excludeRegex"))
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
                    given = _regexes(t, selector.child(envoy_key), given)
                tools.append((native_key, given))
                t.paths[f"{native}.tools.{native_key}"] = selector.child(envoy_key)
        pairs.append(("tools", mapping(tools, selector.node)))
    security = t.open(ref, "securityPolicy", ("apiKey",))
    key = (
        None
        if security is None
        else t.open(security, "apiKey", ("secretRef", "inline", "header", "queryParam"))
    )
    if key is not None:
        header = _api_key(t, key)
        if header is not None:
            pairs.append(("headers", header))
            t.paths[f"{native}.headers"] = key.path
    if claims is not None:
        pairs.append(("auth", mapping([("claims_to_headers", claims)], claims)))
        t.paths[f"{native}.auth.claims_to_headers"] = t.claims_path
    return mapping(pairs, ref.node)


def _url(t: Translator, ref: cp.Section, name: str) -> cp.Node | None:
    resource = t.named("Backend", name)
    if resource is None:
        t.ctx.report(
            ref.child("name"), ref.values["name"], f"no Backend named {name!r} in the file"
        )
        return None
    spec = t.open(resource.section, "spec", ("endpoints",))
    if spec is None:
        return None
    listed = t.items(spec, "endpoints")
    if not spec.has("endpoints"):
        spec.missing("endpoints")
    if len(listed) > 1:
        t.ctx.report(
            listed[1][0],
            listed[1][1],
            "one endpoint only: aigw sends a backend's requests to one URL",
        )
    if len(listed) != 1:
        return None
    path, item = listed[0]
    endpoint = cp.open_section(t.ctx, item, path, ("fqdn", "ip", "unix"))
    if endpoint is None:
        return None
    t.refuse(endpoint, "unix", "aigw reaches backends over TCP only")
    chosen = next((k for k in ("fqdn", "ip") if endpoint.has(k)), None)
    if chosen is None:
        if not endpoint.has("unix"):
            t.ctx.report(path, item, "give fqdn (hostname, port) or ip (address, port)")
        return None
    host_key = "hostname" if chosen == "fqdn" else "address"
    where = t.open(endpoint, chosen, (host_key, "port"))
    if where is None:
        return None
    host = where.need(host_key, cp.as_nonempty_str, "")
    port = where.need("port", cp.integer(1), 0)
    if not host or not port:
        return None
    tls = _tls(t, resource, host)
    scheme = "https" if tls else "http"
    t.origin = f"{ref.path}: {resource.path}" + (
        ", HTTPS (a BackendTLSPolicy targets it; the system's trust store)" if tls else ""
    )
    shown = f"[{host}]" if ":" in host else host
    default_port = 443 if tls else 80
    authority = shown if port == default_port else f"{shown}:{port}"
    backend_path = t.string(ref, "path") or "/mcp"
    if not backend_path.startswith("/"):
        t.ctx.report(
            ref.child("path"), ref.values["path"], f"must start with '/', got {backend_path!r}"
        )
        return None
    return scalar(f"{scheme}://{authority}{backend_path}", ref.values.get("path", where.node))


def _tls_policies(t: Translator) -> dict[str, cp.Section | None]:
    """Backend name -> the ``validation`` of the BackendTLSPolicy that targets it."""
    if t.tls is not None:
        return t.tls
    t.tls = {}
    for policy in t.by_kind.get("BackendTLSPolicy", []):
        spec = t.open(policy.section, "spec", ("targetRefs", "validation", "options"))
        if spec is None:
            continue
        t.refuse(spec, "options", "aigw's TLS settings are its own; remove it")
        validation = t.open(
            spec,
            "validation",
            ("wellKnownCACertificates", "caCertificateRefs", "hostname", "subjectAltNames"),
        )
        if validation is not None:
            t.refuse(
                validation,
                "caCertificateRefs",
                "aigw reads a backend's CA bundle from a file: write it to one and set "
                "the backend's ca_file in the native config (aigw convert)",
            )
            t.refuse(
                validation,
                "subjectAltNames",
                "aigw checks the certificate against the backend's host name only",
            )
            known = validation.read("wellKnownCACertificates", cp.as_str, "System")
            if known != "System":
                t.ctx.report(
                    validation.child("wellKnownCACertificates"),
                    validation.values["wellKnownCACertificates"],
                    f"{known!r}: aigw knows the System trust store only",
                )
        for path, item in t.items(spec, "targetRefs"):
            known_keys = ("group", "kind", "name", "sectionName")
            target = cp.open_section(t.ctx, item, path, known_keys)
            if target is None:
                continue
            t.refuse(target, "sectionName", "aigw has no sections of a Backend")
            if target.read("kind", cp.as_str, "") == "Backend":
                t.tls[target.read("name", cp.as_str, "")] = validation
    return t.tls


def _tls(t: Translator, backend: Resource, host: str) -> bool:
    """Whether a BackendTLSPolicy targets ``backend`` (then HTTPS, checked as it says)."""
    policies = _tls_policies(
        t,
    )
    if backend.name not in policies:
        return False
    validation = policies[backend.name]
    checked = host if validation is None else validation.read("hostname", cp.as_str, host)
    if validation is not None and checked != host:
        t.ctx.report(
            validation.child("hostname"),
            validation.values["hostname"],
            f"aigw checks the certificate against the backend's host {host!r}, not {checked!r}",
        )
    return True


def _regexes(t: Translator, path: str, node: cp.Node) -> cp.Node:
    """Envoy's tool regexes match anywhere in the name; aigw's the whole name."""
    listed = cp.items(t.ctx, path, node)
    if listed is None:
        return node
    made: list[cp.Node] = []
    changed = False
    for item_path, item in listed:
        pattern = cp.as_str(t.ctx, item_path, item)
        if pattern is not None:
            made.append(scalar(_anywhere(pattern), item))
            changed = changed or _anywhere(pattern) != pattern
    if changed:
        t.notes.append(
            (
                f"backends[{len(t.backend_names) - 1}]",
                "toolSelector regexes match anywhere in a tool name (Envoy); aigw's "
                "match the whole name, so each is wrapped in .*(?:...).* where not anchored.",
            )
        )
    return sequence(made, node)


def _api_key(t: Translator, key: cp.Section) -> cp.Node | None:
    """The static header that carries the API key."""
    t.refuse(
        key,
        "queryParam",
        "aigw sends credentials in headers only (a key in the URL ends up in logs): use header",
    )
    if key.has("queryParam"):
        return None
    header_node = key.values.get("header")
    header = t.string(key, "header") or "Authorization"
    value = _key_value(t, key)
    if value is None:
        return None
    if header.lower() == "authorization":
        value = (
            scalar("Bearer " + value.value, value)
            if value.style == "'"
            else cp.ScalarNode(
                cp.STR,
                "Bearer " + value.value,
                value.start_mark,
                value.end_mark,
                style=value.style,
            )
        )
    name = header_node if header_node is not None else scalar(header, key.node)
    return cp.MappingNode(cp.TAG + "map", [(name, value)], key.node.start_mark, key.node.end_mark)


def _key_value(t: Translator, key: cp.Section) -> cp.ScalarNode | None:
    if key.has("inline") == key.has("secretRef"):
        t.ctx.report(key.path, key.node, "give exactly one of secretRef and inline")
        return None
    if key.has("inline"):
        node = key.values["inline"]
        if not isinstance(node, cp.ScalarNode) or node.tag != cp.STR:
            cp.expected(t.ctx, key.child("inline"), node, "a string")
            return None
        return node
    ref = t.open(key, "secretRef", ("name", "namespace", "kind", "group"))
    if ref is None:
        return None
    name = ref.need("name", cp.as_nonempty_str, "")
    secret = t.named("Secret", name) if name else None
    if name and secret is None:
        t.ctx.report(ref.child("name"), ref.values["name"], f"no Secret named {name!r} in the file")
    return None if secret is None else _secret_value(t, secret, "apiKey")


def _secret_value(t: Translator, secret: Resource, item: str) -> cp.ScalarNode | None:
    """The Secret's ``item``: an environment variable its annotation names, else
    ``stringData``, else ``data`` (base64)."""
    section = secret.section
    meta = cp.value_node(secret.node, "metadata")
    annotations = cp.value_node(meta, "annotations") if isinstance(meta, cp.MappingNode) else None
    if isinstance(annotations, cp.MappingNode):
        for key_node, value in annotations.value:
            if key_node.value == _FILE_ANNOTATION + item:
                t.ctx.report(
                    f"{secret.path}.metadata.annotations.{key_node.value}",
                    value,
                    "file substitution is not supported by aigw: use "
                    f"{_ENV_ANNOTATION}{item} (an environment variable), or write the "
                    "native config with headers_file",
                )
                return None
            if key_node.value == _ENV_ANNOTATION + item:
                variable = cp.as_nonempty_str(t.ctx, f"{secret.path}.metadata.annotations", value)
                if variable is None:
                    return None
                t.notes.append(
                    (
                        "backends",
                        f"{secret.path}: {item} is ${{{variable}}}, read from aigw's "
                        "environment at start (unset, aigw refuses to start; Envoy's CLI "
                        "would send the Secret's placeholder).",
                    )
                )
                return scalar(f"${{{variable}}}", value)
    for where in ("stringData", "data"):
        node = section.values.get(where)
        if node is None:
            continue
        found = cp.value_node(node, item) if isinstance(node, cp.MappingNode) else None
        if found is None or found is node:
            continue
        if not isinstance(found, cp.ScalarNode) or found.tag != cp.STR:
            cp.expected(t.ctx, f"{secret.path}.{where}.{item}", found, "a string")
            return None
        if where == "stringData":
            return found
        try:
            decoded = base64.b64decode(found.value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            t.ctx.report(f"{secret.path}.data.{item}", found, "not base64 of UTF-8 text")
            return None
        return scalar(literal(decoded), found)
    t.ctx.report(secret.path, secret.node, f"the Secret has no {item!r} in stringData or data")
    return None


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
