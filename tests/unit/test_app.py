"""The Klein routes: health, readiness, metadata documents (RFC 9728, RFC 8414 relay)."""

from __future__ import annotations

import json
from typing import Any

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
