"""Bounded, timed HTTP fetches of JSON documents, for every layer that needs one.

Everything aigw reads from an authorization server (keys, metadata, introspection,
token endpoints) goes through :func:`fetch`: the body is read incrementally and the
transfer aborted past a byte bound, and the whole exchange is cancelled after a
timeout measured on the injected clock.  Shared: imports no layer (``.importlinter``),
so the resource server (``auth``) and the upstream credentials (``upstream``) fetch
the same way.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
from treq.client import HTTPClient as TreqHTTPClient
from twisted.internet import protocol
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import connectionDone
from twisted.internet.task import Cooperator
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IBodyProducer

from aigw.tls import AgentEndpoints


class Timer(Protocol):
    """What ``callLater`` returns (``IDelayedCall``)."""

    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of ``IReactorTime`` aigw uses; the reactor and ``task.Clock`` fit.

    A structural type rather than the zope interface, so that mypy checks calls
    without the mypy-zope plugin.
    """

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Any, *args: Any, **kw: Any) -> Timer: ...


class HTTPClient(Protocol):
    """The part of treq's API aigw uses; ``treq`` itself and ``StubTreq`` fit."""

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]: ...

    def collect(self, response: Any, collector: Any) -> Deferred[None]: ...


class TreqClient:
    """treq over our own Agent and pool, with ``collect``: an ``HTTPClient``.  Its TLS is
    aigw's (``tls.AgentEndpoints``): loaded on the first ``https`` request, trusting the
    system's roots, or only the certificates in ``ca_file``."""

    def __init__(
        self,
        reactor: Any,
        pool: HTTPConnectionPool,
        connect_timeout: float,
        ca_file: str | None = None,
    ) -> None:
        endpoints = AgentEndpoints(reactor, connect_timeout, ca_file)
        agent: Any = Agent.usingEndpointFactory(reactor, endpoints, pool=pool)
        self._client = TreqHTTPClient(agent, data_to_body_producer=self._body)
        #: Bodies written on ``reactor``: treq's default writes them with the global
        #: reactor's cooperator, whatever clock the client was given.
        self._cooperator = Cooperator(scheduler=lambda work: reactor.callLater(0, work))

    def _body(self, data: Any) -> IBodyProducer:
        """A request body (a form, JSON, bytes) as a producer on this client's reactor."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if isinstance(data, bytes):
            return FileBodyProducer(io.BytesIO(data), cooperator=self._cooperator)
        producer: IBodyProducer = IBodyProducer(data)
        return producer

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = self._client.request(method, url, **kwargs)
        return d

    def collect(self, response: Any, collector: Any) -> Deferred[None]:
        """treq's ``collect``, except that cancelling it (:func:`fetch`'s timeout) closes
        the connection: treq's cannot be cancelled, so a body trickled by a server slower
        than the timeout kept its connection open, feeding a collector nobody read."""
        if response.length == 0:
            return succeed(None)
        body = _Collect(collector)
        response.deliverBody(body)
        return body.finished


class _Collect(protocol.Protocol):
    """A response body, chunk by chunk, to ``collector``; ``finished`` fires at its end."""

    def __init__(self, collector: Any) -> None:
        self._collector = collector
        self.finished: Deferred[None] = Deferred(self._cancel)

    def _cancel(self, finished: Deferred[None]) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        try:
            self._collector(data)
        except Exception:
            self.finished.errback()
            self._cancel(self.finished)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(None)
        else:
            self.finished.errback(reason)


def client_secret_basic(client_id: str, client_secret: str) -> bytes:
    """The ``Authorization`` value of HTTP Basic client authentication (RFC 6749 §2.3.1):
    id and secret each form-encoded (Appendix B) before they are joined and base64ed."""
    pair = f"{_form(client_id)}:{_form(client_secret)}".encode()
    return b"Basic " + base64.b64encode(pair)


#: How much of a server's ``error_description`` (or other text) a failure quotes.
MAX_EXCERPT = 120


def excerpt(value: object) -> str:
    """A short, printable excerpt of what a server said: safe in a log line or a page."""
    text = value if isinstance(value, str) else ""
    text = "".join(c if c.isprintable() else " " for c in text[:MAX_EXCERPT])
    return text + ("…" if isinstance(value, str) and len(value) > MAX_EXCERPT else "")


def _form(value: str) -> str:
    return urllib.parse.quote_plus(value, safe="")


class FetchFailed(Exception):
    """The authorization server did not give a usable answer."""


class TooLarge(FetchFailed):
    """The response body passed its byte bound; the transfer was aborted."""


@attrs.frozen
class Fetched:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _collector(limit: int, bound: int) -> tuple[list[bytes], Any]:
    """Collects up to ``limit`` bytes; past it, TooLarge naming ``bound``."""
    chunks: list[bytes] = []
    size = [0]

    def collect(data: bytes) -> None:
        size[0] += len(data)
        if size[0] > limit:
            raise TooLarge(f"response larger than {bound} bytes")
        chunks.append(data)

    return chunks, collect


async def _fetch(
    http: HTTPClient, method: str, url: str, max_bytes: int, kwargs: dict[str, Any]
) -> Fetched:
    try:
        response = await http.request(method, url, **kwargs)
        length = response.length
        # A declared length past the bound fails on the first chunk, which aborts.
        declared_too_large = isinstance(length, int) and length > max_bytes
        chunks, collect = _collector(-1 if declared_too_large else max_bytes, max_bytes)
        await http.collect(response, collect)
    except FetchFailed:
        raise
    except Exception as error:
        raise FetchFailed(f"{method} {url} failed: {_describe(error)}") from error
    headers = {
        name.decode("latin-1").lower(): b", ".join(values).decode("latin-1")
        for name, values in response.headers.getAllRawHeaders()
    }
    return Fetched(status=response.code, headers=headers, body=b"".join(chunks))


def _describe(error: BaseException) -> str:
    """A one-line cause; treq wraps failures in lists of Failures."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        return "; ".join(r.getErrorMessage() or r.type.__name__ for r in reasons)
    return str(error) or type(error).__name__


def fetch(
    http: HTTPClient,
    clock: Clock,
    method: str,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    **kwargs: Any,
) -> Deferred[Fetched]:
    """One request, its body bounded by ``max_bytes``, all of it within ``timeout``.

    Redirects are not followed: an authorization server's URLs are configured
    or come from its own metadata, and a redirect elsewhere is not trusted.
    """
    kwargs.setdefault("allow_redirects", False)
    d = Deferred.fromCoroutine(_fetch(http, method, url, max_bytes, kwargs))

    def timed_out(result: object, seconds: float) -> Failure:
        error = FetchFailed(f"{method} {url}: no answer within {seconds:g} s")
        return Failure(error)

    d.addTimeout(timeout, clock, onTimeoutCancel=timed_out)  # type: ignore[arg-type]
    return d


def parse_json_object(body: bytes, url: str) -> dict[str, Any]:
    """A JSON object, or FetchFailed.  Nested past the interpreter's recursion limit is
    not JSON either: the decoder raises ``RecursionError`` for it, not ``ValueError``."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise FetchFailed(f"{url} did not answer JSON: nested too deep") from None
    except ValueError as error:
        raise FetchFailed(f"{url} did not answer JSON: {error}") from None
    if not isinstance(value, dict):
        raise FetchFailed(f"{url} did not answer a JSON object")
    return value


async def get_json_object(
    http: HTTPClient, clock: Clock, url: str, *, time_limit: float, max_bytes: int
) -> tuple[bytes, dict[str, Any]]:
    """GET a JSON object (metadata documents, key sets): 200 and an object, or FetchFailed.
    The raw bytes too, for those that relay the document as it came."""
    got = await fetch(
        http,
        clock,
        "GET",
        url,
        timeout=time_limit,
        max_bytes=max_bytes,
        headers={"Accept": ["application/json"]},
    )
    if got.status != 200:
        raise FetchFailed(f"{url} answered HTTP {got.status}")
    return got.body, parse_json_object(got.body, url)
