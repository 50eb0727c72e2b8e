"""atheris harness for aigw's parsers (issue 16 item 3): ``make fuzz FUZZ_SECONDS=60``.

One target per parser, chosen by the first argument; the rest goes to libFuzzer
(``-max_total_time=N``, ``-runs=N``, a corpus directory)::

    python bench/fuzz/parsers.py jsonrpc -max_total_time=60

Targets: ``jsonrpc`` (``protocol/jsonrpc.parse_body``), ``sse`` (``protocol/sse``:
events, the bound, and chunking never changing the events), ``header``
(``protocol/revision.decode_header_value`` and its round trip), ``config``
(``config.parse_config``: a Config or ``ConfigError``), ``jwt`` (the JWT header and
claims checks of ``auth/tokens.JWTVerifier``: ``TokenRejected`` or a principal).
Anything else raised is a finding: libFuzzer stops and writes the input as
``crash-*``.  The hypothesis strategies of tests/unit/fuzz/ run in ``make test``;
this explores further, coverage-guided, for as long as it is given.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import atheris

# Coverage of aigw and of the parsers it calls (PyYAML, PyJWT), imported here first.
with atheris.instrument_imports(include=["aigw", "yaml", "jwt"]):
    import jwt

    from aigw.auth.errors import TokenRejected
    from aigw.auth.tokens import JWTVerifier
    from aigw.config import AuthConfig, ConfigError, parse_config
    from aigw.protocol import jsonrpc
    from aigw.protocol.revision import decode_header_value, encode_header_value
    from aigw.protocol.sse import SSEError, SSEParser

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

NOW = 1_800_000_000.0
ISSUER = "https://as.example"
AUDIENCE = "http://127.0.0.1:1975/mcp"
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def fuzz_jsonrpc(data: bytes) -> None:
    parsed = jsonrpc.parse_body(data)
    if parsed.error is not None:
        assert parsed.error.code < 0
        assert not parsed.messages
        return
    assert parsed.messages
    for message in parsed.messages:
        jsonrpc.dumps(jsonrpc.to_dict(message))


def fuzz_sse(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    bound = provider.ConsumeIntInRange(1, 256)
    cuts = sorted(
        provider.ConsumeIntInRange(0, 512) for _ in range(provider.ConsumeIntInRange(0, 6))
    )
    stream = provider.ConsumeBytes(provider.remaining_bytes())
    whole = SSEParser(max_event_bytes=bound)
    try:
        expected = whole.feed(stream)
    except SSEError:
        return
    chunked, got, start = SSEParser(max_event_bytes=bound), [], 0
    for cut in (c for c in cuts if c <= len(stream)):
        got += chunked.feed(stream[start:cut])
        start = cut
    got += chunked.feed(stream[start:])
    assert got == expected, (got, expected)


def fuzz_header(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    decoded = decode_header_value(text)
    assert decoded is None or isinstance(decoded, str)
    assert decode_header_value(encode_header_value(text)) == text


def fuzz_config(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    try:
        parse_config(text, env={"X": "x"})
    except ConfigError as error:
        if not error.problems:
            raise AssertionError("ConfigError without a problem") from error


class _Keys:
    """The issuer's one key, at once: the fuzzer reaches the checks, not the network."""

    def get_key(self, kid: str | None, alg: str) -> Deferred[object]:
        return succeed(_KEY.public_key())


_clock = Clock()
_clock.advance(NOW)
_verifier = JWTVerifier(
    AuthConfig(issuer=ISSUER, audiences=(AUDIENCE,), jwks_uri=ISSUER + "/jwks"),
    _Keys(),  # type: ignore[arg-type]
    _clock,
)


def fuzz_jwt(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    if provider.ConsumeBool():
        # Claims the fuzzer writes, signed with the issuer's key: the claims checks.
        payload = provider.ConsumeBytes(provider.remaining_bytes())
        token = jwt.api_jws.encode(payload, _KEY, "RS256", headers={"kid": "k", "typ": "at+jwt"})
    else:
        token = provider.ConsumeUnicodeNoSurrogates(len(data))
    outcome: list[object] = []
    _verifier.verify(token).addBoth(outcome.append)
    assert outcome, "verification did not complete"
    if isinstance(outcome[0], Failure) and not outcome[0].check(TokenRejected):
        outcome[0].raiseException()


TARGETS: dict[str, Callable[[bytes], None]] = {
    "jsonrpc": fuzz_jsonrpc,
    "sse": fuzz_sse,
    "header": fuzz_header,
    "config": fuzz_config,
    "jwt": fuzz_jwt,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
