"""The ``Gateway``'s listeners: where aigw listens."""

from __future__ import annotations

from aigw.config import nodes as cp
from aigw.config.envoy.documents import Resource, Translator, scalar

LISTEN_INTERFACE = "127.0.0.1"


def gateway(t: Translator, gateway: Resource) -> tuple[list[cp.Node], int | None]:
    spec = t.open(
        gateway.section,
        "spec",
        ("gatewayClassName", "listeners", "infrastructure", "addresses"),
    )
    if spec is None:
        return [], None
    t.refuse(spec, "addresses", "aigw listens where `listen` says; remove it")
    if spec.has("infrastructure"):
        t.notes.append(("", f"{spec.child('infrastructure')} left out (Envoy's proxy settings)."))
    listen: list[cp.Node] = []
    first: int | None = None
    for path, item in t.items(spec, "listeners"):
        listener = cp.open_section(
            t.ctx,
            item,
            path,
            ("name", "protocol", "port", "hostname", "tls", "allowedRoutes"),
        )
        if listener is None:
            continue
        t.refuse(listener, "hostname", "aigw does not route by host name; remove it")
        t.refuse(listener, "tls", "aigw terminates no TLS here: put a TLS proxy in front")
        t.refuse(listener, "allowedRoutes", "aigw serves the one MCPRoute of the file; remove it")
        protocol = listener.read("protocol", cp.as_str, "HTTP")
        if protocol != "HTTP":
            t.ctx.report(
                listener.child("protocol"),
                listener.values["protocol"],
                f"protocol {protocol!r}: aigw listens for plain HTTP only (HTTP)",
            )
        port = listener.need("port", cp.integer(1), 0)
        if port:
            native = f"listen[{len(listen)}]"
            t.paths[native] = listener.child("port")
            listen.append(
                scalar(f"tcp:{port}:interface={LISTEN_INTERFACE}", listener.values["port"])
            )
            first = first or port
    if not spec.has("listeners"):
        spec.missing("listeners")
    if listen:
        t.notes.append(
            (
                "listen",
                f"Envoy listens on every interface; aigw on {LISTEN_INTERFACE} only. To "
                "serve other machines, listen on tcp:PORT and set public_url to the URL "
                "they use.",
            )
        )
    return listen, first
