"""The part of a Twisted web request that aigw's handlers use, typed.

``twisted.web.iweb.IRequest`` declares its methods without annotations and
``twisted.web.server.Request`` leaves ``setHeader`` and ``write`` untyped;
handlers are annotated with this protocol instead, which every
``twisted.web.server.Request`` (and so every ``BoundedRequest``) satisfies.
"""

from __future__ import annotations

from typing import IO, Any, Protocol

from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers


class WebRequest(Protocol):
    """What the routes and the MCP transport read from and write to a request."""

    @property
    def method(self) -> bytes: ...

    @property
    def uri(self) -> bytes: ...

    @property
    def requestHeaders(self) -> Headers: ...

    @property
    def content(self) -> IO[bytes] | None: ...

    def setResponseCode(self, code: int, message: bytes | None = None) -> None: ...

    def setHeader(self, name: bytes, value: bytes) -> None: ...

    def write(self, data: bytes) -> None: ...

    def notifyFinish(self) -> Deferred[None]: ...

    @property
    def channel(self) -> Any:
        """The connection's ``HTTPChannel``; None once the client is gone."""

    def registerProducer(self, producer: Any, streaming: bool) -> None: ...

    def unregisterProducer(self) -> None: ...
