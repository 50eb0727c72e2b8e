"""Token attacks (issue 16 item 1) against the real gateway, each with its precise answer.

Every test sends one hostile request to the real ``GatewayService`` on the
memory network (tests/unit/memory.py), in front of a fake authorization server
that serves the issuer's JWK Set and a fake MCP server, and checks the whole
answer: the HTTP status, the ``WWW-Authenticate`` error code (RFC 6750 §3.1),
the refusal reason the gateway reported, and that the MCP server never saw
the request.  Rules: RFC 8725 (JWT BCP), RFC 9068 (JWT access tokens), RFC 9700
(OAuth security BCP), RFC 6750, RFC 6585 and the MCP Authorization
specification.

The first docstring line of each test is the case and its ``expected:`` line
the answer, as ``make security-report`` copies them into docs/security.md.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm
from twisted.web.server import Site

from aigw.config import BackendConfig
from tests.fakes import RecordingObserver
from tests.unit.auth.helpers import (
    EC_KEY,
    ISSUER,
    RESOURCE,
    RSA_KEY,
    RSA_KEY_2,
    FakeAuthorizationServer,
    auth_config,
    good_token,
    jwks,
    mint,
    public_jwk,
    token_claims,
)
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import GatewayTestCase, initialize_message
from tests.unit.memory import EPOCH, run

NOW = int(EPOCH)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hmac_token(secret: bytes, **header: Any) -> str:
    """An HS256 token keyed with ``secret``, built by hand: PyJWT refuses asymmetric
    key material as an HMAC secret, which is the point of the attack."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt", **header}).encode())
    body = b64url(json.dumps(token_claims()).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def rs256_token(header: dict[str, Any], payload: bytes) -> str:
    """An RS256 token with the issuer's key, header and payload as given (PyJWT refuses
    to encode some of them, such as a numeric kid)."""
    head = b64url(json.dumps(header).encode())
    signing_input = f"{head}.{b64url(payload)}".encode()
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input, RSA_KEY)
    return f"{signing_input.decode()}.{b64url(signature)}"


def self_signed_certificate(key: Any) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "as.example")])
    start = datetime.datetime.fromtimestamp(EPOCH - 3600, tz=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


class TokenAttackTestCase(GatewayTestCase):
    """A gateway with auth on, its issuer's JWK Set served by ``self.authz``."""

    async def start(self, **auth: Any) -> None:
        self.authz = FakeAuthorizationServer()
        self.authz.serve("/jwks", jwks(public_jwk(RSA_KEY, "rsa-1", alg="RS256")))
        port = self.network.serve(Site(self.authz, reactor=self.reactor))
        self.authz_url = f"http://127.0.0.1:{port}"
        self.upstream = FakeUpstream(tools=["echo"])
        self.upstream_url = self.start_upstream(self.upstream)
        config = auth_config(
            audiences=(RESOURCE,),
            jwks_uri=self.authz_url + "/jwks",
            relay_authorization_server_metadata=False,
            **auth,
        )
        await self.start_gateway_with(
            BackendConfig(name="files", url=self.upstream_url), auth=config
        )
        self.events = RecordingObserver()
        self.service.observers.add(self.events)
        await self.network.settle()
        self.assertEqual(self.authz.hits["/jwks"], 1, "the key set is loaded at start")

    async def send(
        self,
        authorization: list[bytes] | None = None,
        query: str = "",
        data: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[Any, Any]:
        """POST an initialize with these credentials; the response and its JSON body."""
        headers: dict[bytes, list[bytes]] = {
            b"Content-Type": [content_type.encode()],
            b"Accept": [b"application/json, text/event-stream"],
        }
        if authorization is not None:
            headers[b"Authorization"] = authorization
        body = data if data is not None else json.dumps(initialize_message()).encode()
        response = await self.http.post(self.url + query, data=body, headers=headers)
        content = await response.content()
        return response, json.loads(content) if content.startswith(b"{") else content

    async def bearer(self, token: str) -> tuple[Any, Any]:
        return await self.send([b"Bearer " + token.encode()])

    def assertRefused(
        self,
        answer: tuple[Any, Any],
        status: int,
        error: str | None,
        reason: str,
        description: str | None = None,
    ) -> None:
        """The refusal, in full: status, challenge error code, the reported reason, and
        the MCP server untouched."""
        response, body = answer
        self.assertEqual(response.code, status, body)
        (challenge,) = response.headers.getRawHeaders(b"www-authenticate")
        self.assertIn(b'resource_metadata="', challenge)
        if error is None:
            self.assertNotIn(b"error=", challenge)
            self.assertEqual(body["error"], "unauthorized")
        else:
            self.assertIn(b'error="%s"' % error.encode(), challenge)
            self.assertEqual(body["error"], error)
        if description is not None:
            self.assertEqual(body["error_description"], description)
        self.assertEqual([(e.status, e.reason) for e in self.events.refusals], [(status, reason)])
        self.assertEqual(self.upstream.received, [], "the MCP server saw the request")

    async def assertInvalidToken(self, token: str, reason: str, description: str) -> None:
        self.assertRefused(await self.bearer(token), 401, "invalid_token", reason, description)


class Control(TokenAttackTestCase):
    @run
    async def test_the_issuers_own_token_is_served(self) -> None:
        """A valid access token of the issuer, for this resource (the control case).

        expected: 200, the request reaches the MCP server
        """
        await self.start()
        response, body = await self.bearer(good_token())
        self.assertEqual(response.code, 200, body)
        self.assertEqual(self.events.refusals, [])
        self.assertNotEqual(self.upstream.received, [])


NOT_ACCEPTED = "the token's algorithm is not accepted"


class AlgorithmAttacks(TokenAttackTestCase):
    @run
    async def test_alg_none_is_refused(self) -> None:
        """`alg: none`, an unsigned token (RFC 8725 §2.1, §3.1).

        expected: 401 invalid_token (unsupported_algorithm)
        """
        await self.start()
        head = b64url(json.dumps({"alg": "none", "typ": "at+jwt", "kid": "rsa-1"}).encode())
        token = f"{head}.{b64url(json.dumps(token_claims()).encode())}."
        await self.assertInvalidToken(token, "unsupported_algorithm", NOT_ACCEPTED)

    @run
    async def test_hs256_keyed_with_the_issuers_pem_public_key_is_refused(self) -> None:
        """HS256 keyed with the issuer's RSA public key in PEM (RFC 8725 §2.1, §3.1).

        expected: 401 invalid_token (unsupported_algorithm)
        """
        await self.start()
        pem = RSA_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        await self.assertInvalidToken(
            hmac_token(pem, kid="rsa-1"), "unsupported_algorithm", NOT_ACCEPTED
        )

    @run
    async def test_hs256_keyed_with_the_issuers_der_public_key_is_refused(self) -> None:
        """HS256 keyed with the issuer's RSA public key in DER (RFC 8725 §2.1, §3.1).

        expected: 401 invalid_token (unsupported_algorithm)
        """
        await self.start()
        der = RSA_KEY.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        await self.assertInvalidToken(
            hmac_token(der, kid="rsa-1"), "unsupported_algorithm", NOT_ACCEPTED
        )

    @run
    async def test_hs256_keyed_with_the_issuers_jwk_is_refused(self) -> None:
        """HS256 keyed with the issuer's public JWK as published (RFC 8725 §2.1, §3.1).

        expected: 401 invalid_token (unsupported_algorithm)
        """
        await self.start()
        published = json.dumps(public_jwk(RSA_KEY, "rsa-1", alg="RS256")).encode()
        await self.assertInvalidToken(
            hmac_token(published, kid="rsa-1"), "unsupported_algorithm", NOT_ACCEPTED
        )

    @run
    async def test_hs256_keyed_with_the_public_key_fails_even_when_hs256_is_allowed(
        self,
    ) -> None:
        """HS256 keyed with the issuer's PEM public key, HS256 allowed with a shared secret
        (RFC 8725 §3.1: a key is used with one algorithm only).

        expected: 401 invalid_token (bad_signature): the shared secret, never a JWK, is the key
        """
        await self.start(algorithms=("RS256", "HS256"), shared_secret=b"s" * 32)
        pem = RSA_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        await self.assertInvalidToken(
            hmac_token(pem, kid="rsa-1"),
            "bad_signature",
            "the token's signature is not valid",
        )

    @run
    async def test_algorithm_outside_the_allowlist_is_refused(self) -> None:
        """A well-signed ES256 token when only RS256 is allowed (RFC 8725 §3.1).

        expected: 401 invalid_token (unsupported_algorithm)
        """
        await self.start(algorithms=("RS256",))
        self.authz.serve(
            "/jwks", jwks(public_jwk(RSA_KEY, "rsa-1"), public_jwk(EC_KEY, "ec-1", alg="ES256"))
        )
        token = mint(token_claims(), key=EC_KEY, alg="ES256", kid="ec-1")
        await self.assertInvalidToken(token, "unsupported_algorithm", NOT_ACCEPTED)


UNKNOWN_KEY = "the token is signed with a key the issuer does not list"


class KeyIdAttacks(TokenAttackTestCase):
    async def assertUnknownKid(self, kid: str) -> None:
        token = mint(token_claims(), kid=kid)
        await self.assertInvalidToken(token, "unknown_key", UNKNOWN_KEY)
        self.assertEqual(self.authz.requests[-1].path, b"/jwks")

    @run
    async def test_kid_that_is_a_path_is_only_a_name(self) -> None:
        """`kid` a path or file URL: `../../../../dev/null` (RFC 8725 §3.10).

        expected: 401 invalid_token (unknown_key); only the issuer's jwks_uri is fetched
        """
        await self.start()
        await self.assertUnknownKid("../../../../dev/null")

    @run
    async def test_kid_that_is_sql_is_only_a_name(self) -> None:
        """`kid` an SQL injection: `' OR 1=1 --` (RFC 8725 §3.10).

        expected: 401 invalid_token (unknown_key)
        """
        await self.start()
        await self.assertUnknownKid("rsa-1' OR '1'='1' --")

    @run
    async def test_kid_of_ten_kilobytes_is_refused(self) -> None:
        """`kid` a 10 KB string (RFC 8725 §3.10; within the header bound).

        expected: 401 invalid_token (unknown_key)
        """
        await self.start()
        await self.assertUnknownKid("k" * 10 * 1024)

    @run
    async def test_kid_that_is_a_number_is_malformed(self) -> None:
        """`kid` a number, not a string (RFC 7515 §4.1.4).

        expected: 401 invalid_token (malformed)
        """
        await self.start()
        header = {"alg": "RS256", "typ": "at+jwt", "kid": 1}
        token = rs256_token(header, json.dumps(token_claims()).encode())
        await self.assertInvalidToken(token, "malformed", "the token is not a valid JWT")
        self.assertEqual(self.authz.hits["/jwks"], 1, "nothing fetched")

    @run
    async def test_flood_of_unknown_kids_fetches_the_key_set_once_per_cooldown(self) -> None:
        """A flood of 50 tokens naming random unknown `kid`s (RFC 8725 §3.10; DoS on the AS).

        expected: 401 invalid_token (unknown_key) each; one JWKS fetch per 30 s cooldown
        """
        await self.start()
        for n in range(50):
            kid = hashlib.sha256(b"%d" % n).hexdigest()[:16]
            response, _ = await self.bearer(mint(token_claims(), kid=kid))
            self.assertEqual(response.code, 401)
        self.assertEqual(self.authz.hits["/jwks"], 2, "the start and one refetch")
        self.assertEqual({e.reason for e in self.events.refusals}, {"unknown_key"})
        await self.network.sleep(30.0)
        await self.bearer(mint(token_claims(), kid="after-the-cooldown"))
        self.assertEqual(self.authz.hits["/jwks"], 3, "one more once the cooldown is over")
        self.assertEqual(self.upstream.received, [])


class EmbeddedKeyAttacks(TokenAttackTestCase):
    """Keys named or carried by the token itself are never fetched nor trusted (RFC 8725
    §3.10, RFC 9068 §4): the attacker's key is really served where the token points."""

    async def start_with_attacker_keys(self) -> None:
        await self.start()
        self.authz.serve("/evil-jwks", jwks(public_jwk(RSA_KEY_2, "evil-1", alg="RS256")))
        pem = self_signed_certificate(RSA_KEY_2).public_bytes(serialization.Encoding.PEM)
        self.authz.serve("/evil-cert", pem)

    def assertNothingElseFetched(self) -> None:
        self.assertEqual({r.path for r in self.authz.requests}, {b"/jwks"})

    @run
    async def test_jku_header_is_never_fetched(self) -> None:
        """`jku` naming a JWK Set with the attacker's key (RFC 8725 §3.10, RFC 7515 §4.1.2).

        expected: 401 invalid_token (unknown_key); the jku URL is never fetched
        """
        await self.start_with_attacker_keys()
        token = mint(token_claims(), key=RSA_KEY_2, kid="evil-1", jku=self.authz_url + "/evil-jwks")
        await self.assertInvalidToken(token, "unknown_key", UNKNOWN_KEY)
        self.assertNothingElseFetched()

    @run
    async def test_x5u_header_is_never_fetched(self) -> None:
        """`x5u` naming the attacker's certificate (RFC 8725 §3.10, RFC 7515 §4.1.5).

        expected: 401 invalid_token (unknown_key); the x5u URL is never fetched
        """
        await self.start_with_attacker_keys()
        token = mint(token_claims(), key=RSA_KEY_2, kid="evil-1", x5u=self.authz_url + "/evil-cert")
        await self.assertInvalidToken(token, "unknown_key", UNKNOWN_KEY)
        self.assertNothingElseFetched()

    @run
    async def test_jwk_header_is_never_trusted(self) -> None:
        """`jwk` carrying the attacker's key under the issuer's kid (RFC 8725 §3.10,
        RFC 7515 §4.1.3).

        expected: 401 invalid_token (bad_signature): checked with the issuer's key
        """
        await self.start_with_attacker_keys()
        token = mint(token_claims(), key=RSA_KEY_2, jwk=public_jwk(RSA_KEY_2, "rsa-1"))
        await self.assertInvalidToken(token, "bad_signature", "the token's signature is not valid")
        self.assertNothingElseFetched()

    @run
    async def test_x5c_header_is_never_trusted(self) -> None:
        """`x5c` carrying the attacker's self-signed certificate (RFC 8725 §3.10,
        RFC 7515 §4.1.6).

        expected: 401 invalid_token (bad_signature): checked with the issuer's key
        """
        await self.start_with_attacker_keys()
        der = self_signed_certificate(RSA_KEY_2).public_bytes(serialization.Encoding.DER)
        token = mint(token_claims(), key=RSA_KEY_2, x5c=[base64.b64encode(der).decode()])
        await self.assertInvalidToken(token, "bad_signature", "the token's signature is not valid")
        self.assertNothingElseFetched()


class HeaderAttacks(TokenAttackTestCase):
    @run
    async def test_crit_header_is_refused(self) -> None:
        """`crit` naming an extension aigw does not implement (RFC 7515 §4.1.11).

        expected: 401 invalid_token (malformed)
        """
        await self.start()
        token = mint(token_claims(), crit=["urn:example:ext"], **{"urn:example:ext": True})
        await self.assertInvalidToken(token, "malformed", "the token is not a valid JWT")

    @run
    async def test_nested_jwt_is_refused(self) -> None:
        """A nested JWT: a valid access token signed again as the payload, `cty: JWT`
        (RFC 7519 §5.2, RFC 8725 §3.3: aigw accepts one signature over JSON claims).

        expected: 401 invalid_token (malformed)
        """
        await self.start()
        inner = good_token().encode()
        token = jwt.api_jws.encode(
            inner, RSA_KEY, "RS256", headers={"kid": "rsa-1", "typ": "at+jwt", "cty": "JWT"}
        )
        await self.assertInvalidToken(token, "malformed", "the token is not a valid JWT")


class ClaimAttacks(TokenAttackTestCase):
    @run
    async def test_expired_token_is_refused(self) -> None:
        """An expired token: `exp` a minute ago, beyond the 30 s leeway (RFC 7519 §4.1.4).

        expected: 401 invalid_token (expired)
        """
        await self.start()
        await self.assertInvalidToken(good_token(exp=NOW - 60), "expired", "the token has expired")

    @run
    async def test_not_yet_valid_token_is_refused(self) -> None:
        """A token not valid yet: `nbf` two minutes ahead (RFC 7519 §4.1.5).

        expected: 401 invalid_token (not_yet_valid)
        """
        await self.start()
        await self.assertInvalidToken(
            good_token(nbf=NOW + 120), "not_yet_valid", "the token is not valid yet"
        )

    @run
    async def test_far_future_iat_is_refused(self) -> None:
        """A far-future `iat`: issued ten years from now (RFC 7519 §4.1.6).

        expected: 401 invalid_token (not_yet_valid)
        """
        await self.start()
        await self.assertInvalidToken(
            good_token(iat=NOW + 10 * 365 * 86400, exp=NOW + 10 * 365 * 86400 + 600),
            "not_yet_valid",
            "the token was issued in the future",
        )

    @run
    async def test_wrong_issuer_is_refused(self) -> None:
        """A wrong `iss`: another tenant of the same authorization server (RFC 8725 §3.8,
        RFC 9068 §4).

        expected: 401 invalid_token (wrong_issuer)
        """
        await self.start()
        await self.assertInvalidToken(
            good_token(iss=ISSUER.replace("tenant1", "tenant2")),
            "wrong_issuer",
            "the token was not issued by the expected issuer",
        )

    @run
    async def test_audience_of_a_sibling_resource_is_refused(self) -> None:
        """The `aud` of a sibling resource of the same issuer (RFC 8725 §3.9, RFC 9700 §2.3,
        MCP Authorization "Token Audience Binding and Validation", "Access Token Privilege
        Restriction").

        expected: 401 invalid_token (wrong_audience)
        """
        await self.start()
        await self.assertInvalidToken(
            good_token(aud="http://127.0.0.1:1975/mcp-admin"),
            "wrong_audience",
            "the token is not meant for this resource",
        )

    @run
    async def test_audience_of_an_upstream_is_refused(self) -> None:
        """The `aud` of an upstream MCP server behind aigw (MCP security best practices
        "Token Passthrough"; RFC 9700 §2.3, RFC 8707).

        expected: 401 invalid_token (wrong_audience)
        """
        await self.start()
        await self.assertInvalidToken(
            good_token(aud=self.upstream_url),
            "wrong_audience",
            "the token is not meant for this resource",
        )

    @run
    async def test_id_token_instead_of_an_access_token_is_refused(self) -> None:
        """An OpenID Connect ID token of the same issuer, `typ: JWT`, `aud` the client
        (RFC 9068 §4, RFC 8725 §2.8, §3.12: an ID token is not an access token).

        expected: 401 invalid_token (wrong_audience)
        """
        await self.start()
        id_claims = token_claims(
            aud="client-1", azp="client-1", nonce="n-0S6_WzA2Mj", auth_time=NOW - 30, scope=None
        )
        await self.assertInvalidToken(
            mint(id_claims, typ="JWT"),
            "wrong_audience",
            "the token is not meant for this resource",
        )

    @run
    async def test_token_signed_by_another_issuers_key_is_refused(self) -> None:
        """A token with our `iss` and `kid` signed by another issuer's key (RFC 8725 §3.8,
        RFC 9068 §4: keys only from the configured issuer's JWK Set).

        expected: 401 invalid_token (bad_signature)
        """
        await self.start()
        await self.assertInvalidToken(
            mint(token_claims(), key=RSA_KEY_2, kid="rsa-1"),
            "bad_signature",
            "the token's signature is not valid",
        )


class TransportAttacks(TokenAttackTestCase):
    @run
    async def test_duplicate_authorization_headers_are_invalid_request(self) -> None:
        """Two `Authorization` headers, each a valid token (RFC 6750 §3.1, RFC 9110 §5.3).

        expected: 400 invalid_request (malformed)
        """
        await self.start()
        token = b"Bearer " + good_token().encode()
        self.assertRefused(
            await self.send([token, token]),
            400,
            "invalid_request",
            "malformed",
            "several Authorization headers were sent",
        )

    @run
    async def test_token_in_the_query_string_is_invalid_request(self) -> None:
        """A valid token in the query string, `?access_token=` (MCP Authorization
        "Token Requirements": MUST NOT; RFC 9700 §4.3.2, RFC 6750 §2.3).

        expected: 400 invalid_request (malformed)
        """
        await self.start()
        self.assertRefused(
            await self.send(query="?access_token=" + good_token()),
            400,
            "invalid_request",
            "malformed",
            "access tokens must be sent in the Authorization header, not the URL",
        )

    @run
    async def test_token_in_a_form_body_is_no_token(self) -> None:
        """A valid token in a form-encoded body, `access_token=` (MCP Authorization
        "Token Requirements": only the Authorization header; RFC 6750 §2.2).

        expected: 401 without an error code (missing): the request has no token
        """
        await self.start()
        self.assertRefused(
            await self.send(
                data=b"access_token=" + good_token().encode(),
                content_type="application/x-www-form-urlencoded",
            ),
            401,
            None,
            "missing",
            "an access token is required",
        )

    @run
    async def test_oversized_token_is_431(self) -> None:
        """A 20 KB token, over the 16 KiB header bound (RFC 6585 §5).

        expected: 431 Request Header Fields Too Large, then the connection closes
        """
        await self.start()
        response, body = await self.send([b"Bearer " + b"a" * 20_000])
        # Connection: close is the client's business (Agent keeps it out of the headers);
        # tests/unit/web/test_server.py sees it on the wire.
        self.assertEqual(response.code, 431)
        self.assertEqual(body["error"], "header_fields_too_large")
        self.assertEqual(self.events.refusals, [])
        self.assertEqual(self.upstream.received, [])

    @run
    async def test_non_utf8_token_is_invalid_request(self) -> None:
        """A token of bytes that are not UTF-8 nor a b64token (RFC 6750 §2.1, RFC 8725 §3.7).

        expected: 400 invalid_request (malformed)
        """
        await self.start()
        self.assertRefused(
            await self.send([b"Bearer \xff\xfe\xc3\x28" + good_token().encode()]),
            400,
            "invalid_request",
            "malformed",
            "the Bearer credentials are not a valid b64token",
        )
