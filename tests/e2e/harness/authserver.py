"""Start the test authorization server ``e2e/as.mjs`` (oidc-provider 9) and talk to it."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx2
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .processes import (
    E2E_DIR,
    LOG_DIR,
    Process,
    ensure_node_modules,
    node_executable,
    start_process,
)

AS_SCRIPT = E2E_DIR / "as.mjs"
DEFAULT_RESOURCE_SCOPES = ("mcp:tools", "tools:call")


@dataclass
class AuthServer:
    """A running ``e2e/as.mjs``: ``issuer`` is ``http://127.0.0.1:<port>``, or
    ``http://127.0.0.1:<port>/realms/<realm>`` with ``profile="keycloak"``."""

    issuer: str
    process: Process
    test_control: bool
    resource_scopes: tuple[str, ...] = DEFAULT_RESOURCE_SCOPES
    users: dict[str, str] = field(default_factory=dict)
    profile: str = "default"

    @property
    def port(self) -> int:
        port = urlsplit(self.issuer).port
        assert port is not None
        return port

    @property
    def jwks_uri(self) -> str:
        if self.profile == "keycloak":
            return f"{self.issuer}/protocol/openid-connect/certs"
        return f"{self.issuer}/jwks"

    @property
    def token_endpoint(self) -> str:
        if self.profile == "keycloak":
            return f"{self.issuer}/protocol/openid-connect/token"
        return f"{self.issuer}/token"

    @property
    def registration_endpoint(self) -> str:
        if self.profile == "keycloak":
            return f"{self.issuer}/clients-registrations/openid-connect"
        return f"{self.issuer}/reg"

    def metadata(self) -> dict[str, Any]:
        response = httpx2.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def jwks(self) -> dict[str, Any]:
        response = httpx2.get(self.jwks_uri, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def rotate_keys(self, *, keep_old: bool = True) -> str:
        """Make a new signing key (new ``kid``) the active one; returns the new kid.

        Registered clients, grants and refresh tokens survive. With ``keep_old=False``
        the old key leaves the JWKS, so tokens signed with it no longer verify.
        Needs ``test_control=True``.
        """
        response = httpx2.post(
            f"{self.issuer}/__test__/rotate-keys",
            params={"keep": "1" if keep_old else "0"},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["kid"])

    def active_kid(self) -> str:
        response = httpx2.get(f"{self.issuer}/__test__/keys", timeout=10)
        response.raise_for_status()
        return str(response.json()["active"])

    def stop(self) -> None:
        self.process.stop()


def start_auth_server(
    port: int = 0,
    *,
    access_token_ttl: int = 600,
    resource_scopes: tuple[str, ...] = DEFAULT_RESOURCE_SCOPES,
    users: dict[str, dict[str, Any]] | None = None,
    jwks_file: str | os.PathLike[str] | None = None,
    opaque_resources: tuple[str, ...] = (),
    test_control: bool = True,
    timeout: float = 30.0,
    profile: str = "default",
    realm: str = "aigw",
    kc_audience: str | None = None,
    kc_allowed_scopes: tuple[str, ...] = ("mcp:tools",),
    kc_rfc8414: bool = True,
    tls: tuple[str, str] | None = None,
    exchange_issuers: tuple[str, ...] = (),
    kc_exchange_clients: tuple[str, ...] | None = None,
    kc_clients: tuple[str, ...] = (),
    kc_token_audience: tuple[str, ...] = (),
    kc_exchange_v1: bool = False,
) -> AuthServer:
    """Start ``node e2e/as.mjs`` and wait for its ``READY <issuer>`` line.

    ``port=0`` picks a free port (the AS binds first, then prints its issuer).
    ``users`` maps a name to ``{"password": ..., "scopes": [...]}``; the default is
    alice (all resource scopes) and bob (all but ``tools:call``).

    ``profile="keycloak"`` behaves like Keycloak (see the header of ``e2e/as.mjs``):
    issuer ``.../realms/<realm>``, ``aud`` = ``kc_audience`` (the gateway's resource URL,
    as an audience mapper gives it) for tokens with scope ``mcp:tools``, registration
    limited to ``kc_allowed_scopes`` and Keycloak's own client scopes, a consent page;
    ``kc_rfc8414=False`` serves no RFC 8414 path-inserted metadata (Keycloak < 26.4).
    ``tls``: (certificate file, key file) to serve ``https`` (the issuer's scheme too);
    ``exchange_issuers``: issuers whose tokens its token exchange takes as well (started
    with the same ``jwks_file``: :func:`write_signing_key`);
    Keycloak's standard token exchange: ``kc_exchange_clients`` have its switch on (None:
    the upstream client), ``kc_clients`` are the realm's clients an ``audience`` may name,
    ``kc_token_audience`` client ids the users' tokens name too, ``kc_exchange_v1`` turns
    the legacy V1 feature on as well.
    """
    ensure_node_modules()
    argv = [
        node_executable(),
        str(AS_SCRIPT),
        "--port",
        str(port),
        "--access-token-ttl",
        str(access_token_ttl),
        "--resource-scopes",
        " ".join(resource_scopes),
    ]
    env: dict[str, str] = {}
    if profile != "default":
        argv += ["--profile", profile, "--realm", realm]
        argv += ["--kc-allowed-scopes", " ".join(kc_allowed_scopes)]
        if kc_audience is not None:
            argv += ["--kc-audience", kc_audience]
        if not kc_rfc8414:
            env["AS_KC_RFC8414"] = "0"
        if kc_exchange_clients is not None:
            env["AS_KC_EXCHANGE_CLIENTS"] = " ".join(kc_exchange_clients)
        env["AS_KC_CLIENTS"] = " ".join(kc_clients)
        env["AS_KC_TOKEN_AUDIENCE"] = " ".join(kc_token_audience)
        if kc_exchange_v1:
            env["AS_KC_TOKEN_EXCHANGE_V1"] = "1"
    if test_control:
        argv.append("--test-control")
    if jwks_file is not None:
        argv += ["--jwks", os.fspath(jwks_file)]
    for resource in opaque_resources:
        argv += ["--opaque-resource", resource]
    if tls is not None:
        argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    for issuer in exchange_issuers:
        argv += ["--exchange-issuer", issuer]
    if users is not None:
        fd, users_path = tempfile.mkstemp(prefix="as-users-", suffix=".json", dir=LOG_DIR)
        with os.fdopen(fd, "w") as f:
            json.dump(users, f)
        argv += ["--users", users_path]
    proc = start_process(
        argv, env, ready_line_regex=r"^READY (\S+)", timeout=timeout, name="as", attempts=2
    )
    assert proc.ready_match is not None
    passwords = (
        {name: str(u["password"]) for name, u in users.items()}
        if users is not None
        else {"alice": "alice-password", "bob": "bob-password"}
    )
    return AuthServer(
        proc.ready_match.group(1), proc, test_control, resource_scopes, passwords, profile
    )


def write_signing_key(directory: str) -> str:
    """A ``--jwks`` file with one new RS256 signing key (private), in ``directory``: two
    servers started with it sign with the same key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    jwk.update(kid=f"shared-{secrets.token_hex(4)}", alg="RS256", use="sig")
    path = os.path.join(directory, "jwks.json")
    with open(path, "w") as handle:
        json.dump({"keys": [jwk]}, handle)
    return path
