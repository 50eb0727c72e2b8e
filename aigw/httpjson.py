"""Bounded, timed HTTP fetches of JSON documents, for every layer that needs one.

Everything aigw reads from an authorization server (keys, metadata, introspection,
token endpoints) goes through :func:`fetch`: the body is read incrementally and the
transfer aborted past a byte bound, and the whole exchange is cancelled after a
timeout measured on the injected clock.  Shared: imports no layer (``.importlinter``),
so the resource server (``auth``) and the upstream credentials (``upstream``) fetch
the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure


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


class FetchFailed(Exception):
    """The authorization server did not give a usable answer."""


class TooLarge(FetchFailed):
    """The response body passed its byte bound; the transfer was aborted."""


@attrs.frozen
class Fetched:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _collector(limit: int) -> tuple[list[bytes], Any]:
    chunks: list[bytes] = []
    size = [0]

    def collect(data: bytes) -> None:
        size[0] += len(data)
        if size[0] > limit:
            raise TooLarge(f"response larger than {limit} bytes")
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
        chunks, collect = _collector(-1 if declared_too_large else max_bytes)
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
    """A JSON object, or FetchFailed."""
    try:
        value = json.loads(body)
    except ValueError as error:
        raise FetchFailed(f"{url} did not answer JSON: {error}") from None
    if not isinstance(value, dict):
        raise FetchFailed(f"{url} did not answer a JSON object")
    return value
