"""Servers behind private CAs on the in-memory network (tests/unit/memory.py), for the
unit tests of which certificates each client of aigw trusts: real TLS, each server with
a certificate that is its own CA."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import ssl
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from tests.certificates import write_self_signed
from tests.unit.memory import MemoryNetwork


class Document(Resource):
    """Every GET answers ``document``; every POST ``posted(form)`` with ``status``, as JSON."""

    isLeaf = True

    def __init__(
        self,
        document: dict[str, Any],
        posted: Callable[[dict[bytes, list[bytes]]], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.document = document
        self.posted = posted
        self.status = 200
        #: The forms POSTed, in order.
        self.forms: list[dict[bytes, list[bytes]]] = []

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(self.document).encode()

    def render_POST(self, request: Request) -> bytes:
        assert self.posted is not None, "this document takes no POST"
        form = dict(request.args or {})
        self.forms.append(form)
        request.setResponseCode(self.status)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(self.posted(form)).encode()


@attrs.define
class CA:
    """A certificate that is its own CA: the file a ``ca_file`` names, and the server's
    certificate and key."""

    file: str
    certificate: ssl.PrivateCertificate


class PrivateCATestCase(SynchronousTestCase):
    """Two CAs, ``backend_ca`` and ``server_ca``, and HTTPS servers made with either."""

    def setUp(self) -> None:
        self.network = MemoryNetwork()
        self.reactor = self.network.reactor
        self.backend_ca = self.ca("backend")
        self.server_ca = self.ca("server")

    def ca(self, name: str) -> CA:
        directory = os.path.abspath(self.mktemp() + name)
        os.makedirs(directory)
        cert_file, key_file = write_self_signed(directory)
        with open(cert_file, "rb") as cert, open(key_file, "rb") as key:
            return CA(cert_file, ssl.PrivateCertificate.loadPEM(cert.read() + key.read()))

    def serve(self, resource: Resource, ca: CA) -> str:
        """``https://127.0.0.1:<port>``, served with a certificate ``ca`` made."""
        site = Site(resource, reactor=self.reactor)
        tls = TLSMemoryBIOFactory(ca.certificate.options(), False, site, clock=self.reactor)
        return f"https://127.0.0.1:{self.network.serve(tls)}"
