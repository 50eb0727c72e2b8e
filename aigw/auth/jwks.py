"""The issuer's signing keys (RFC 7517 JWK Set), fetched and kept fresh.

The key set is fetched at start, refreshed periodically, and refetched at once
(within a cooldown, one fetch for all waiters) when a token names a key we do
not know, which is how issuers roll keys.  When the authorization server is
down or answers garbage the last good keys stay in use: only tokens naming
unknown keys fail, and they fail closed.  Each fetch's outcome is reported to
the observer (``AuthServerFetched``): the metrics count them and age the keys.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from aigw.auth.errors import TokenRejected
from aigw.config import AuthConfig
from aigw.discovery import discover_metadata
from aigw.events import AuthServerFetched, GatewayObserver
from aigw.httpjson import Clock, FetchFailed, HTTPClient, Timer, fetch, parse_json_object

#: Which key type (and curve) each asymmetric JWS algorithm needs (RFC 7518 §3,
#: RFC 8037 §3.1).  Checking it stops a key being used with an algorithm its
#: owner never meant (RFC 8725 §3.1).
KEY_TYPE_FOR_ALGORITHM: Mapping[str, tuple[str, frozenset[str] | None]] = {
    **{f"{p}{n}": ("RSA", None) for p in ("RS", "PS") for n in (256, 384, 512)},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
SUPPORTED_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
#: RFC 7518 §3.3: RSA keys of 2048 bits or larger MUST be used.
MIN_RSA_BITS = 2048
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*no-(?:cache|store)\b", re.IGNORECASE)


class IKeyStore(Interface):
    """Where a JWT verifier finds the public key of a token's signature."""

    ready = Attribute("True once a key set has been loaded (for /readyz).")

    def get_key(kid: str | None, alg: str) -> Deferred[Any]:
        """The public key named ``kid`` that fits ``alg``; fails with TokenRejected."""


class KeySource(Protocol):
    """IKeyStore as a static type (mypy cannot read zope interfaces unaided)."""

    def get_key(self, kid: str | None, alg: str) -> Deferred[Any]: ...


@attrs.frozen
class VerificationKey:
    """One usable public key of the set."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: Any

    def fits(self, alg: str) -> bool:
        """Whether a token signed with ``alg`` may be checked with this key."""
        if self.alg is not None and self.alg != alg:
            return False
        kty, curves = KEY_TYPE_FOR_ALGORITHM.get(alg, ("", None))
        return self.kty == kty and (curves is None or self.crv in curves)


def cache_lifetime(cache_control: str | None) -> float | None:
    """The freshness lifetime a Cache-Control header gives, if any (RFC 9111 §5.2.2)."""
    if not cache_control:
        return None
    if _NO_CACHE.search(cache_control):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


@implementer(IKeyStore)
class KeyStore(Service):
    """The key set of ``config.issuer``, as a service of the daemon; ``observer``
    hears how each fetch ended."""

    log = Logger()

    def __init__(
        self,
        config: AuthConfig,
        http: HTTPClient,
        clock: Clock,
        observer: GatewayObserver | None = None,
    ) -> None:
        self._config = config
        self._observer = observer
        self._http = http
        self._clock = clock
        self._allowed = frozenset(config.algorithms) & KEY_TYPE_FOR_ALGORITHM.keys()
        self._keys: tuple[VerificationKey, ...] = ()
        self._loaded = False
        self._jwks_uri = config.jwks_uri
        self._waiters: list[Deferred[None]] | None = None
        self._running_fetch: Deferred[None] | None = None
        self._next: Timer | None = None
        self._last_forced = -math.inf
        self.fetches = 0

    @property
    def ready(self) -> bool:
        """Keys are loaded, or none are needed (only HS* algorithms allowed)."""
        return self._loaded or not self._allowed

    @property
    def keys(self) -> tuple[VerificationKey, ...]:
        return self._keys

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if self._allowed:
            self.refresh()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        if self._running_fetch is not None:
            self._running_fetch.cancel()
        return None

    def refresh(self) -> Deferred[None]:
        """Fetch the key set now, or join the fetch under way (single flight).

        The Deferred fires (never fails) once that fetch is over, whatever
        its outcome; a failure leaves the keys as they were.
        """
        waiter: Deferred[None] = Deferred()
        if self._waiters is not None:
            self._waiters.append(waiter)
            return waiter
        self._waiters = [waiter]
        self.fetches += 1
        running: Deferred[float] = Deferred.fromCoroutine(self._load())
        self._running_fetch = running.addErrback(self._load_failed).addCallback(self._finish)
        return waiter

    def get_key(self, kid: str | None, alg: str) -> Deferred[Any]:
        return ensureDeferred(self._get_key(kid, alg))

    async def _get_key(self, kid: str | None, alg: str) -> Any:
        found = self._find(kid, alg)
        if found is not None:
            return found.key
        # An unknown kid may be a key the issuer just rolled in: refetch, at
        # most once per cooldown, joining a fetch already under way.
        now = self._clock.seconds()
        if self._waiters is not None or now - self._last_forced >= (
            self._config.jwks_unknown_kid_cooldown
        ):
            if self._waiters is None:
                self._last_forced = now
            await self.refresh()
            found = self._find(kid, alg)
            if found is not None:
                return found.key
        if not self._loaded:
            raise TokenRejected("unavailable", "the issuer's signing keys are not available")
        raise TokenRejected(
            "unknown_key", "the token is signed with a key the issuer does not list"
        )

    def _find(self, kid: str | None, alg: str) -> VerificationKey | None:
        named = [k for k in self._keys if kid is None or k.kid == kid]
        fitting = [k for k in named if k.fits(alg)]
        if named and not fitting:
            raise TokenRejected("unsupported_algorithm", f"the token's key is not an {alg} key")
        if kid is None and len(fitting) > 1:
            raise TokenRejected("unknown_key", "the token names no key (kid) and several fit")
        return fitting[0] if fitting else None

    async def _load(self) -> float:
        """Fetch and install a new key set; returns when to refresh next."""
        config = self._config
        if self._jwks_uri is None:
            document = await discover_metadata(
                self._http, self._clock, config.issuer, config.http_timeout
            )
            self._jwks_uri = _jwks_uri_of(document)
        got = await fetch(
            self._http,
            self._clock,
            "GET",
            self._jwks_uri,
            timeout=config.http_timeout,
            max_bytes=config.jwks_max_bytes,
            headers={"Accept": ["application/jwk-set+json, application/json"]},
        )
        if got.status != 200:
            raise FetchFailed(f"{self._jwks_uri} answered HTTP {got.status}")
        keys = self._parse(parse_json_object(got.body, self._jwks_uri))
        changed = keys != self._keys
        self._keys = keys
        self._loaded = True
        self._report(succeeded=True)
        if changed:
            self.log.info(
                "Loaded signing keys {kids} from {uri}",
                kids=[k.kid for k in keys],
                uri=self._jwks_uri,
            )
        lifetime = cache_lifetime(got.headers.get("cache-control"))
        delay = config.jwks_refresh_interval
        if lifetime is not None:
            delay = min(delay, lifetime)
        return max(delay, config.jwks_min_refresh_interval)

    def _parse(self, document: Mapping[str, Any]) -> tuple[VerificationKey, ...]:
        listed = document.get("keys")
        if not isinstance(listed, list):
            raise FetchFailed("the JWK Set has no 'keys' list")
        if len(listed) > self._config.jwks_max_keys:
            raise FetchFailed(
                f"the JWK Set lists {len(listed)} keys, more than {self._config.jwks_max_keys}"
            )
        keys = []
        for index, jwk in enumerate(listed):
            key = self._usable(jwk, index)
            if key is not None:
                keys.append(key)
        if not keys:
            raise FetchFailed("the JWK Set holds no usable key")
        return tuple(keys)

    def _usable(self, jwk: object, index: int) -> VerificationKey | None:
        """The key, or None (logged) when it is not one we may verify with."""
        read = read_key(jwk, self._allowed)
        if isinstance(read, VerificationKey):
            return read
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        self.log.warn("Skipping JWK {index} (kid {kid!r}): {why}", index=index, kid=kid, why=read)
        return None

    def _load_failed(self, failure: Any) -> float:
        if self.running:  # a fetch cut short by stopping is no failure of the issuer's
            self._report(succeeded=False)
        self.log.warn(
            "Cannot load the signing keys of {issuer} (keeping {count} known keys): {why}",
            issuer=self._config.issuer,
            count=len(self._keys),
            why=failure.getErrorMessage(),
        )
        return self._config.jwks_min_refresh_interval

    def _report(self, succeeded: bool) -> None:
        if self._observer is not None:
            self._observer.auth_server_fetched(AuthServerFetched("jwks", succeeded))

    def _finish(self, delay: float) -> None:
        waiters, self._waiters, self._running_fetch = self._waiters or [], None, None
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = self._clock.callLater(delay, self.refresh) if self.running else None
        for waiter in waiters:
            waiter.callback(None)


def read_key(jwk: object, allowed: frozenset[str]) -> VerificationKey | str:
    """The verification key of one JWK, or why it may not be used with ``allowed``
    algorithms (also for ``aigw doctor``, which judges a key set the same way)."""
    why = _skip_reason(jwk, allowed)
    if why is not None:
        return why
    assert isinstance(jwk, dict)
    try:
        parsed = jwt.PyJWK(jwk).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as error:
        return f"cannot be read: {error}"
    if isinstance(parsed, RSAPublicKey) and parsed.key_size < MIN_RSA_BITS:
        return f"its RSA modulus has {parsed.key_size} bits, fewer than {MIN_RSA_BITS}"
    return VerificationKey(
        kid=jwk.get("kid"), kty=jwk["kty"], crv=jwk.get("crv"), alg=jwk.get("alg"), key=parsed
    )


def _skip_reason(jwk: object, allowed: frozenset[str]) -> str | None:
    """Why a JWK must not be used (RFC 7517 §4.2 use, §4.4 alg; RFC 8725 §3.1)."""
    if not isinstance(jwk, dict):
        return "not a JSON object"
    for member in ("kid", "kty", "alg", "crv", "use"):
        # RFC 7517 §4, RFC 7518 §6: these members are strings; a list or an object
        # (unhashable) must skip this key, not fail the whole set.
        if jwk.get(member) is not None and not isinstance(jwk[member], str):
            return f"its {member} is not a string"
    kty = jwk.get("kty")
    if kty not in SUPPORTED_KEY_TYPES:
        return f"unsupported key type {kty!r}"
    if "use" in jwk and jwk["use"] != "sig":
        return f"its use is {jwk['use']!r}, not 'sig'"
    alg = jwk.get("alg")
    if alg is not None and alg not in allowed:
        return f"its algorithm {alg!r} is not allowed"
    if "d" in jwk:
        return "it holds private key material"
    families = {KEY_TYPE_FOR_ALGORITHM[a] for a in allowed}
    if not any(kty == t and (c is None or jwk.get("crv") in c) for t, c in families):
        return f"no allowed algorithm uses a {kty} key with curve {jwk.get('crv')!r}"
    return None


def _jwks_uri_of(document: Mapping[str, Any]) -> str:
    uri = document.get("jwks_uri")
    if not isinstance(uri, str) or urllib.parse.urlsplit(uri).scheme not in ("https", "http"):
        raise FetchFailed("the issuer's metadata has no usable jwks_uri")
    return uri
