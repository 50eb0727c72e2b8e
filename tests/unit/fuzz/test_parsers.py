"""The parsers under hypothesis (issue 16 item 3): JSON-RPC bodies, SSE streams, routing
header values, config files, JWTs, and (issue 15) the notes aigw processes hear from each
other through Redis pub/sub and the ``Last-Event-ID`` a client resumes with.  Each hostile
input gets the parser's own answer (an error value or its one exception type), never
another exception."""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.errors import TokenRejected
from aigw.auth.jwks import KeyStore
from aigw.auth.tokens import JWTVerifier
from aigw.config import ConfigError, parse_config
from aigw.gateway import elicitation_completions, shared_stream_probes
from aigw.gateway.ended_sessions import digest_of
from aigw.protocol import jsonrpc
from aigw.protocol.revision import decode_header_value, encode_header_value
from aigw.protocol.sse import SSEError, SSEParser
from aigw.sealed.event_id import EventIdCodec, InvalidEventId
from aigw.sealed.sealer import Sealer
from tests.unit.auth.helpers import (
    NOW,
    RSA_KEY,
    FakeAuthorizationServer,
    auth_config,
    jwks,
    public_jwk,
)
from tests.unit.fuzz.strategies import (
    FUZZ,
    b64url,
    bodies,
    config_trees,
    json_values,
    jwts,
    sse_streams,
)


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


#: Nested far deeper than the standard library's JSON decoder recurses (a RecursionError,
#: not a ValueError, until the readers caught it).
DEEP = b"[" * 3000

#: A note on a channel of aigw's: near-misses of its own notes, JSON, or any bytes, as
#: anyone who can PUBLISH on its Redis may send.
notes: st.SearchStrategy[bytes] = st.one_of(
    st.tuples(
        st.sampled_from([b"p", b"l", b"o", b"x", b""]),
        st.sampled_from([b"%064x" % 7, b"%064X" % 7, b"\t0" * 32, b"zz" * 32, b"0" * 63]),
        st.sampled_from([b"", b"a1", b"a b", b"\xff" * 70]),
    ).map(lambda parts: b" ".join(part for part in parts if part)),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {"n": json_values, "i": json_values, "s": json_values},
        optional={"d": st.sampled_from([f"{7:064x}", "\t0" * 32]) | json_values},
    ).map(lambda fields: json.dumps(fields).encode()),
    st.binary(max_size=200),
)


class SharedNotes(SynchronousTestCase):
    """What aigw hears on ``aigw:stream-probe`` and ``aigw:elicitation`` (anyone who can
    PUBLISH on its Redis can send any bytes): a note, or None, never an exception."""

    @FUZZ
    @given(notes)
    @example(b"o " + b"%064x" % 7 + b" \xff\xfe")
    def test_a_stream_probe_note_is_read_or_none(self, payload: bytes) -> None:
        read = shared_stream_probes.read_note(payload)
        if read is not None:
            kind, digest, process = read
            self.assertIn(kind, (b"p", b"l", b"o"))
            self.assertEqual(len(digest), 32)
            self.assertEqual(kind == b"o", bool(process))

    @FUZZ
    @given(notes)
    @example(DEEP)
    @example(b'{"n":' + DEEP + b"}")
    @example(b'{"n":"e","i":"x","s":"y","d":"' + b"\t0" * 32 + b'"}')
    def test_an_elicitation_note_is_read_or_none(self, payload: bytes) -> None:
        read = elicitation_completions.read_note(payload)
        if read is not None:
            notice, digest = read
            self.assertTrue(notice.elicitation_id)
            self.assertTrue(digest is None or len(digest) == 32)

    @FUZZ
    @given(st.binary(max_size=80))
    @example(b"\t0" * 32)
    @example(b"%064X" % 7)
    def test_a_digest_is_64_hex_digits_or_none(self, text: bytes) -> None:
        digest = digest_of(text)
        self.assertEqual(digest is not None, len(text) == 64 and text.isalnum() and text.isascii())
        if digest is not None:
            self.assertEqual(digest.hex(), text.decode().lower())


#: Seals and opens merged event ids under a key of the tests.
EVENT_IDS = EventIdCodec(Sealer(b"f" * 32))


class LastEventIds(SynchronousTestCase):
    @FUZZ
    @given(
        st.one_of(
            st.text(max_size=120),
            json_values.map(lambda value: b64url(json.dumps(value).encode())),
            st.dictionaries(st.sampled_from(["alpha", "beta", "x"]), json_values).map(
                lambda ids: b64url(json.dumps(ids).encode())
            ),
        )
    )
    @example(b64url(DEEP))
    @example(b64url(b'{"alpha":' + DEEP + b"}"))
    @example("\xff\xfe" * 100)
    @example("A" * 5000)
    def test_any_last_event_id_is_refused_unless_aigw_sealed_it(self, value: str) -> None:
        """A client's ``Last-Event-ID`` (basic/transports "Resumability and Redelivery")
        that aigw did not seal for the session, whatever it holds (the unsealed ids of
        before included), is refused with ``InvalidEventId`` (every backend then resumes
        from nowhere), never another exception; a sealed one of the same backends' ids,
        written in its place, opens to them."""
        codec = EVENT_IDS
        if not value:  # no Last-Event-ID: nothing to resume, nothing refused
            self.assertEqual(codec.decode(value, "binding", {"alpha", "beta"}), {})
            return
        self.assertRaises(InvalidEventId, codec.decode, value, "binding", {"alpha", "beta"})
        try:
            ids = json.loads(base64url_decoded(value))
        except (ValueError, RecursionError):
            return
        if isinstance(ids, dict) and all(isinstance(v, str) for v in ids.values()):
            sealed = codec.encode(ids, "binding")
            opened = codec.decode(sealed, "binding", {"alpha", "beta"})
            self.assertLessEqual(opened.items(), ids.items())
            self.assertLessEqual(set(opened), {"alpha", "beta"})


def base64url_decoded(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return b""


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
