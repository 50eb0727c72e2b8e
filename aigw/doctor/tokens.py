"""The token endpoint of a ``client_credentials`` or ``token_exchange`` backend, asked
as the gateway asks it: with the trust its ``ca_file`` gives
(``upstream.token_endpoint.server_client``) and the client's authentication."""

from __future__ import annotations

from aigw.config import BackendConfig
from aigw.doctor.findings import Finding, fail, ok, warn
from aigw.httpjson import Clock, HTTPClient
from aigw.upstream.api import UpstreamError
from aigw.upstream.client_credentials import ClientCredentials
from aigw.upstream.token_endpoint import TokenEndpoint, TokenRequestFailed
from aigw.upstream.token_exchange import GRANT_TYPE

#: RFC 6749 §5.2: the refusals that say the client itself may not have tokens there.
CLIENT_REFUSALS = frozenset({"invalid_client", "unauthorized_client", "unsupported_grant_type"})

#: Keycloak's standard token exchange (V2, on by default since 26.2) looks at the client
#: before the subject token, and refuses both with ``invalid_request``: the
#: ``error_description`` tells them apart.  A client whose "Standard token exchange"
#: switch is off: "Standard token exchange is not enabled for the requested client"; one
#: whose switch is on: "Parameter 'subject_token' required for standard token exchange"
#: (keycloak/keycloak ``StandardTokenExchangeProvider.supports``, in that order; its
#: reason answered 400 ``invalid_request`` by ``TokenExchangeGrantType.process``).
EXCHANGE_NOT_ENABLED = "token exchange is not enabled"
#: Keycloak's legacy token exchange (V1, the ``token-exchange`` preview feature) takes
#: any exchange request (``V1TokenExchangeProvider.supports`` is true; with V2 on too it
#: comes after it): without a subject token it issues a token to the client itself for
#: no user, and fails on the missing user session (a NullPointerException in
#: ``TokenManager.attachAuthenticationSession``, the trace of keycloak/keycloak#12951),
#: which Keycloak answers HTTP 500 ``unknown_error``.  The client's credentials passed
#: (the token endpoint checks them before the grant); what it may exchange, only a
#: user's token can show.
SERVER_FAILED_WITHOUT_USER = "unknown_error"


def _fix(mode: str) -> str:
    return (
        f"check auth.{mode} (endpoint, client_id, client secret) and its ca_file: the token "
        "endpoint's certificate must chain to it (default: the backend's ca_file, else the "
        "system's roots)"
    )


async def check_token_endpoint(config: BackendConfig, http: HTTPClient, clock: Clock) -> Finding:
    """``client_credentials``: a token, fetched as the gateway fetches it (RFC 6749 §4.4).
    ``token_exchange`` has no user token to exchange here: the endpoint is asked for an
    exchange without a ``subject_token`` (RFC 8693 §2.1), which a server answers with
    ``invalid_request`` (RFC 6749 §5.2; oidc-provider, and Keycloak's standard token
    exchange when the client may exchange); a refusal of the client itself (Keycloak's
    "not enabled" among them), a certificate that fails or no answer fail the check."""
    check = f"credentials {config.name}"
    assert config.auth is not None
    if config.auth.client_credentials is not None:
        cc = config.auth.client_credentials
        where = cc.token_endpoint or f"the token endpoint of {cc.issuer}"
        try:
            await ClientCredentials(config.name, cc, http, clock).headers(None)
        except UpstreamError as error:
            return fail(check, error.detail, _fix("client_credentials"))
        return ok(check, f"client_credentials: a token from {where}")
    tx = config.auth.token_exchange
    assert tx is not None
    try:
        await TokenEndpoint.of(tx, http, clock).request({"grant_type": GRANT_TYPE})
    except TokenRequestFailed as error:
        return _exchange_refused(check, tx.token_endpoint, tx.client_id, error)
    return ok(check, f"token_exchange: {tx.token_endpoint}: it answers")


def _exchange_refused(
    check: str, endpoint: str, client_id: str, error: TokenRequestFailed
) -> Finding:
    """What a token endpoint's answer to an exchange without a subject token says."""
    if error.status == 500 and error.code == SERVER_FAILED_WITHOUT_USER:
        return warn(
            check,
            f"token exchange: {error}: Keycloak's legacy token exchange (V1) answers so "
            "without a user; the client authenticated, what it may exchange is not known",
            "call a tool of this backend through aigw to try a user's exchange; on Keycloak "
            "26.2 or later, the standard token exchange (V2) is the supported one",
        )
    if not error.refused or error.code in CLIENT_REFUSALS:
        return fail(check, f"token exchange: {error}", _fix("token_exchange"))
    if EXCHANGE_NOT_ENABLED in (error.description or "").lower():
        return fail(
            check,
            f"token exchange: {error}",
            f'let the client {client_id!r} exchange tokens (Keycloak: turn on "Standard '
            "token exchange\" in the client's Settings, Capability config)",
        )
    seen = f"{error.code} to an exchange without a subject token (no user's to send here)"
    return ok(check, f"token_exchange: {endpoint}: {seen}")
