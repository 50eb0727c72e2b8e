"""The parsers under hypothesis (issue 16 item 3): JSON-RPC bodies, SSE streams, routing
header values, config files, JWTs.  Each hostile input gets the parser's own answer (an
error value or its one exception type), never another exception."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.errors import TokenRejected
from aigw.auth.jwks import KeyStore
from aigw.auth.tokens import JWTVerifier
from aigw.config import ConfigError, parse_config
from aigw.protocol import jsonrpc
from aigw.protocol.revision import decode_header_value, encode_header_value
from aigw.protocol.sse import SSEError, SSEParser
from tests.unit.auth.helpers import (
    NOW,
    RSA_KEY,
    FakeAuthorizationServer,
    auth_config,
    jwks,
    public_jwk,
)
from tests.unit.fuzz.strategies import FUZZ, bodies, config_trees, jwts, sse_streams


def _is_error_object(error: Any) -> bool:
    return isinstance(error, jsonrpc.ErrorObject) and error.code < 0 and bool(error.message)


class JsonRpcBodies(SynchronousTestCase):
    @FUZZ
    @given(bodies)
    def test_every_body_is_messages_or_one_error(self, body: bytes) -> None:
        """``parse_body``: any bytes are typed messages, or one JSON-RPC error object."""
        parsed = jsonrpc.parse_body(body)
        if parsed.error is not None:
            self.assertTrue(_is_error_object(parsed.error), parsed.error)
            self.assertEqual(parsed.messages, ())
            return
        self.assertTrue(parsed.messages)
        for message in parsed.messages:
            answer = jsonrpc.to_dict(message)
            jsonrpc.dumps(answer)  # whatever came in can be written back out


class SSEStreams(SynchronousTestCase):
    @FUZZ
    @given(sse_streams, st.lists(st.integers(0, 400), max_size=8))
    def test_events_do_not_depend_on_where_the_stream_is_cut(
        self, stream: bytes, cuts: list[int]
    ) -> None:
        """The same events, ids and retry, however the bytes are split into chunks."""
        whole = SSEParser()
        expected = whole.feed(stream)
        parser, got, start = SSEParser(), [], 0
        for cut in sorted(c for c in cuts if c <= len(stream)):
            got += parser.feed(stream[start:cut])
            start = cut
        got += parser.feed(stream[start:])
        self.assertEqual(got, expected)
        self.assertEqual((parser.last_event_id, parser.retry), (whole.last_event_id, whole.retry))

    @FUZZ
    @given(st.binary(max_size=300), st.integers(1, 64))
    def test_random_bytes_are_events_or_the_bound(self, data: bytes, bound: int) -> None:
        """Random bytes give events, or ``SSEError`` past ``max_event_bytes``: nothing else."""
        parser = SSEParser(max_event_bytes=bound)
        try:
            for event in parser.feed(data):
                self.assertLessEqual(len(event.data.encode("utf-8", "surrogatepass")), 4 * bound)
        except SSEError:
            pass


class RoutingHeaderValues(SynchronousTestCase):
    @FUZZ
    @given(st.text(max_size=40))
    def test_decoding_is_a_string_or_none(self, value: str) -> None:
        """``decode_header_value``: any text decodes to text or None, never raises."""
        decoded = decode_header_value(value)
        self.assertIsInstance(decoded, str | None)

    @FUZZ
    @given(st.text(max_size=40))
    def test_encoding_round_trips(self, value: str) -> None:
        """What aigw encodes for a header decodes back to the value (streamable-http)."""
        self.assertEqual(decode_header_value(encode_header_value(value)), value)


class ConfigFiles(SynchronousTestCase):
    @FUZZ
    @given(config_trees)
    def test_any_yaml_document_is_a_config_or_config_error(self, tree: Any) -> None:
        """Random nested structures under aigw's keys: a Config or ``ConfigError`` with
        problems, never another exception."""
        text = yaml.safe_dump(tree, allow_unicode=True)
        try:
            parse_config(text, env={"X": "x"})
        except ConfigError as error:
            self.assertTrue(error.problems)

    @FUZZ
    @given(st.text(max_size=200))
    def test_any_text_is_a_config_or_config_error(self, text: str) -> None:
        """Random text (YAML syntax errors, tags, anchors): ``ConfigError`` or a Config."""
        try:
            parse_config(text, env={})
        except ConfigError as error:
            self.assertTrue(error.problems)


class Tokens(SynchronousTestCase):
    def setUp(self) -> None:
        server = FakeAuthorizationServer()
        server.serve("/jwks", jwks(public_jwk(RSA_KEY, "rsa-1", alg="RS256")))
        self.http = StubTreq(server)
        self.clock = Clock()
        self.clock.advance(NOW)
        config = auth_config(algorithms=("RS256", "ES256"))
        keys = KeyStore(config, self.http, self.clock)
        keys.startService()
        self.http.flush()
        self.addCleanup(keys.stopService)
        self.verifier = JWTVerifier(config, keys, self.clock)

    @FUZZ
    @given(jwts)
    def test_any_token_is_rejected_with_a_reason(self, token: str) -> None:
        """JWT-shaped junk (headers, segments, base64): only ``TokenRejected``."""
        verifying = self.verifier.verify(token)
        self.http.flush()
        self.clock.advance(60)  # past the unknown-kid cooldown: every example may fetch
        self.http.flush()
        self.failureResultOf(verifying, TokenRejected)
