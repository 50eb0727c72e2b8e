"""The three pages of a user's authorization at a ``user_oauth`` backend, seen in a browser.

``GET /oauth/upstream/start?link=...``: the URL of the URL elicitation (MCP 2025-11-25
client/elicitation); the sealed link names the user and the backend, and the answer is
a redirect to aigw's own authorization server, to learn who opened it
(``auth/browser_login.py``).  ``GET /oauth/upstream/login?code=...&state=...``: where
that server sends the browser back; the ID token's user must be the link's (else 403,
nothing stored), and the answer is a redirect to the backend's authorization server
(RFC 6749 §4.1.1, PKCE S256, ``resource`` = the backend).
``GET /oauth/upstream/callback?code=...&state=...``: where that server sends the user
back (RFC 6749 §4.1.2); the state is checked, the code exchanged, the token stored,
and a small page says the window can be closed.

A link opened by a user other than its own is a 403 page, nothing stored.  Every
other refusal is a 400 page saying which: an invalid, expired or replayed link or
state, the server's ``error`` (RFC 6749 §4.1.2.1), a mix-up (RFC 9207 ``iss``), a
refused code; a 502 when the backend's authorization server cannot be reached.  The
pages hold no token; they are never cached and send no ``Referer`` (the link and the
code are in their URLs).
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Mapping

from twisted.logger import Logger

from aigw.auth.browser_login import BrowserLogin, LoginFailed
from aigw.upstream.user_authorization import AuthorizationFailed, UserAuthorization
from aigw.upstream.user_links import (
    CALLBACK_PATH,
    LOGIN_PATH,
    START_PATH,
    Grant,
    LinkRefused,
    UserLinks,
)
from aigw.web.request import WebRequest, query_arguments

__all__ = ["CALLBACK_PATH", "LOGIN_PATH", "START_PATH", "UserOAuthPages"]

_PAGE_HEADERS = {
    b"Content-Type": b"text/html; charset=utf-8",
    b"Cache-Control": b"no-store",
    b"Referrer-Policy": b"no-referrer",
    b"Content-Security-Policy": b"default-src 'none'; frame-ancestors 'none'",
    b"X-Content-Type-Options": b"nosniff",
}


def _page(request: WebRequest, status: int, title: str, text: str) -> bytes:
    request.setResponseCode(status)
    for name, value in _PAGE_HEADERS.items():
        request.setHeader(name, value)
    return (
        "<!doctype html>\n<html><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>\n"
    ).encode()


def _redirect(request: WebRequest, location: str) -> bytes:
    request.setResponseCode(302)
    request.setHeader(b"Location", location.encode("ascii"))
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Referrer-Policy", b"no-referrer")
    return b""


def _argument(request: WebRequest, name: bytes) -> str | None:
    """One query argument, decoded; None if absent or given twice (ambiguous)."""
    values = query_arguments(request).get(name, [])
    return values[0].decode("utf-8", "replace") if len(values) == 1 else None


def _code(request: WebRequest, server_name: str, issuer: str) -> str | bytes:
    """The code of an authorization response (RFC 6749 §4.1.2), or the page refusing it:
    the server's ``error`` (§4.1.2.1), a mix-up (RFC 9207 §2.4: ``iss`` of another server
    than the one asked), no code."""
    error = _argument(request, b"error")
    if error is not None:
        shown = "".join(c for c in error[:80] if c.isprintable())
        return _page(request, 400, "Authorization refused", f"{server_name} answered: {shown}")
    answered = _argument(request, b"iss")
    if answered is not None and answered != issuer:
        return _page(request, 400, "Wrong authorization server", "the response is refused")
    code = _argument(request, b"code")
    if not code:
        return _page(request, 400, "No authorization code", "the response carries no code")
    return code


class UserOAuthPages:
    """The start and callback endpoints, for every ``user_oauth`` backend."""

    log = Logger()

    def __init__(
        self,
        links: UserLinks,
        authorizations: Mapping[str, UserAuthorization],
        login: BrowserLogin | None,
        completed: Callable[[Grant], Awaitable[int]] | None = None,
    ) -> None:
        """``login``: None under ``auth: none``, where no link is ever honoured (the
        config refuses ``user_oauth`` without ``auth``).  ``completed``: told each
        grant whose authorization completed (the session that got its elicitation is
        notified, in whichever process asked it: ``web/elicitation_notices.py``); how
        many streams it told."""
        self._links = links
        self._authorizations = authorizations
        self._login = login
        self._completed = completed

    async def start(self, request: WebRequest) -> bytes:
        try:
            grant = self._links.open_link(_argument(request, b"link"))
        except LinkRefused as refused:
            return _page(request, 400, "This link cannot be used", str(refused))
        if self._authorizations.get(grant.backend) is None:
            return _page(request, 400, "Unknown backend", "this gateway no longer serves it")
        if self._login is None:
            return _page(request, 403, "No sign-in", "this gateway has no users (auth: none)")
        try:
            location = await self._login.begin(grant)
        except LoginFailed as error:
            self.log.warn("user sign-in not begun: {error}", error=str(error))
            return _page(request, error.status, "Sign-in cannot begin", str(error))
        return _redirect(request, location)

    async def login(self, request: WebRequest) -> bytes:
        """Back from aigw's own authorization server: the same user, then the backend."""
        try:
            state = self._links.open_login(_argument(request, b"state"))
        except LinkRefused as refused:
            return _page(request, 400, "This sign-in cannot be completed", str(refused))
        if self._login is None:
            return _page(request, 403, "No sign-in", "this gateway has no users (auth: none)")
        code = _code(request, "aigw's server", self._login.issuer)
        if isinstance(code, bytes):
            return code
        try:
            await self._login.complete(state, code)
        except LoginFailed as failure:
            self.log.warn(
                "sign-in for {sub}'s link to {backend} refused: {error}",
                sub=state.grant.subject,
                backend=state.grant.backend,
                error=str(failure),
            )
            title = "Sign-in not completed"
            if failure.status == 403:
                title = "This link belongs to another user"
            return _page(request, failure.status, title, str(failure))
        return await self._to_backend(request, state.grant)

    async def _to_backend(self, request: WebRequest, grant: Grant) -> bytes:
        authorization = self._authorizations.get(grant.backend)
        if authorization is None:
            return _page(request, 400, "Unknown backend", "this gateway no longer serves it")
        try:
            location = await authorization.begin(grant)
        except AuthorizationFailed as error:
            self.log.warn("user authorization not begun: {error}", error=str(error))
            return _page(request, 502, "The backend cannot be reached", str(error))
        return _redirect(request, location)

    async def callback(self, request: WebRequest) -> bytes:
        try:
            state = self._links.open_state(_argument(request, b"state"))
        except LinkRefused as refused:
            return _page(request, 400, "This sign-in cannot be completed", str(refused))
        backend = state.grant.backend
        authorization = self._authorizations.get(backend)
        if authorization is None:
            return _page(request, 400, "Unknown backend", "this gateway no longer serves it")
        code = _code(request, backend, state.authorization_server)
        if isinstance(code, bytes):
            return code
        try:
            await authorization.complete(state, code)
        except AuthorizationFailed as failure:
            self.log.warn(
                "user authorization at {backend} not completed: {error}",
                backend=backend,
                error=str(failure),
            )
            status = 400 if failure.refused else 502
            return _page(request, status, "Authorization not completed", str(failure))
        told = 0 if self._completed is None else await self._completed(state.grant)
        self.log.info(
            "{sub} authorized aigw at backend {backend} ({told} stream(s) told)",
            sub=state.grant.subject,
            backend=backend,
            told=told,
        )
        return _page(
            request,
            200,
            f"Connected to {backend}",
            "You can close this page and go back to your client.",
        )
