"""The token endpoint of a ``client_credentials`` or ``token_exchange`` backend, asked
as the gateway asks it: with the trust its ``ca_file`` gives
(``upstream.token_endpoint.server_client``) and the client's authentication."""

from __future__ import annotations

from aigw.config import BackendConfig
from aigw.doctor.findings import Finding, fail, ok
from aigw.httpjson import Clock, HTTPClient
from aigw.upstream.api import UpstreamError
from aigw.upstream.client_credentials import ClientCredentials
from aigw.upstream.token_endpoint import TokenEndpoint, TokenRequestFailed
from aigw.upstream.token_exchange import GRANT_TYPE

#: RFC 6749 §5.2: the refusals that say the client itself may not have tokens there.
CLIENT_REFUSALS = frozenset({"invalid_client", "unauthorized_client", "unsupported_grant_type"})


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
    ``invalid_request`` (RFC 6749 §5.2); a refusal of the client itself, a certificate
    that fails or no answer fail the check."""
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
        if not error.refused or error.code in CLIENT_REFUSALS:
            return fail(check, f"token exchange: {error}", _fix("token_exchange"))
        seen = f"{error.code} to an exchange without a subject token (no user's to send here)"
    else:
        seen = "it answers"
    return ok(check, f"token_exchange: {tx.token_endpoint}: {seen}")
