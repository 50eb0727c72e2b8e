"""What the gateway tests share: a gateway in front of fake upstreams, on one
memory network (tests/unit/memory.py), and the MCP messages they send.

The gateway is the real ``GatewayService`` (its ``BoundedSite``, listener,
routing and upstream connection pools); only the sockets and the clock are
fakes, so every test is the same on every run and waits no wall time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import jwt
import treq
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IBodyProducer
from twisted.web.server import Site
from zope.interface import implementer

from aigw.config import AuthConfig, BackendConfig, Config, ToolSelector
from aigw.sealed.session_id import session_binding, session_digest
from aigw.service import GatewayService
from aigw.store.api import Store
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.memory import MemoryNetwork

ACCEPT = "application/json, text/event-stream"
MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
#: Where the gateway listens (in memory) and says it is.
PUBLIC_URL = "http://127.0.0.1:1975"
#: One session key for the processes of a deployment (``start_peer``).
SHARED_KEY = b"k" * 32
#: The key and issuer of ``token``'s access tokens (``hs256_auth``).
SECRET = b"s" * 32
ISSUER = "https://as.example"


def token(subject: str, now: float) -> str:
    """An access token for ``subject``, valid at ``now`` (the gateway's clock)."""
    payload = {
        "iss": ISSUER,
        "aud": PUBLIC_URL + "/mcp",
        "sub": subject,
        "client_id": "client-1",
        "scope": "mcp",
        "iat": int(now) - 10,
        "exp": int(now) + 3600,
    }
    return jwt.encode(payload, SECRET, "HS256", headers={"typ": "at+jwt"})


def hs256_auth() -> AuthConfig:
    """The gateway's ``auth`` that accepts ``token``'s access tokens."""
    return AuthConfig(
        issuer=ISSUER,
        audiences=(PUBLIC_URL + "/mcp",),
        algorithms=("HS256",),
        shared_secret=SECRET,
        relay_authorization_server_metadata=False,
    )


def initialize_message(
    version: str = "2025-11-25", request_id: int = 1, capabilities: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A client's ``initialize`` request (basic/lifecycle), declaring ``capabilities``."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": capabilities or {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }


def modern(method: str, params: dict[str, Any] | None = None, rid: Any = 1) -> dict[str, Any]:
    """A 2026-07-28 request: the envelope in ``_meta``."""
    params = dict(params or {})
    params["_meta"] = {**ENVELOPE, **params.get("_meta", {})}
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def routing(method: str, name: str | None = None) -> dict[str, str]:
    """The 2026-07-28 routing headers of a request."""
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


def post_listen(
    http: Any, url: str, notifications: dict[str, Any], rid: Any, bearer: str | None = None
) -> Any:
    """POST subscriptions/listen (with ``bearer`` as the access token, if given); the
    response comes back before its body is read."""
    message = modern("subscriptions/listen", {"notifications": notifications}, rid)
    headers = {
        "Content-Type": ["application/json"],
        "Accept": [ACCEPT],
        "MCP-Protocol-Version": [MODERN],
        "Mcp-Method": ["subscriptions/listen"],
    }
    if bearer is not None:
        headers["Authorization"] = [f"Bearer {bearer}"]
    return http.post(url, data=json.dumps(message).encode(), headers=headers, unbuffered=True)


def sse_messages(body: bytes) -> list[Any]:
    """The JSON-RPC messages of an SSE body (an event with empty data carries none: a
    GET stream's priming event)."""
    return [
        json.loads(line[len(b"data: ") :])
        for line in body.splitlines()
        if line.startswith(b"data: ") and line != b"data: "
    ]


class Collect(Protocol):
    """Reads a streamed body into ``chunks``; its transport stops the stream."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: object = None) -> None:
        pass


@implementer(IBodyProducer)
class _WholeBody:
    """A request body written at once: treq's default producer cooperates on the
    global reactor, which nothing here runs."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class GatewayTestCase(SynchronousTestCase):
    """Fake upstreams and a gateway in front of them, with a treq client, all on
    ``self.network``; test methods are ``async`` and decorated with ``run``."""

    def setUp(self) -> None:
        self.network = MemoryNetwork()
        self.reactor = self.network.reactor
        #: The gateway's store (``state_dir``), when a test gives one.
        self.store: Store | None = None

    def start_upstream(self, upstream: FakeUpstream) -> str:
        """Serve ``upstream``; its MCP URL."""
        port = self.network.serve(Site(upstream, reactor=self.reactor))
        return f"http://127.0.0.1:{port}/mcp"

    async def start_gateway_with(self, *backends: BackendConfig, **overrides: Any) -> None:
        """A gateway in front of exactly these backends."""
        config = Config(
            listen=("tcp:1975:interface=127.0.0.1",),
            public_url=PUBLIC_URL,
            mcp_path="/mcp",
            backends=backends,
            **{"auth": None, **overrides},
        )
        self.serve(config)

    def serve(self, config: Config) -> None:
        """The gateway of ``config`` (and ``self.store``), started, and a client for it."""
        pool = HTTPConnectionPool(self.reactor, persistent=False)
        self.http = HTTPClient(Agent(self.reactor, pool=pool), data_to_body_producer=_WholeBody)
        self.config = config
        self.service = GatewayService(config, self.reactor, log_to_stderr=False, store=self.store)
        self.service.startService()
        self.addCleanup(lambda: self.network.run(self.service.stopService()))
        self.url = PUBLIC_URL + "/mcp"

    def start_peer(self, port: int) -> GatewayService:
        """A second aigw process of the same deployment (the same config and session key),
        listening on ``port`` and reachable there by its peers (``sessions.peer_url``)."""
        url = f"http://127.0.0.1:{port}/mcp"
        config = attrs.evolve(
            self.config,
            listen=(f"tcp:{port}:interface=127.0.0.1",),
            sessions=attrs.evolve(self.config.sessions, peer_url=url),
        )
        peer = GatewayService(config, self.reactor, log_to_stderr=False, store=self.store)
        peer.startService()
        self.addCleanup(lambda: self.network.run(peer.stopService()))
        return peer

    async def start_gateway(self, beta: FakeUpstream | None = None, **overrides: Any) -> None:
        self.alpha = FakeUpstream(
            tools=["echo", "progress", "link", "secret"], instructions="Alpha."
        )
        self.beta = beta or FakeUpstream(tools=[f"t{i}" for i in range(5)], page_size=2)
        backends = (
            BackendConfig(
                name="alpha",
                url=self.start_upstream(self.alpha),
                tools=ToolSelector(exclude=("secret",)),
                timeout=5.0,
            ),
            BackendConfig(name="beta", url=self.start_upstream(self.beta), timeout=5.0),
        )
        await self.start_gateway_with(*backends, **overrides)

    async def until(self, condition: Callable[[], object]) -> None:
        """Let everything in flight arrive; then ``condition`` must hold."""
        await self.network.settle()
        if not condition():
            self.fail("condition never held")

    async def post(
        self,
        body: Any,
        session: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[Any, Any]:
        """POST a message; the response and its body (parsed when JSON)."""
        all_headers = {"Content-Type": "application/json", "Accept": ACCEPT}
        if session:
            all_headers["Mcp-Session-Id"] = session
        all_headers.update(headers or {})
        data = raw if raw is not None else json.dumps(body).encode()
        response = await self.http.post(
            self.url, data=data, headers={k: [v] for k, v in all_headers.items()}
        )
        content = await treq.content(response)
        kind = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
        if kind.startswith(b"application/json") and content:
            return response, json.loads(content)
        return response, content

    async def stream_call(self, session: str, request_id: int, params: dict[str, Any]) -> Any:
        """POST a tools/call and return the response before its body is read."""
        return await self.http.post(
            self.url,
            data=json.dumps(
                {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
            ).encode(),
            headers={
                "Content-Type": ["application/json"],
                "Accept": [ACCEPT],
                "Mcp-Session-Id": [session],
                "MCP-Protocol-Version": ["2025-11-25"],
            },
            unbuffered=True,
        )

    async def open_stream(self, session: str, last_event_id: str | None = None) -> Any:
        """GET the session's SSE stream; the response comes back before its body is read."""
        headers = {
            "Accept": ["text/event-stream"],
            "Mcp-Session-Id": [session],
            "MCP-Protocol-Version": ["2025-11-25"],
        }
        if last_event_id is not None:
            headers["Last-Event-ID"] = [last_event_id]
        return await self.http.get(self.url, headers=headers, unbuffered=True)

    def merged_id(self, session: str, last_ids: dict[str, str]) -> str:
        """The merged event id aigw writes on ``session``'s GET stream when its backends'
        last event ids are ``last_ids`` (sealed for the session: ``sealed/event_id.py``)."""
        binding = session_binding(session_digest(session))
        return self.service.gateway.event_ids.encode(last_ids, binding)

    def last_ids(self, session: str, merged: str | None) -> dict[str, str]:
        """Each backend's last event id in a merged id written on ``session``'s stream."""
        binding = session_binding(session_digest(session))
        backends = {backend.name for backend in self.config.backends}
        return self.service.gateway.event_ids.decode(merged, binding, backends)

    async def initialize(
        self, version: str = "2025-11-25", capabilities: dict[str, Any] | None = None
    ) -> str:
        """A new session, its client declaring ``capabilities`` (none by default); its id."""
        response, body = await self.post(initialize_message(version, 0, capabilities))
        self.assertEqual(response.code, 200, body)
        session: str = response.headers.getRawHeaders(b"mcp-session-id")[0].decode()
        return session

    async def call(self, session: str, method: str, params: Any = None, rid: int = 1) -> Any:
        """A request in ``session`` that must get 200; the JSON-RPC answer."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        response, body = await self.post(message, session, {"MCP-Protocol-Version": "2025-11-25"})
        self.assertEqual(response.code, 200, body)
        return body

    async def tool_names(self, session: str) -> list[str]:
        """The names ``tools/list`` answers in ``session``."""
        body = await self.call(session, "tools/list", {})
        return [tool["name"] for tool in body["result"]["tools"]]

    async def call_tool(self, session: str, name: str) -> Any:
        """``tools/call`` of ``name`` without arguments; the JSON-RPC answer (200 or fail)."""
        return await self.call(session, "tools/call", {"name": name, "arguments": {}})


#: Tool lists in the shapes of known poisoning, with clean controls (screening tests).
POISONING_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "poisoning"


class HangUp(Protocol):
    """Reads the first bytes of a streamed reply, then drops the connection."""

    def __init__(self) -> None:
        self.got: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        if not self.got.called:
            self.got.callback(data)
            self.transport.stopProducing()  # type: ignore[union-attr]

    def connectionLost(self, reason: object = None) -> None:
        pass
