"""The Klein routes: health, readiness, metadata documents (RFC 9728, RFC 8414 relay)."""

from __future__ import annotations

import json
from typing import Any

import attrs
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.authenticator import Authenticator
from aigw.config import AuthConfig, BackendConfig, Config
from aigw.readiness import Readiness
from aigw.web.app import GatewayApp

RESOURCE = "http://127.0.0.1:1975/mcp"


def make_config(**auth: Any) -> Config:
    return Config(
        listen=("tcp:1975:interface=127.0.0.1",),
        public_url="http://127.0.0.1:1975",
        mcp_path="/mcp",
        auth=AuthConfig(issuer="http://as.example", audiences=(RESOURCE,), **auth),
        backends=(BackendConfig(name="b", url="http://127.0.0.1:9/mcp"),),
    )


class Relay:
    def __init__(self, documents: dict[str, bytes]) -> None:
        self.documents = documents

    def document(self, kind: str) -> bytes | None:
        return self.documents.get(kind)


def client(
    config: Config, readiness: Readiness | None = None, relay: Relay | None = None
) -> StubTreq:
    app = GatewayApp(config, readiness or Readiness(), Authenticator(None), None, relay)
    return StubTreq(app.resource())


class MetadataTests(SynchronousTestCase):
    def get(self, stub: StubTreq, path: str, method: str = "GET") -> tuple[Any, bytes]:
        response = self.successResultOf(stub.request(method, "http://127.0.0.1:1975" + path))
        return response, self.successResultOf(stub.content(response))

    def test_path_inserted_and_root_metadata_are_served(self) -> None:
        """RFC 9728 §3.1: the well-known URI with the resource's path inserted, and the root one."""
        stub = client(make_config(scopes_supported=("mcp:tools",), resource_name="Demo"))
        for path in (
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource",
        ):
            response, body = self.get(stub, path)
            self.assertEqual(response.code, 200)
            document = json.loads(body)
            self.assertEqual(document["resource"], RESOURCE)
            self.assertEqual(document["authorization_servers"], ["http://as.example"])
            self.assertEqual(document["bearer_methods_supported"], ["header"])
            self.assertEqual(document["scopes_supported"], ["mcp:tools"])
            self.assertEqual(document["resource_name"], "Demo")

    def test_a_reload_updates_the_scopes_derived_from_the_backends(self) -> None:
        """Without ``scopes_supported``, the document lists the scopes requests need,
        the backends' among them: a reload that changes those changes the document."""
        config = make_config(required_scopes=("mcp",))
        app = GatewayApp(config, Readiness(), Authenticator(None), None, None)
        stub = StubTreq(app.resource())
        scoped = attrs.evolve(config.backends[0], required_scopes=("files:read",))
        app.follow(config, attrs.evolve(config, backends=(scoped,)))
        _, body = self.get(stub, "/.well-known/oauth-protected-resource/mcp")
        self.assertEqual(json.loads(body)["scopes_supported"], ["mcp", "files:read"])

    def test_metadata_is_cacheable_and_readable_by_browsers(self) -> None:
        stub = client(make_config())
        response, _ = self.get(stub, "/.well-known/oauth-protected-resource/mcp")
        headers = response.headers
        self.assertEqual(headers.getRawHeaders(b"access-control-allow-origin"), [b"*"])
        self.assertIn(
            b"mcp-protocol-version", headers.getRawHeaders(b"access-control-allow-headers")[0]
        )
        self.assertIn(b"max-age", headers.getRawHeaders(b"cache-control")[0])
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])

    def test_cors_preflight_is_answered(self) -> None:
        stub = client(make_config())
        response, _ = self.get(stub, "/.well-known/oauth-protected-resource/mcp", "OPTIONS")
        self.assertEqual(response.code, 204)
        self.assertEqual(response.headers.getRawHeaders(b"access-control-allow-origin"), [b"*"])

    def test_authorization_server_metadata_is_relayed_for_older_clients(self) -> None:
        """2025-03-26 clients look for RFC 8414 metadata at the MCP server itself."""
        document = b'{"issuer":"http://as.example"}'
        stub = client(
            make_config(),
            relay=Relay({"oauth-authorization-server": document, "openid-configuration": document}),
        )
        for path in (
            "/.well-known/oauth-authorization-server",
            "/.well-known/oauth-authorization-server/mcp",
            "/.well-known/openid-configuration",
        ):
            response, body = self.get(stub, path)
            self.assertEqual(response.code, 200, path)
            self.assertEqual(body, document)

    def test_relay_not_fetched_yet_is_503_json(self) -> None:
        stub = client(make_config(), relay=Relay({}))
        response, body = self.get(stub, "/.well-known/oauth-authorization-server")
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(body)["error"], "temporarily_unavailable")

    def test_relay_switched_off_is_404(self) -> None:
        stub = client(make_config())
        response, body = self.get(stub, "/.well-known/oauth-authorization-server")
        self.assertEqual(response.code, 404)
        self.assertEqual(json.loads(body)["error"], "not_found")


class HealthTests(SynchronousTestCase):
    def test_readyz_names_what_is_not_ready(self) -> None:
        readiness = Readiness()
        readiness.add("config", lambda: None)
        readiness.add("signing_keys", lambda: "signing keys not loaded")
        stub = client(make_config(), readiness)
        response = self.successResultOf(stub.get("http://127.0.0.1:1975/readyz"))
        body = json.loads(self.successResultOf(stub.content(response)))
        self.assertEqual(response.code, 503)
        self.assertEqual(
            body,
            {"ready": False, "checks": {"config": "ok", "signing_keys": "signing keys not loaded"}},
        )

    def test_healthz_answers_while_alive(self) -> None:
        stub = client(make_config())
        response = self.successResultOf(stub.get("http://127.0.0.1:1975/healthz"))
        self.assertEqual(response.code, 200)


class FakeMCP:
    """An MCP handler that answers, fails, or waits, as the test says."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.calls = 0

    async def handle(self, request: Any, principal: Any) -> bytes | None:
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        request.setHeader(b"Content-Type", b"application/json")
        return self.outcome  # type: ignore[no-any-return]


class MCPRouteTests(SynchronousTestCase):
    """``mcp_path`` is served by GatewayRoot ahead of Klein's routing, with Klein's
    contract: the body written, the request finished, errors as JSON 500."""

    def stub(self, mcp: FakeMCP) -> StubTreq:
        config = attrs.evolve(make_config(), auth=None)
        app = GatewayApp(config, Readiness(), Authenticator(None), mcp, None)
        return StubTreq(app.resource())

    def test_handler_reply_is_written(self) -> None:
        mcp = FakeMCP(b'{"ok":true}')
        stub = self.stub(mcp)
        for path in ("/mcp", "/%6Dcp"):  # the second spelling goes through Klein
            response = self.successResultOf(stub.post("http://127.0.0.1:1975" + path))
            self.assertEqual(response.code, 200)
            self.assertEqual(self.successResultOf(stub.content(response)), b'{"ok":true}')
        response = self.successResultOf(stub.post("http://127.0.0.1:1975/mcp"))
        self.assertEqual(response.length, 11)  # Content-Length, not chunked
        self.assertEqual(mcp.calls, 3)

    def test_handler_error_is_json_500(self) -> None:
        stub = self.stub(FakeMCP(RuntimeError("boom")))
        response = self.successResultOf(stub.post("http://127.0.0.1:1975/mcp"))
        self.assertEqual(response.code, 500)
        body = json.loads(self.successResultOf(stub.content(response)))
        self.assertEqual(body["error"], "server_error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_other_methods_are_405_and_other_paths_404(self) -> None:
        stub = self.stub(FakeMCP(b"{}"))
        response = self.successResultOf(stub.put("http://127.0.0.1:1975/mcp"))
        self.assertEqual(response.code, 405)
        response = self.successResultOf(stub.post("http://127.0.0.1:1975/mcp/x"))
        self.assertEqual(response.code, 404)
