"""A backend that does OAuth itself, and its authorization server, both built to hurt
their client, for tests/e2e/test_hostile_oauth.py (docs/security.md "aigw as an OAuth
client").

Hand-written (no real server sends these) and served by a real Twisted reactor, as
``hostile_streams.py`` is.  At ``/mcp`` the backend answers every POST 401 with
``WWW-Authenticate: Bearer resource_metadata=...`` naming a URL on another origin
(``http://localhost:PORT/elsewhere``: the same process under another name, so a request
there is counted), and records each ``Authorization`` it is sent.  Its metadata at the
well-known URL (RFC 9728 §3.1) names as its authorization server ``issuer`` (at first
the cloud metadata service, ``http://169.254.169.254/latest``), which ``POST /control``
(``{"issuer": ..., "token": "crlf" | "drip"}``) changes.  Itself as that server: RFC
8414 metadata, registration (RFC 7591), an authorization endpoint that sends the
browser straight back with a code, and a token endpoint that answers, by ``token``,
an ``access_token`` holding CR LF and a header of its own, or a body trickled a byte
a second, for ever.

``GET /stats``: ``{"elsewhere": N, "authorizations": [...], "tokens": N, "trickling": N}``
(requests at the other origin, the ``Authorization`` values the backend was sent,
token requests, token answers still trickling on an open connection).

    python -m tests.e2e.upstreams.hostile_oauth --port N
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from twisted.internet.task import LoopingCall
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from tests.e2e.upstreams import serve

#: RFC 6750 §2.1 forbids it: a token that would end the header and add one.
CRLF_TOKEN = "evil\r\nX-Injected: yes"


def _json(request: Request, value: Any, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode()


class HostileOAuth(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.issuer = "http://169.254.169.254/latest"
        self.token = "crlf"
        self.elsewhere = 0
        self.authorizations: list[str] = []
        self.tokens = 0
        self.trickling = 0

    def base(self, request: Request) -> str:
        return f"http://127.0.0.1:{request.getHost().port}"

    def render_GET(self, request: Request) -> Any:
        path = request.path.decode()
        base = self.base(request)
        if path == "/stats":
            return _json(
                request,
                {
                    "elsewhere": self.elsewhere,
                    "authorizations": self.authorizations,
                    "tokens": self.tokens,
                    "trickling": self.trickling,
                },
            )
        if path.startswith("/elsewhere"):
            self.elsewhere += 1
            return _json(request, {"resource": base + "/mcp", "authorization_servers": [base]})
        if path == "/.well-known/oauth-protected-resource/mcp":
            return _json(
                request, {"resource": base + "/mcp", "authorization_servers": [self.issuer]}
            )
        if path == "/.well-known/oauth-authorization-server":
            return _json(
                request,
                {
                    "issuer": base,
                    "authorization_endpoint": base + "/authorize",
                    "token_endpoint": base + "/token",
                    "registration_endpoint": base + "/register",
                    "code_challenge_methods_supported": ["S256"],
                },
            )
        if path == "/authorize":
            query = {k.decode(): v[0].decode() for k, v in request.args.items()}
            back = {"code": "the-code", "state": query["state"], "iss": base}
            request.setResponseCode(302)
            request.setHeader(b"location", f"{query['redirect_uri']}?{urlencode(back)}".encode())
            return b""
        request.setResponseCode(404)
        return b""

    def render_POST(self, request: Request) -> Any:
        path = request.path.decode()
        if path == "/mcp":
            sent = request.getHeader("authorization")
            if sent is not None:
                self.authorizations.append(sent)
            named = f"http://localhost:{request.getHost().port}/elsewhere"
            request.setHeader(b"www-authenticate", f'Bearer resource_metadata="{named}"'.encode())
            return _json(request, {"error": "invalid_token"}, 401)
        if path == "/control":
            settings = json.loads(request.content.read())
            self.issuer = settings.get("issuer", self.issuer)
            self.token = settings.get("token", self.token)
            return _json(request, {})
        if path == "/register":
            return _json(request, {"client_id": "hostile-client", "client_secret": "s"}, 201)
        if path == "/token":
            self.tokens += 1
            if self.token == "crlf":
                return _json(request, {"access_token": CRLF_TOKEN, "token_type": "Bearer"})
            return self.trickle(request)
        request.setResponseCode(404)
        return b""

    def trickle(self, request: Request) -> Any:
        """A 200 JSON answer, a byte a second, never ending."""
        request.setHeader(b"content-type", b"application/json")
        request.write(b'{"access_token": "')
        self.trickling += 1
        drip = LoopingCall(request.write, b"a")
        drip.start(1.0)

        def gone(_: object) -> None:
            self.trickling -= 1
            drip.stop()

        request.notifyFinish().addBoth(gone)
        return NOT_DONE_YET


if __name__ == "__main__":
    serve(HostileOAuth())
