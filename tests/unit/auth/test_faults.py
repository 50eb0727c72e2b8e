"""The authorization server down (issue 16 item 5), on the memory network.

Down at start, nothing can be verified: ``/readyz`` says 503, and an MCP request
is answered 503 with ``Retry-After`` (RFC 9110 §15.6.4: the condition is
temporary), never a 401 that would make the client throw its token away, nor a
500.  Down later, the keys already loaded keep serving.  The real processes'
version of the same is in tests/e2e/test_faults.py.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.server import Site

from aigw.config import BackendConfig
from tests.unit.auth.helpers import (
    RESOURCE,
    RSA_KEY,
    RSA_KEY_2,
    FakeAuthorizationServer,
    auth_config,
    good_token,
    jwks,
    mint,
    public_jwk,
    token_claims,
)
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import PUBLIC_URL, GatewayTestCase, initialize_message
from tests.unit.memory import run

KEYS = jwks(public_jwk(RSA_KEY, "rsa-1", alg="RS256"))


class AuthorizationServerDown(GatewayTestCase):
    async def start(self, jwks_answer: tuple[Any, int] | None) -> None:
        """The gateway, its issuer's JWK Set answered by ``jwks_answer`` (body, status),
        or at a port nobody listens on (None)."""
        self.authz = FakeAuthorizationServer()
        if jwks_answer is None:
            jwks_uri = "http://127.0.0.1:9/jwks"
        else:
            self.authz.serve("/jwks", jwks_answer[0], status=jwks_answer[1])
            port = self.network.serve(Site(self.authz, reactor=self.reactor))
            jwks_uri = f"http://127.0.0.1:{port}/jwks"
        self.upstream = FakeUpstream(tools=["echo"])
        config = auth_config(
            audiences=(RESOURCE,),
            jwks_uri=jwks_uri,
            relay_authorization_server_metadata=False,
            jwks_unknown_kid_cooldown=30.0,
        )
        backend = BackendConfig(name="files", url=self.start_upstream(self.upstream))
        await self.start_gateway_with(backend, auth=config)
        await self.network.settle()

    async def send(self, token: str) -> tuple[Any, Any]:
        response = await self.http.post(
            self.url,
            data=json.dumps(initialize_message()).encode(),
            headers={
                b"Content-Type": [b"application/json"],
                b"Accept": [b"application/json, text/event-stream"],
                b"Authorization": [b"Bearer " + token.encode()],
            },
        )
        return response, json.loads(await response.content())

    async def readyz(self) -> tuple[int, Any]:
        response = await self.http.get(PUBLIC_URL + "/readyz")
        return response.code, json.loads(await response.content())

    async def assertUnavailable(self) -> None:
        response, body = await self.send(good_token())
        self.assertEqual(response.code, 503, body)
        self.assertEqual(body["error"], "temporarily_unavailable")
        [retry_after] = response.headers.getRawHeaders(b"retry-after")
        self.assertGreater(int(retry_after), 0)
        self.assertEqual(self.upstream.received, [], "the MCP server saw the request")

    @run
    async def test_unreachable_at_start_is_503_with_retry_after(self) -> None:
        """The authorization server unreachable at start (connection refused): a valid token
        (RFC 9110 §15.6.4, RFC 6750 §3.1).

        expected: /readyz 503; the MCP request 503 temporarily_unavailable with Retry-After;
        no MCP server sees it
        """
        await self.start(None)
        code, ready = await self.readyz()
        self.assertEqual(code, 503, ready)
        self.assertFalse(ready["ready"])
        await self.assertUnavailable()

    @run
    async def test_failing_at_start_is_503_then_served_once_it_is_back(self) -> None:
        """The JWK Set answered 503 at start, then served again: a valid token.

        expected: 503 with Retry-After while it fails; /readyz and the request 200 once it is
        back (no restart)
        """
        await self.start((b"down", 503))
        await self.assertUnavailable()
        self.authz.serve("/jwks", KEYS)
        await self.network.sleep(60)
        code, ready = await self.readyz()
        self.assertEqual(code, 200, ready)
        response, body = await self.send(good_token())
        self.assertEqual(response.code, 200, body)

    @run
    async def test_down_later_keeps_the_cached_keys(self) -> None:
        """The authorization server goes down after the keys were loaded: a valid token.

        expected: 200: the keys loaded keep serving; /readyz stays 200
        """
        await self.start((KEYS, 200))
        self.authz.serve("/jwks", b"down", status=503)
        await self.network.sleep(500)
        self.assertGreater(self.authz.hits["/jwks"], 1, "the key set was refreshed")
        response, body = await self.send(good_token())
        self.assertEqual(response.code, 200, body)
        code, _ready = await self.readyz()
        self.assertEqual(code, 200)

    @run
    async def test_rotated_key_is_fetched_once(self) -> None:
        """The issuer rolls in a new key and signs with it.

        expected: 200: the unknown kid refetches the JWK Set once, then the token is verified
        """
        await self.start((KEYS, 200))
        both = jwks(public_jwk(RSA_KEY, "rsa-1", alg="RS256"), public_jwk(RSA_KEY_2, "rsa-2"))
        self.authz.serve("/jwks", both)
        before = self.authz.hits["/jwks"]
        response, body = await self.send(mint(token_claims(), key=RSA_KEY_2, kid="rsa-2"))
        self.assertEqual(response.code, 200, body)
        self.assertEqual(self.authz.hits["/jwks"], before + 1)
