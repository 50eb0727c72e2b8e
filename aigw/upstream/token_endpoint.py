"""One request to an OAuth token endpoint, and what its answer means (RFC 6749 §5).

Shared by the gateway's own tokens (client credentials, RFC 6749 §4.4) and tokens
exchanged for the user's (RFC 8693): the client authenticates (RFC 6749 §2.3.1), the
answer is bounded and timed (``aigw.httpjson.fetch``), and what comes back is checked
before it goes on a request head.  Nothing here logs: the form holds the client secret
or the user's token, the answer the new token; a failure's detail names the endpoint,
the status and the server's ``error`` code with a short excerpt of its description.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import attrs
from twisted.web.client import HTTPConnectionPool

from aigw.config import BackendConfig, ClientCredentialsConfig, TokenExchangeConfig
from aigw.discovery import discover_metadata
from aigw.httpjson import (
    Clock,
    FetchFailed,
    HTTPClient,
    TreqClient,
    client_secret_basic,
    excerpt,
    fetch,
    parse_json_object,
)
from aigw.upstream.learnt_urls import learnt_url_problem

#: The most of a token endpoint's answer aigw reads (a token and a few fields).
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
#: The longest a token is taken to live, whatever its ``expires_in`` says (a day): a
#: token cached or stored is renewed, or its user asked again, at least this often.
MAX_LIFETIME = 24 * 3600.0
#: RFC 6750 §2.1 b64token: what a bearer token may be, so it cannot break a header.
BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@attrs.frozen
class IssuedToken:
    """A successful answer (RFC 6749 §5.1; RFC 8693 §2.2.1)."""

    access_token: str = attrs.field(repr=False)
    #: Seconds the token lives (None: the server did not say).
    expires_in: float | None
    issued_token_type: str | None = None
    #: RFC 6749 §5.1 (authorization code and refresh grants): how to renew it.
    refresh_token: str | None = attrs.field(default=None, repr=False)
    #: RFC 6749 §5.1: the scope granted, when it differs from the one asked for.
    scope: str | None = None
    #: OpenID Connect Core §3.1.3.3: the ID token of a code grant asked with ``openid``.
    id_token: str | None = attrs.field(default=None, repr=False)


def server_client(
    backend: BackendConfig,
    ca_file: str | None,
    timeout: float,
    reactor: Any,
    pool: HTTPConnectionPool | None = None,
) -> TreqClient:
    """A client of ``backend``'s authorization server (its token endpoint, RFC 8414
    metadata, RFC 7591 registration), by default a connection per request (all are asked
    for seldom).  Trust: the mode's ``ca_file``, else the backend's (one private CA
    usually signs both), else the system's roots; a certificate that fails them fails
    the request, with no fallback to other roots."""
    if pool is None:
        pool = HTTPConnectionPool(reactor, persistent=False)
    return TreqClient(reactor, pool, timeout, backend.ca_file if ca_file is None else ca_file)


def token_server_client(backend: BackendConfig, reactor: Any) -> TreqClient | None:
    """The client of a ``client_credentials`` or ``token_exchange`` backend's token
    endpoint, trusting what that mode's ``ca_file`` says (:func:`server_client`); None
    for a backend in neither mode.  The gateway's credentials and ``aigw doctor`` both
    ask with it."""
    auth = backend.auth
    mode = auth.client_credentials or auth.token_exchange if auth is not None else None
    if mode is None:
        return None
    return server_client(backend, mode.ca_file, mode.timeout, reactor)


class TokenRequestFailed(Exception):
    """No token: ``refused`` when the server said no (RFC 6749 §5.2), else it could not
    be asked.  ``str()`` is safe to show: no secret, no token, a bounded excerpt."""

    def __init__(
        self,
        detail: str,
        *,
        refused: bool = False,
        code: str | None = None,
        description: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.refused = refused
        #: The server's ``error`` code (RFC 6749 §5.2), when its answer had one (a
        #: server error's too: Keycloak's are ``unknown_error``).
        self.code = code
        #: Its ``error_description``, a bounded printable excerpt; None when it gave none.
        self.description = description
        #: The HTTP status it answered with; None when it could not be asked.
        self.status = status


class TokenEndpoint:
    """Where and how to ask for tokens: the endpoint (given, or named by the ``issuer``'s
    metadata, RFC 8414 §3) and the client authentication (RFC 6749 §2.3.1)."""

    def __init__(
        self,
        http: HTTPClient,
        clock: Clock,
        *,
        client_id: str,
        client_secret: str | None,
        client_auth: Literal["client_secret_basic", "client_secret_post"],
        timeout: float,
        url: str | None = None,
        issuer: str | None = None,
    ) -> None:
        if (url is None) == (issuer is None):
            raise ValueError("give the token endpoint's url or its issuer")
        self._http = http
        self._clock = clock
        self._url = url
        self._issuer = issuer
        self._timeout = timeout
        self._client_id = client_id
        self._client_secret = client_secret
        self._client_auth = client_auth

    @classmethod
    def of(
        cls, config: ClientCredentialsConfig | TokenExchangeConfig, http: HTTPClient, clock: Clock
    ) -> TokenEndpoint:
        """The token endpoint of a ``client_credentials`` or ``token_exchange`` backend."""
        issuer = config.issuer if isinstance(config, ClientCredentialsConfig) else None
        return cls(
            http,
            clock,
            client_id=config.client_id,
            client_secret=config.client_secret,
            client_auth=config.client_auth,
            timeout=config.timeout,
            url=config.token_endpoint,
            issuer=issuer,
        )

    async def url(self) -> str:
        """The token endpoint, discovered once from the issuer's metadata if not given."""
        if self._url is None:
            assert self._issuer is not None
            try:
                document = await discover_metadata(
                    self._http, self._clock, self._issuer, self._timeout
                )
            except FetchFailed as error:
                raise TokenRequestFailed(f"no token endpoint: {error}") from None
            found = document.get("token_endpoint")
            if not isinstance(found, str):
                raise TokenRequestFailed(f"{self._issuer}'s metadata names no token_endpoint")
            # The config refuses a plain-http endpoint; so does discovery (RFC 8414 §3.3
            # asks nothing of the scheme, the client secret's confidentiality does), and
            # it goes nowhere else the issuer could not (``learnt_urls.py``).
            problem = learnt_url_problem(found, self._issuer)
            if problem is not None:
                raise TokenRequestFailed(f"token_endpoint {excerpt(found)!r} refused: {problem}")
            self._url = found
        return self._url

    async def request(self, form: Mapping[str, str]) -> IssuedToken:
        """POST ``form`` (plus the client's authentication) and read the token."""
        url = await self.url()
        body = dict(form)
        headers: dict[str, list[bytes]] = {"Accept": [b"application/json"]}
        if self._client_secret is None:
            # A public client (RFC 6749 §2.1; RFC 7591 ``token_endpoint_auth_method: none``)
            # names itself and proves nothing but PKCE (RFC 6749 §4.1.3).
            body["client_id"] = self._client_id
        elif self._client_auth == "client_secret_basic":
            headers["Authorization"] = [client_secret_basic(self._client_id, self._client_secret)]
        else:  # client_secret_post, RFC 6749 §2.3.1: in the body
            body["client_id"] = self._client_id
            body["client_secret"] = self._client_secret
        try:
            got = await fetch(
                self._http,
                self._clock,
                "POST",
                url,
                timeout=self._timeout,
                max_bytes=MAX_TOKEN_RESPONSE_BYTES,
                data=body,
                headers=headers,
            )
        except FetchFailed as error:
            raise TokenRequestFailed(str(error)) from None
        answer = _json_object(got.body)
        if got.status != 200:
            raise _refusal(url, got.status, answer)
        return _issued(url, answer)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        return parse_json_object(body, "")
    except FetchFailed:
        return None


def _refusal(url: str, status: int, answer: dict[str, Any] | None) -> TokenRequestFailed:
    """RFC 6749 §5.2: a 400 (or 401) with an ``error`` code is the server's no."""
    raw = answer.get("error") if answer else None
    if not isinstance(raw, str):
        return TokenRequestFailed(f"{url} answered HTTP {status}", status=status)
    # Both quoted short and printable: ``aigw doctor`` prints the code, the log both.
    code = excerpt(raw)
    description = excerpt(answer.get("error_description") if answer else None) or None
    said = code + (f" ({description})" if description else "")
    if status in (400, 401, 403):
        return TokenRequestFailed(
            f"{url} refused: {said}",
            refused=True,
            code=code,
            description=description,
            status=status,
        )
    return TokenRequestFailed(
        f"{url} answered HTTP {status}: {said}", code=code, description=description, status=status
    )


def _seconds(value: object) -> float | None:
    """``expires_in`` (RFC 6749 §5.1: a number; some servers send it as a string of ASCII
    digits), from 0 to ``MAX_LIFETIME``; None when it is no number (absent, NaN, a
    boolean, any other string): as if the server had not said."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value) if len(value) <= 18 else math.inf
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(max(0, min(value, MAX_LIFETIME)))


def _issued(url: str, answer: dict[str, Any] | None) -> IssuedToken:
    """RFC 6749 §5.1: a bearer ``access_token``, and how long it lives."""
    if answer is None:
        raise TokenRequestFailed(f"{url} did not answer a JSON object")
    token = answer.get("access_token")
    if not isinstance(token, str) or not BEARER_TOKEN.fullmatch(token):
        raise TokenRequestFailed(f"{url} answered no usable access_token")
    token_type = answer.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        # RFC 8693 §2.2.1: N_A means "not an access token": nothing to send as Bearer.
        raise TokenRequestFailed(f"{url} answered token_type {excerpt(token_type)!r}, not Bearer")
    lifetime = _seconds(answer.get("expires_in"))
    issued_type = answer.get("issued_token_type")
    refresh = answer.get("refresh_token")
    scope = answer.get("scope")
    id_token = answer.get("id_token")
    return IssuedToken(
        token,
        lifetime,
        issued_type if isinstance(issued_type, str) else None,
        refresh if isinstance(refresh, str) and refresh else None,
        scope if isinstance(scope, str) else None,
        id_token if isinstance(id_token, str) and id_token else None,
    )
