"""A ``user_oauth`` backend through the gateway: the URL elicitation, then the user's token.

MCP 2025-11-25 client/elicitation "URL Elicitation Required Error": a call to the
backend by a user without a token there answers -32042 with a URL of aigw's start
endpoint; once the token is stored, the retried call goes through with it; a 401 from
the backend forgets it and asks again.
"""

from __future__ import annotations

from typing import Any

from aigw.config import BackendAuthConfig, BackendConfig, Config, UserOAuthConfig
from aigw.principal import ANONYMOUS
from aigw.protocol import jsonrpc
from aigw.store.api import UserToken
from tests.fakes import MemoryStore
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import (
    PUBLIC_URL,
    GatewayTestCase,
    initialize_message,
    modern,
    routing,
)
from tests.unit.memory import run

#: Under ``auth: None`` every request is ANONYMOUS's: the key of its tokens.
KEY = (ANONYMOUS.issuer, ANONYMOUS.subject, "crm")
URL_CAPABLE = {"elicitation": {"url": {}}}


class UserOAuthGatewayTests(GatewayTestCase):
    async def start(self) -> None:
        self.crm = FakeUpstream(tools=["whoami"])
        self.alpha = FakeUpstream(tools=["echo"])
        self.memory = self.store = MemoryStore()
        user_oauth = BackendAuthConfig(user_oauth=UserOAuthConfig())
        backends = (
            BackendConfig(name="alpha", url=self.start_upstream(self.alpha), timeout=5.0),
            BackendConfig(
                name="crm", url=self.start_upstream(self.crm), timeout=5.0, auth=user_oauth
            ),
        )
        config = Config(
            listen=("tcp:1975:interface=127.0.0.1",),
            public_url=PUBLIC_URL,
            mcp_path="/mcp",
            backends=backends,
            auth=None,
        )
        self.serve(config)

    async def session(self, capabilities: dict[str, Any]) -> str:
        message = initialize_message()
        message["params"]["capabilities"] = capabilities
        response, body = await self.post(message)
        self.assertEqual(response.code, 200, body)
        session: str = response.headers.getRawHeaders(b"mcp-session-id")[0].decode()
        return session

    async def whoami(self, session: str) -> Any:
        return await self.call(session, "tools/call", {"name": "crm__whoami", "arguments": {}})

    @run
    async def test_elicitation_then_the_users_token(self) -> None:
        await self.start()
        session = await self.session(URL_CAPABLE)
        self.assertEqual(self.crm.received, [])  # no token: nothing sent to the backend
        listed = await self.call(session, "tools/list")
        self.assertEqual([t["name"] for t in listed["result"]["tools"]], ["alpha__echo"])
        error = (await self.whoami(session))["error"]
        self.assertEqual(error["code"], jsonrpc.URL_ELICITATION_REQUIRED)
        (elicitation,) = error["data"]["elicitations"]
        self.assertEqual(elicitation["mode"], "url")
        self.assertTrue(elicitation["url"].startswith(PUBLIC_URL + "/oauth/upstream/start?link="))
        self.assertTrue(elicitation["elicitationId"])
        self.memory.tokens[KEY] = UserToken(*KEY, access_token="crm-token")
        answer = await self.whoami(session)
        self.assertEqual(answer["result"]["content"][0]["type"], "text")
        headers, _ = self.crm.received[-1]
        self.assertEqual(headers["authorization"], ["Bearer crm-token"])
        for headers, _ in self.alpha.received:
            self.assertNotIn("authorization", headers)

    @run
    async def test_once_authorized_the_next_list_has_the_backends_tools(self) -> None:
        """No join window for a user who had not authorized: finding out is a store
        lookup (nothing is sent upstream), and the user may authorize at any moment."""
        await self.start()
        session = await self.session(URL_CAPABLE)
        listed = await self.call(session, "tools/list")
        self.assertEqual([t["name"] for t in listed["result"]["tools"]], ["alpha__echo"])
        self.memory.tokens[KEY] = UserToken(*KEY, access_token="crm-token")
        listed = await self.call(session, "tools/list")
        self.assertEqual(
            [t["name"] for t in listed["result"]["tools"]], ["alpha__echo", "crm__whoami"]
        )
        self.assertTrue(self.crm.received)
        for headers, _ in self.crm.received:
            self.assertEqual(headers["authorization"], ["Bearer crm-token"])

    @run
    async def test_a_backend_401_forgets_the_token_and_elicits_again(self) -> None:
        await self.start()
        self.memory.tokens[KEY] = UserToken(*KEY, access_token="crm-token")
        session = await self.session(URL_CAPABLE)
        self.assertIn("result", await self.whoami(session))
        self.crm.fail_with = 401
        error = (await self.whoami(session))["error"]
        self.assertEqual(error["code"], jsonrpc.URL_ELICITATION_REQUIRED)
        self.assertEqual(self.memory.tokens, {})

    @run
    async def test_a_client_without_url_elicitation_gets_the_url_in_the_message(self) -> None:
        await self.start()
        session = await self.session({"elicitation": {}})  # form mode only
        error = (await self.whoami(session))["error"]
        self.assertEqual(error["code"], jsonrpc.UPSTREAM_CREDENTIALS)
        self.assertIn(PUBLIC_URL + "/oauth/upstream/start?link=", error["message"])
        self.assertNotIn("elicitations", error["data"])

    @run
    async def test_a_2026_07_28_client_declares_url_elicitation_per_request(self) -> None:
        await self.start()
        declared = {"io.modelcontextprotocol/clientCapabilities": URL_CAPABLE}
        for meta, code in ((declared, jsonrpc.URL_ELICITATION_REQUIRED), ({}, None)):
            params = {"name": "crm__whoami", "arguments": {}, "_meta": meta}
            response, body = await self.post(
                modern("tools/call", params), headers=routing("tools/call", "crm__whoami")
            )
            self.assertEqual(response.code, 200, body)
            expected = code if code is not None else jsonrpc.UPSTREAM_CREDENTIALS
            self.assertEqual(body["error"]["code"], expected, body)
        self.memory.tokens[KEY] = UserToken(*KEY, access_token="crm-token")
        params = {"name": "crm__whoami", "arguments": {}, "_meta": declared}
        _, body = await self.post(
            modern("tools/call", params), headers=routing("tools/call", "crm__whoami")
        )
        self.assertIn("result", body)
        headers, _ = self.crm.received[-1]
        self.assertEqual(headers["authorization"], ["Bearer crm-token"])
