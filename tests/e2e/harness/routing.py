"""A client's GET streams sent to another aigw process than its POSTs, as a round-robin
balancer may do (docs/scale-out.md): an httpx2 transport for the SDK client."""

from __future__ import annotations

import httpx2


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
