"""Access token verification: JWT (RFC 9068) and introspection (RFC 7662).

Every check follows the JWT BCP (RFC 8725): an explicit algorithm allowlist,
keys found only in the configured issuer's key set, exact issuer and audience
matches, and a failure reason for each refusal.
"""

from __future__ import annotations

import hashlib
import math
import types
from collections.abc import Mapping
from typing import Any, Protocol

import jwt
from twisted.internet.defer import Deferred, succeed
from zope.interface import Interface, implementer

from aigw.auth.errors import TokenRejected
from aigw.auth.jwks import KEY_TYPE_FOR_ALGORITHM, KeySource
from aigw.config import AuthConfig, IntrospectionConfig
from aigw.events import AuthServerFetched, GatewayObserver
from aigw.httpjson import (
    Clock,
    FetchFailed,
    HTTPClient,
    client_secret_basic,
    fetch,
    parse_json_object,
)
from aigw.lru import LRU
from aigw.principal import Principal

SYMMETRIC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
MAX_INTROSPECTION_BYTES = 256 * 1024
#: RFC 9068 §4: the typ header of a JWT access token.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: Plain JWT types, accepted unless ``require_access_token_type`` (RFC 7519 §5.1).
PLAIN_TYPES = frozenset({"jwt", "application/jwt"})
#: base64url's alphabet (RFC 4648 §5) and the dots between a JWS's parts.
_B64URL_AND_DOTS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


class ITokenVerifier(Interface):
    """Turns a bearer token into the principal it speaks for."""

    def verify(token: str) -> Deferred[Principal]:
        """The principal of ``token``; fails with TokenRejected."""


class Verifier(Protocol):
    """ITokenVerifier as a static type (mypy cannot read zope interfaces unaided)."""

    def verify(self, token: str) -> Deferred[Principal]: ...


def looks_like_jwt(token: str) -> bool:
    """A JWS compact serialization's shape (RFC 7515 §7.1): three base64url parts, the
    first two not empty.  Asked of every request's token before the cache, so checked
    in C, by ``bytes.translate`` and ``find``, not by a regex that walks the token
    character by character (about twice the CPU time for a 900-byte token)."""
    if not token.isascii():
        return False
    raw = token.encode("ascii")
    if raw.translate(None, _B64URL_AND_DOTS):
        return False
    first = raw.find(b".")
    second = raw.find(b".", first + 1)
    return first > 0 and second > first + 1 and raw.find(b".", second + 1) < 0


def _hints(claims: Mapping[str, Any]) -> dict[str, str]:
    """Identifying claims for logs (sub, client_id, jti), never the token."""
    names = (("sub", "sub"), ("client_id", "client_id"), ("azp", "client_id"), ("jti", "jti"))
    hints: dict[str, str] = {}
    for claim, hint in names:
        value = claims.get(claim)
        if isinstance(value, str) and hint not in hints:
            hints[hint] = value[:128]
    return hints


def _number(value: object) -> float | None:
    """A NumericDate (RFC 7519 §2) as a float, or None when it is not one.

    Booleans, integers no float can hold and NaN or infinities are not
    NumericDates: NaN in particular compares false with everything, so an
    ``exp`` of NaN would never expire (RFC 8725 §3: fail closed).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """``scope`` (RFC 9068 §2.2.3: space-separated) or ``scp``; lists accepted for either."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list):
            return frozenset(s for s in value if isinstance(s, str))
    return frozenset()


def _client_id(claims: Mapping[str, Any]) -> str | None:
    """``client_id`` (RFC 9068 §2.2, RFC 7662 §2.2) or OIDC's ``azp``."""
    for name in ("client_id", "azp"):
        value = claims.get(name)
        if isinstance(value, str):
            return value
    return None


def check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audiences: tuple[str, ...],
    now: float,
    leeway: float,
    require: tuple[str, ...] = ("iss", "aud", "exp"),
) -> Principal:
    """Check the registered claims (RFC 7519 §4.1) and build the principal.

    Claims named in ``require`` must be present; the others are checked when
    present (introspection responses may leave them out, RFC 7662 §2.2).
    """
    hints = _hints(claims)

    def reject(reason: Any, description: str) -> TokenRejected:
        return TokenRejected(reason, description, hints)

    iss = claims.get("iss")
    if (iss is not None or "iss" in require) and iss != issuer:
        # RFC 9068 §4, RFC 8725 §3.8: the issuer must be exactly the configured one.
        raise reject("wrong_issuer", "the token was not issued by the expected issuer")
    aud = claims.get("aud")
    if aud is not None or "aud" in require:
        # RFC 9068 §4, RFC 8707, RFC 8725 §3.9: the token must be meant for us.
        listed = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in audiences for a in listed):
            raise reject("wrong_audience", "the token is not meant for this resource")
    exp = _number(claims.get("exp"))
    if exp is None and ("exp" in require or "exp" in claims):
        raise reject("malformed", "the token has no valid exp claim")
    if exp is not None and now >= exp + leeway:
        raise reject("expired", "the token has expired")  # RFC 7519 §4.1.4
    nbf = _number(claims.get("nbf"))
    if "nbf" in claims and nbf is None:
        raise reject("malformed", "the token's nbf claim is not a number")
    if nbf is not None and now + leeway < nbf:
        raise reject("not_yet_valid", "the token is not valid yet")  # RFC 7519 §4.1.5
    iat = _number(claims.get("iat"))
    if "iat" in claims and iat is None:
        raise reject("malformed", "the token's iat claim is not a number")
    if iat is not None and now + leeway < iat:
        raise reject("not_yet_valid", "the token was issued in the future")  # RFC 7519 §4.1.6
    principal = principal_of(claims, issuer)
    if principal is None:
        raise reject("malformed", "the token names no subject (sub) nor client")
    return principal


def principal_of(claims: Mapping[str, Any], issuer: str) -> Principal | None:
    """Who verified ``claims`` speak for: ``sub`` (else the client), ``client_id`` or
    ``azp``, ``scope`` or ``scp``, every claim; None when they name no subject nor client.
    ``aigw access explain`` builds its principal here too, as a token would."""
    client_id = _client_id(claims)
    sub = claims.get("sub")
    subject = sub if isinstance(sub, str) else client_id
    if subject is None:
        return None
    jti = claims.get("jti")
    return Principal(
        issuer=issuer,
        subject=subject,
        client_id=client_id,
        scopes=_scopes(claims),
        claims=types.MappingProxyType(dict(claims)),
        token_id=jti if isinstance(jti, str) else None,
        expires_at=_number(claims.get("exp")),
    )


@implementer(ITokenVerifier)
class JWTVerifier:
    """Verifies signed JWT access tokens (RFC 9068) of the configured issuer."""

    def __init__(self, config: AuthConfig, keys: KeySource, clock: Clock) -> None:
        self._config = config
        self._keys = keys
        self._clock = clock
        allowed = set(config.algorithms) & (KEY_TYPE_FOR_ALGORITHM.keys() | SYMMETRIC_ALGORITHMS)
        if config.shared_secret is None:
            allowed -= SYMMETRIC_ALGORITHMS
        self._allowed = frozenset(allowed)  # never "none": it is in neither set
        self.verifications = 0

    def verify(self, token: str) -> Deferred[Principal]:
        return Deferred.fromCoroutine(self._verify(token))

    async def _verify(self, token: str) -> Principal:
        self.verifications += 1
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed", "the token is not a valid JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._allowed:
            # RFC 8725 §3.1: only algorithms on the allowlist; "none" never.
            raise TokenRejected("unsupported_algorithm", "the token's algorithm is not accepted")
        self._check_type(header)
        if "crit" in header:
            # RFC 7515 §4.1.11: extensions we do not understand make it invalid.
            raise TokenRejected("malformed", "the token has critical header extensions")
        # jku, x5u, jwk and x5c are never read: keys come only from the
        # configured issuer's key set (RFC 8725 §3.10, RFC 9068 §4).
        if alg in SYMMETRIC_ALGORITHMS:
            key: Any = self._config.shared_secret
        else:
            kid = header.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise TokenRejected("malformed", "the token's kid is not a string")
            key = await self._keys.get_key(kid, alg)
        claims = self._decode(token, key, alg)
        return check_claims(
            claims,
            issuer=self._config.issuer,
            audiences=self._config.audiences,
            now=self._clock.seconds(),
            leeway=self._config.leeway,
        )

    def _check_type(self, header: Mapping[str, Any]) -> None:
        """RFC 9068 §4 / RFC 8725 §3.11: explicit typing keeps other JWTs out.

        ``at+jwt`` is always accepted; with ``require_access_token_type`` it is
        the only type; without, an untyped or plain ``JWT`` token passes, but a
        token explicitly typed as something else (an ID token, a logout token)
        never does.
        """
        typ = header.get("typ")
        normal = typ.lower() if isinstance(typ, str) else typ
        if normal in ACCESS_TOKEN_TYPES:
            return
        if not self._config.require_access_token_type and (normal is None or normal in PLAIN_TYPES):
            return
        raise TokenRejected("wrong_type", "the token is not a JWT access token (typ at+jwt)")

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        """Check the signature only; claims are checked with our clock afterwards."""
        options: Any = {
            "verify_signature": True,
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_aud": False,
            "verify_iss": False,
            "verify_sub": False,
            "verify_jti": False,
            "require": [],
        }
        try:
            return jwt.decode(token, key=key, algorithms=[alg], options=options)
        except jwt.InvalidSignatureError:
            raise TokenRejected("bad_signature", "the token's signature is not valid") from None
        except jwt.InvalidKeyError:
            raise TokenRejected(
                "unsupported_algorithm", "the token's key does not fit its alg"
            ) from None
        except jwt.PyJWTError:
            raise TokenRejected("malformed", "the token is not a valid JWT") from None


@implementer(ITokenVerifier)
class IntrospectionVerifier:
    """Asks the authorization server about opaque tokens (RFC 7662), failing closed;
    ``observer`` hears whether each request was answered."""

    def __init__(
        self,
        config: IntrospectionConfig,
        auth: AuthConfig,
        http: HTTPClient,
        clock: Clock,
        observer: GatewayObserver | None = None,
    ) -> None:
        self._config = config
        self._observer = observer
        self._auth = auth
        self._http = http
        self._clock = clock
        self._authorization = client_secret_basic(config.client_id, config.client_secret)

    def verify(self, token: str) -> Deferred[Principal]:
        return Deferred.fromCoroutine(self._verify(token))

    async def _verify(self, token: str) -> Principal:
        try:
            got = await fetch(
                self._http,
                self._clock,
                "POST",
                self._config.endpoint,
                timeout=self._config.timeout,
                max_bytes=MAX_INTROSPECTION_BYTES,
                data={"token": token, "token_type_hint": "access_token"},
                headers={
                    "Authorization": [self._authorization],
                    "Accept": ["application/json"],
                },
            )
            if got.status != 200:
                raise FetchFailed(f"the introspection endpoint answered HTTP {got.status}")
            answer = parse_json_object(got.body, self._config.endpoint)
        except Exception as error:
            self._report(succeeded=False)
            # RFC 7662 §4: when introspection fails, the token is not accepted.
            raise TokenRejected(
                "unavailable", "the token cannot be checked now, try again later"
            ) from error
        self._report(succeeded=True)
        if answer.get("active") is not True:
            # RFC 7662 §2.2: inactive (revoked, expired, unknown) tokens say no more.
            raise TokenRejected("inactive", "the token is not active")
        return check_claims(
            answer,
            issuer=self._auth.issuer,
            audiences=self._auth.audiences,
            now=self._clock.seconds(),
            leeway=self._auth.leeway,
            require=(),
        )

    def _report(self, succeeded: bool) -> None:
        if self._observer is not None:
            self._observer.auth_server_fetched(AuthServerFetched("introspection", succeeded))


@implementer(ITokenVerifier)
class CachingVerifier:
    """Remembers accepted tokens until their ``exp``, or for ``max_age`` seconds at
    most, in a bounded LRU.

    Keyed by the SHA-256 of the token, so the cache never holds tokens.
    Refusals are not cached, and a principal without ``expires_at`` is never
    cached (nothing bounds how long it stays true).  A cached JWT stays accepted
    after its signing key leaves the key set, until it expires.  ``max_age``
    bounds what an introspection said (``auth.introspection.cache_ttl``): an opaque
    token is usually chosen so that revoking it takes effect, and RFC 7662 section 4
    warns that a cached answer outlives a revocation; 0 caches nothing.
    """

    def __init__(
        self, wrapped: Verifier, clock: Clock, max_entries: int, max_age: float | None = None
    ) -> None:
        self._wrapped = wrapped
        self._clock = clock
        self._max_age = max_age
        #: The principal, and until when it is trusted.
        self._entries: LRU[bytes, tuple[Principal, float]] = LRU(max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token: str) -> Deferred[Principal]:
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        cached = self._entries.get(key)
        if cached is not None:
            if self._clock.seconds() < cached[1]:
                return succeed(cached[0])
            self._entries.pop(key)
        verified: Deferred[Principal] = self._wrapped.verify(token)
        return verified.addCallback(self._store, key)

    def _store(self, principal: Principal, key: bytes) -> Principal:
        until = principal.expires_at
        if until is None or self._max_age == 0:
            return principal
        now = self._clock.seconds()
        if self._max_age is not None:
            until = min(until, now + self._max_age)
        if now < until:
            self._entries.put(key, (principal, until))
        return principal


@implementer(ITokenVerifier)
class DispatchingVerifier:
    """JWT-shaped tokens to the JWT verifier, others to introspection if any."""

    def __init__(self, jwt_verifier: Verifier, opaque: Verifier | None) -> None:
        self._jwt = jwt_verifier
        self._opaque = opaque

    def verify(self, token: str) -> Deferred[Principal]:
        if looks_like_jwt(token):
            verified: Deferred[Principal] = self._jwt.verify(token)
            return verified
        if self._opaque is not None:
            introspected: Deferred[Principal] = self._opaque.verify(token)
            return introspected
        return Deferred.fromCoroutine(_refuse_opaque())


async def _refuse_opaque() -> Principal:
    raise TokenRejected("malformed", "the token is not a JWT")


def build_verifier(
    auth: AuthConfig,
    keys: KeySource,
    http_client: HTTPClient,
    clock: Clock,
    observer: GatewayObserver | None = None,
) -> Verifier:
    """The verifier for ``auth``, each path behind its own cache; ``observer`` hears
    of each introspection request."""
    jwt_verifier = CachingVerifier(JWTVerifier(auth, keys, clock), clock, auth.token_cache_size)
    opaque = None
    if auth.introspection is not None:
        opaque = CachingVerifier(
            IntrospectionVerifier(auth.introspection, auth, http_client, clock, observer),
            clock,
            auth.introspection.cache_size,
            auth.introspection.cache_ttl,
        )
    return DispatchingVerifier(jwt_verifier, opaque)
