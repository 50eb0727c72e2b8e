"""``backends[].auth.token_exchange`` against Keycloak's standard token exchange (V2), as
far as it can be checked without Keycloak.

The authorization server is ``e2e/as.mjs --profile keycloak``, whose token exchange answers
as Keycloak 26's ``StandardTokenExchangeProvider`` does (see the header of ``e2e/as.mjs``):
the requester client's "Standard token exchange" switch, the requester in the subject
token's ``aud``, ``audience`` a client of the realm, Keycloak's error bodies and statuses.
aigw runs with ``keycloak.yaml``'s ``auth`` section and one backend whose credentials are a
token exchange by the confidential client ``aigw-upstream`` for the audience ``crm``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx2
import jwt
import pytest
import yaml
from mcp import MCPError

from tests.keycloak_check import gateway_config

from .aigw import Gateway, aigw_command, run_gateway
from .harness.authserver import AuthServer, start_auth_server
from .harness.oauth_client import MemoryTokenStorage, connect
from .harness.processes import LOG_DIR, free_port
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ALICE = "0b5e0a7e-6c1d-4a52-9d8e-2f1c3a4b5c6d"
USERS = {"alice": {"password": "alice-password", "scopes": ["mcp:tools"], "id": ALICE}}
CLIENT_ID = "aigw-upstream"
#: The backend's client in the realm: what aigw asks the exchanged token's audience to be.
AUDIENCE = "crm"
NOT_ENABLED = "Standard token exchange is not enabled for the requested client"


def start(
    pyserver: Upstream, *, switch: bool, v1: bool = False, in_aud: bool = True
) -> tuple[AuthServer, Gateway]:
    """The keycloak-profile AS (``aigw-upstream``'s switch on or off, V1 on or not, named
    in users' tokens or not) and aigw with the backend ``kx`` whose ``auth`` is a token
    exchange there."""
    port = free_port()
    auth = start_auth_server(
        profile="keycloak",
        kc_audience=f"http://127.0.0.1:{port}/mcp",
        users=USERS,
        test_control=False,
        kc_exchange_clients=(CLIENT_ID,) if switch else (),
        kc_clients=(AUDIENCE,),
        # The audience mapper of mcp:tools names aigw's client too: V2 exchanges only a
        # token whose aud holds the requester.
        kc_token_audience=(CLIENT_ID,) if in_aud else (),
        kc_exchange_v1=v1,
    )
    try:
        directory = tempfile.mkdtemp(prefix="aigw-kcx-", dir=LOG_DIR)
        path = gateway_config(auth.issuer, port, pyserver.url, directory)
        secret = os.path.join(directory, "upstream.secret")
        with open(secret, "w") as handle:
            handle.write("aigw-upstream-secret\n")
        with open(path) as handle:
            config = yaml.safe_load(handle)
        exchange = {
            "token_endpoint": f"{auth.issuer}/protocol/openid-connect/token",
            "client_id": CLIENT_ID,
            "client_secret_file": secret,
            "audience": AUDIENCE,
            "scope": ["mcp:tools"],
        }
        config["backends"] = [
            {
                "name": "kx",
                "url": pyserver.url,
                "timeout": "20s",
                "auth": {"token_exchange": exchange},
            }
        ]
        with open(path, "w") as handle:
            yaml.safe_dump(config, handle)
        return auth, run_gateway(path, port)
    except BaseException:
        auth.stop()
        raise


@pytest.fixture
def switched_on(node_modules: None, pyserver: Upstream) -> Iterator[tuple[AuthServer, Gateway]]:
    auth, gateway = start(pyserver, switch=True)
    yield auth, gateway
    gateway.stop()
    auth.stop()


async def call(gateway: Gateway, storage: MemoryTokenStorage) -> dict[str, Any] | MCPError:
    """alice's call of ``whoami-headers`` at ``kx``: the headers the upstream received,
    or the error the call was answered with."""
    async with connect(gateway.url, "alice", "alice-password", storage=storage) as client:
        try:
            result = await client.call_tool("kx__whoami-headers", {})
        except MCPError as error:
            return error
    headers: dict[str, Any] = json.loads(text_of(result))
    return headers


async def credentials_finding(gateway: Gateway) -> tuple[str, str]:
    """``aigw doctor``'s finding for the backend's credentials: its line and its fix."""
    done = await aigw_command("doctor", gateway.config_path)
    lines = done.stdout.decode().splitlines()
    found = [i for i, line in enumerate(lines) if "credentials kx" in line]
    assert len(found) == 1, lines
    after = lines[found[0] + 1 : found[0] + 2]
    fix = after[0] if after and after[0].startswith("  fix: ") else ""
    return lines[found[0]], fix


async def test_the_backend_gets_keycloaks_exchanged_token(
    switched_on: tuple[AuthServer, Gateway],
) -> None:
    """The upstream sees the token Keycloak issued aigw's client for ``crm``: alice as
    ``sub``, ``crm`` as ``aud``, aigw's client as ``azp``, never the user's token."""
    auth, gateway = switched_on
    storage = MemoryTokenStorage()
    headers = await call(gateway, storage)
    assert not isinstance(headers, MCPError), headers
    assert storage.tokens is not None
    user = storage.tokens.access_token
    assert jwt.decode(user, options={"verify_signature": False})["aud"] == [
        gateway.url,
        CLIENT_ID,
    ]
    assert all(user not in value for value in headers.values())
    scheme, _, token = headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token)["typ"] == "JWT"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["sub"], claims["aud"], claims["azp"]) == (
        auth.issuer,
        ALICE,
        AUDIENCE,
        CLIENT_ID,
    )
    assert "mcp:tools" in claims["scope"].split(" ")
    assert "act" not in claims
    finding, _ = await credentials_finding(gateway)
    assert finding.startswith("ok  "), finding


async def test_switch_off_the_call_fails_naming_keycloaks_reason(
    node_modules: None, pyserver: Upstream
) -> None:
    """Without the client's "Standard token exchange" switch, Keycloak answers 400
    ``invalid_request`` with its reason: the call fails with -32015 naming the backend and
    quoting it, and ``aigw doctor`` FAILs telling where the switch is."""
    auth, gateway = start(pyserver, switch=False)
    try:
        error = await call(gateway, MemoryTokenStorage())
        assert isinstance(error, MCPError), error
        assert error.code == -32015
        assert error.data["backend"] == "kx"
        assert error.data["reason"] == "credentials"
        assert f"invalid_request ({NOT_ENABLED})" in error.data["detail"]
        finding, fix = await credentials_finding(gateway)
        assert finding.startswith("FAIL"), finding
        assert NOT_ENABLED in finding
        assert f"let the client {CLIENT_ID!r} exchange tokens" in fix
        assert '"Standard token exchange"' in fix
    finally:
        gateway.stop()
        auth.stop()


async def test_users_tokens_not_for_aigws_client_are_not_exchanged(
    node_modules: None, pyserver: Upstream
) -> None:
    """V2 exchanges only a token whose ``aud`` holds the requester (the users' tokens name
    the gateway only, no audience mapper names aigw's client): 403 ``access_denied``,
    quoted in the call's -32015."""
    auth, gateway = start(pyserver, switch=True, in_aud=False)
    try:
        error = await call(gateway, MemoryTokenStorage())
        assert isinstance(error, MCPError), error
        assert error.code == -32015
        assert error.data["backend"] == "kx"
        assert "access_denied (Client is not within the token audience)" in error.data["detail"]
    finally:
        gateway.stop()
        auth.stop()


async def test_legacy_v1_too_doctor_warns_and_the_call_is_refused(
    node_modules: None, pyserver: Upstream
) -> None:
    """With the legacy V1 feature on and V2's switch off, V1 takes the exchange: without a
    subject token Keycloak fails with HTTP 500 ``unknown_error`` (doctor warns: the
    client authenticated, what it may exchange is not known); a user's exchange meets V1's
    missing permission (403 ``access_denied``)."""
    auth, gateway = start(pyserver, switch=False, v1=True)
    try:
        finding, _ = await credentials_finding(gateway)
        assert finding.startswith("warn"), finding
        assert "unknown_error" in finding
        error = await call(gateway, MemoryTokenStorage())
        assert isinstance(error, MCPError), error
        assert error.code == -32015
        assert "access_denied (Client not allowed to exchange)" in error.data["detail"]
    finally:
        gateway.stop()
        auth.stop()


def exchange(auth: AuthServer, **form: str) -> httpx2.Response:
    """A token exchange by aigw's client at the keycloak-profile AS."""
    body = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        **form,
    }
    return httpx2.post(
        f"{auth.issuer}/protocol/openid-connect/token",
        data=body,
        auth=(CLIENT_ID, "aigw-upstream-secret"),
        timeout=20,
    )


async def test_keycloaks_answers_to_an_exchange(switched_on: tuple[AuthServer, Gateway]) -> None:
    """What the profile answers, as ``StandardTokenExchangeProvider`` does: the response
    shape, then each refusal with Keycloak's status, code and description."""
    auth, gateway = switched_on
    storage = MemoryTokenStorage()
    assert not isinstance(await call(gateway, storage), MCPError)
    assert storage.tokens is not None
    user = storage.tokens.access_token
    issued = exchange(auth, subject_token=user, audience=AUDIENCE, scope="mcp:tools")
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["token_type"] == "Bearer"
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["expires_in"] > 0
    assert "mcp:tools" in body["scope"].split(" ")
    refusals = [
        ({"audience": "nobody"}, 400, "invalid_client", "Audience not found"),
        ({"audience": CLIENT_ID}, 400, "invalid_request", "Requested audience not available"),
        ({"scope": "tools:everything"}, 400, "invalid_scope", "Invalid scopes: tools:everything"),
        (
            {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
            400,
            "invalid_request",
            "requested_token_type unsupported",
        ),
        (
            {"requested_subject": "alice"},
            400,
            "invalid_request",
            "Parameter 'requested_subject' is not supported for standard token exchange",
        ),
        ({"subject_token": "not-a-token"}, 400, "invalid_request", "Invalid token"),
    ]
    for form, status, code, description in refusals:
        refused = exchange(auth, **{"subject_token": user, **form})
        assert refused.status_code == status, (form, refused.text)
        assert refused.json()["error"] == code, form
        assert refused.json()["error_description"].startswith(description), form
    # An exchanged token (aud crm) exchanged again by its azp is taken; the resource
    # parameter is ignored (Keycloak does not read it).
    again = exchange(auth, subject_token=body["access_token"], resource="http://elsewhere")
    assert again.status_code == 200, again.text
    assert (
        jwt.decode(again.json()["access_token"], options={"verify_signature": False})["aud"]
        == AUDIENCE
    )
