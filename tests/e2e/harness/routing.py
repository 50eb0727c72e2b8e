"""httpx2 transports for the SDK client: its GET streams sent to another aigw process
than its POSTs, as a round-robin balancer may do (docs/scale-out.md); the event ids its
GET streams carry, recorded as it reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2

from aigw.protocol.sse import SSEParser


class StreamsTo(httpx2.AsyncBaseTransport):
    """Sends each GET (the client's SSE stream) to ``port`` on loopback; the rest as
    addressed."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            request.url = request.url.copy_with(port=self._port)
            request.headers["host"] = f"{request.url.host}:{self._port}"
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class StreamIds(httpx2.AsyncBaseTransport):
    """Records in ``ids`` each event id the client's GET streams carry as the client
    reads them, that of an event with empty data (a priming event) too."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        if request.method == "GET":
            response.stream = _Recorded(response.stream, self.ids)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Recorded(httpx2.AsyncByteStream):
    def __init__(self, inner: object, ids: list[str]) -> None:
        assert isinstance(inner, httpx2.AsyncByteStream)
        self._inner = inner
        self._ids = ids
        self._parser = SSEParser()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._ids.extend(e.id for e in self._parser.feed(chunk) if e.id is not None)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
