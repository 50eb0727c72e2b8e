"""The two do-nothing relays ``bench/floor.py`` measures aigw against.

    python bench/floor_relays.py bytes PORT UPSTREAM_URL
    python bench/floor_relays.py http PORT UPSTREAM_URL

``bytes``: Twisted's own byte relay (``twisted.protocols.portforward``): one TCP
connection to the upstream per client connection, bytes copied both ways, no
HTTP at all.  The least a Python hop on Twisted's reactor can add.

``http``: the least an HTTP gateway on Twisted can add: ``twisted.web``'s server
(the HTTP server under aigw's Klein tree) reads each request, and its body goes to
the upstream on a kept-alive connection (the head written in one piece, the answer
read with httptools, as aigw's upstream client does); the answer's status, its
``Content-Type`` and ``Mcp-Session-Id`` and its body go back.  No token, no JSON,
no session, no routing: what is left is the two HTTP legs and the reactor.

Prints ``LISTENING <port>`` once it accepts connections.  Not a product and not
hardened: a benchmark's floor, on loopback.
"""

from __future__ import annotations

import sys
from collections import deque
from urllib.parse import urlsplit

import httptools
from twisted.internet import endpoints, reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols import portforward
from twisted.web import resource, server

#: The request headers passed on, as an MCP client sends them.
PASSED = (b"content-type", b"accept", b"mcp-session-id", b"mcp-protocol-version")
#: An upstream answer: status, header fields (names in lower case), body.
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]


class UpstreamConnection(Protocol):
    """One kept-alive HTTP/1.1 connection to the upstream, one request at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.waiting: Deferred[Reply] | None = None

    def connectionMade(self) -> None:
        self.pool.idle.append(self)

    def send(self, head: bytes, body: bytes) -> Deferred[Reply]:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)
        self.waiting = Deferred()
        self.transport.write(head + body)  # type: ignore[union-attr]
        return self.waiting

    def dataReceived(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        waiting, self.waiting = self.waiting, None
        self.pool.idle.append(self)
        assert waiting is not None
        waiting.callback((self.status, self.headers, b"".join(self.chunks)))

    def connectionLost(self, reason: object = None) -> None:
        if self in self.pool.idle:
            self.pool.idle.remove(self)
        if self.waiting is not None:
            self.waiting.errback(Exception("upstream connection lost"))


class Pool:
    """Idle connections to the upstream; a new one when none is idle."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path
        self.idle: deque[UpstreamConnection] = deque()
        self.endpoint = endpoints.TCP4ClientEndpoint(reactor, self.host, self.port)

    async def request(self, head: bytes, body: bytes) -> Reply:
        if not self.idle:
            await endpoints.connectProtocol(self.endpoint, UpstreamConnection(self))
        return await self.idle.pop().send(head, body)


class Relay(resource.Resource):
    """Every POST relayed to the upstream, as it is."""

    isLeaf = True

    def __init__(self, pool: Pool) -> None:
        super().__init__()
        self.pool = pool

    def render_POST(self, request: server.Request) -> int:
        body = request.content.read()  # type: ignore[union-attr]
        pool = self.pool
        lines = [
            b"POST %s HTTP/1.1" % pool.path.encode(),
            b"Host: %s:%d" % (pool.host.encode(), pool.port),
        ]
        for name in PASSED:
            value = request.getHeader(name)
            if value is not None:
                lines.append(name + b": " + value)
        lines.append(b"Content-Length: %d" % len(body))
        head = b"\r\n".join(lines) + b"\r\n\r\n"

        def answer(reply: Reply) -> None:
            status, headers, payload = reply
            request.setResponseCode(status)
            for name, value in headers:
                if name in (b"content-type", b"mcp-session-id"):
                    request.setHeader(name, value)
            request.setHeader(b"content-length", b"%d" % len(payload))
            request.write(payload)
            request.finish()

        def failed(_failure: object) -> None:
            request.setResponseCode(502)
            request.finish()

        Deferred.fromCoroutine(self.pool.request(head, body)).addCallbacks(answer, failed)
        return server.NOT_DONE_YET


def main(kind: str, port: int, upstream: str) -> None:
    parts = urlsplit(upstream)
    factory: Factory
    if kind == "bytes":
        factory = portforward.ProxyFactory(parts.hostname, parts.port)
    elif kind == "http":
        factory = server.Site(Relay(Pool(upstream)))
        factory.displayTracebacks = False
    else:
        raise SystemExit(f"unknown relay {kind!r}: bytes or http")
    listening = endpoints.TCP4ServerEndpoint(reactor, port, interface="127.0.0.1").listen(factory)
    listening.addCallback(lambda port: print(f"LISTENING {port.getHost().port}", flush=True))
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
