"""How much a verification costs, with and without the CachingVerifier.

Runs the real JWTVerifier over an in-memory key store (no network, no reactor):
the verifiers return already-fired Deferreds, so each call is measured whole.

    .venv/bin/python bench/bench_tokens.py [--number N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aigw.auth.tokens import CachingVerifier, JWTVerifier, Verifier
from aigw.config import AuthConfig

ISSUER = "https://as.example"
AUDIENCE = "https://gw.example/mcp"
NOW = 1_800_000_000


class StaticKeys:
    """An IKeyStore with one key, so only verification is measured."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def get_key(self, kid: str | None, alg: str) -> Deferred[Any]:
        return succeed(self.key)


def token(private: Any, alg: str) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user",
        "client_id": "client",
        "scope": "mcp:read mcp:write",
        "jti": "1",
        "iat": NOW,
        "exp": NOW + 3600,
    }
    return jwt.encode(claims, private, alg, headers={"kid": "k", "typ": "at+jwt"})


def per_call(verifier: Verifier, value: str, number: int, repeat: int) -> float:
    """Median seconds per verification over ``repeat`` runs of ``number`` calls."""

    def once() -> None:
        result: list[object] = []
        verifier.verify(value).addBoth(result.append)
        if not result or isinstance(result[0], Failure):
            raise RuntimeError(f"verification failed: {result}")

    once()  # warm up (and fill the cache)
    runs = timeit.repeat(once, number=number, repeat=repeat)
    return statistics.median(runs) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    clock = Clock()
    clock.advance(NOW)
    config = AuthConfig(issuer=ISSUER, audiences=(AUDIENCE,), jwks_uri="https://as.example/j")
    cases = [
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ]
    print(f"{'alg':6} {'uncached':>12} {'cached':>12} {'ratio':>8}")
    for alg, private in cases:
        plain = JWTVerifier(config, StaticKeys(private.public_key()), clock)
        cached = CachingVerifier(
            JWTVerifier(config, StaticKeys(private.public_key()), clock), clock, 10000
        )
        value = token(private, alg)
        slow = per_call(plain, value, args.number, args.repeat)
        fast = per_call(cached, value, args.number, args.repeat)
        print(f"{alg:6} {slow * 1e6:9.1f} µs {fast * 1e6:9.1f} µs {slow / fast:7.1f}x")


if __name__ == "__main__":
    main()
