"""What a request to a backend carries to authenticate the gateway: static headers today."""

from __future__ import annotations

from collections.abc import Mapping

from aigw.principal import Principal
from aigw.upstream.api import HeaderFields


class StaticHeaders:
    """The backend's configured ``headers`` (and ``headers_file``), the same on every request.

    Encoded once: the hot path only hands the same tuple on.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._fields: HeaderFields = tuple(
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        )

    async def headers(self, principal: Principal | None) -> HeaderFields:
        return self._fields
