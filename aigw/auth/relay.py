"""Serving the authorization server's metadata at the gateway, for older clients.

MCP 2025-03-26 clients look for ``/.well-known/oauth-authorization-server`` on
the MCP server's own origin instead of reading RFC 9728 metadata.  The relay
fetches the issuer's RFC 8414 and OpenID Connect documents, checked with the
same discovery code as the key store, and keeps the last good bytes.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

from aigw.config import AuthConfig
from aigw.discovery import OAUTH_METADATA, OPENID_METADATA, fetch_metadata, metadata_urls
from aigw.httpjson import Clock, HTTPClient, Timer

#: After a failed fetch, try again this soon (or at the refresh interval if sooner).
RETRY_INTERVAL = 60.0


class AuthorizationServerMetadataRelay(Service):
    """The issuer's metadata documents, refreshed every ``metadata_refresh_interval``."""

    log = Logger()

    def __init__(self, config: AuthConfig, http: HTTPClient, clock: Clock) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        oauth_url, openid_url = metadata_urls(config.issuer)
        self._sources = {_kind(OAUTH_METADATA): oauth_url, _kind(OPENID_METADATA): openid_url}
        self._documents: dict[str, bytes] = {}
        self._next: Timer | None = None
        self._fetching: Deferred[Any] | None = None
        self._failed = False

    @property
    def kinds(self) -> tuple[str, ...]:
        """The documents relayed: ``oauth-authorization-server``, ``openid-configuration``."""
        return tuple(self._sources)

    def document(self, kind: str) -> bytes | None:
        """The last good document of ``kind`` (or its ``/.well-known/...`` path), if any."""
        return self._documents.get(_kind(kind))

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.refresh()

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        if self._fetching is not None:
            self._fetching.cancel()

    def refresh(self) -> Deferred[Any]:
        """Fetch both documents now; fires when done, never fails."""
        if self._fetching is not None:
            return self._fetching
        self._failed = False
        fetches = [Deferred.fromCoroutine(self._fetch(p, u)) for p, u in self._sources.items()]
        self._fetching = DeferredList(fetches, consumeErrors=True)
        self._fetching.addBoth(self._schedule)
        return self._fetching

    async def _fetch(self, kind: str, url: str) -> None:
        config = self._config
        try:
            body, _ = await fetch_metadata(
                self._http, self._clock, url, config.issuer, config.http_timeout
            )
        except Exception as error:
            self._failed = True
            self.log.warn(
                "Cannot relay {url} (keeping the last good copy: {kept}): {why}",
                url=url,
                kept=kind in self._documents,
                why=str(error) or type(error).__name__,
            )
        else:
            self._documents[kind] = body

    def _schedule(self, result: object) -> object:
        self._fetching = None
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        delay = self._config.metadata_refresh_interval
        if self._failed:
            delay = min(delay, RETRY_INTERVAL)
        if self.running:
            self._next = self._clock.callLater(delay, self.refresh)
        return None


def _kind(name: str) -> str:
    """``/.well-known/openid-configuration`` → ``openid-configuration``."""
    return name.removeprefix("/.well-known/")
