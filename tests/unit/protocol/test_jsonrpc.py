"""JSON-RPC 2.0 parsing and encoding (JSON-RPC 2.0 §4-§6; MCP 2025-11-25 basic "Messages")."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aigw.protocol import jsonrpc
from aigw.protocol.jsonrpc import (
    ErrorObject,
    ErrorResponse,
    InvalidMessage,
    Notification,
    Request,
    Response,
    parse_body,
    parse_message,
)


def only(body: bytes) -> jsonrpc.Parsed:
    parsed = parse_body(body)
    assert parsed.error is None
    assert not parsed.is_batch
    assert len(parsed.messages) == 1
    return parsed.messages[0]


class BodyTests(SynchronousTestCase):
    """The body as a whole (JSON-RPC 2.0 §5.1 codes, §6 batches)."""

    def test_single_request_is_typed(self) -> None:
        message = only(b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}')
        self.assertEqual(message, Request(1, "tools/list", {}))

    def test_params_are_the_decoded_objects_not_copies(self) -> None:
        params: dict[str, object] = {}
        message = parse_message({"jsonrpc": "2.0", "id": "a", "method": "m", "params": params})
        assert isinstance(message, Request)
        self.assertIs(message.params, params)

    def test_invalid_json_is_a_parse_error(self) -> None:
        """§5.1: -32700 "Invalid JSON was received by the server"."""
        parsed = parse_body(b'{"jsonrpc":"2.0",')
        self.assertEqual(parsed.error.code if parsed.error else None, jsonrpc.PARSE_ERROR)
        self.assertEqual(parsed.messages, ())

    def test_text_is_parsed_like_bytes(self) -> None:
        """Upstream SSE event data arrives decoded; the same rules apply."""
        parsed = parse_body('{"jsonrpc":"2.0","id":1,"result":{}}')
        self.assertEqual(parsed.messages, (Response(1, {}),))

    def test_non_utf8_body_is_a_parse_error(self) -> None:
        """RFC 8259 §8.1: JSON exchanged between systems MUST be UTF-8."""
        body = '{"jsonrpc":"2.0","method":"é"}'.encode("utf-16")
        self.assertEqual(
            parse_body(body).error,
            ErrorObject(jsonrpc.PARSE_ERROR, "Parse error: the body is not UTF-8"),
        )

    def test_invalid_utf8_byte_is_a_parse_error(self) -> None:
        parsed = parse_body(b'{"jsonrpc":"2.0","method":"\xff"}')
        self.assertEqual(parsed.error.code if parsed.error else None, jsonrpc.PARSE_ERROR)

    def test_leading_bom_is_ignored(self) -> None:
        """RFC 8259 §8.1: a parser MAY ignore a byte order mark."""
        message = only(b'\xef\xbb\xbf{"jsonrpc":"2.0","method":"ping","id":2}')
        self.assertEqual(message, Request(2, "ping", None))

    def test_nan_and_infinity_are_not_json(self) -> None:
        """RFC 8259 §6: NaN and Infinity are not permitted numbers."""
        for literal in (b"NaN", b"Infinity", b"-Infinity"):
            body = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"x":' + literal + b"}}"
            parsed = parse_body(body)
            self.assertEqual(parsed.error.code if parsed.error else None, jsonrpc.PARSE_ERROR)

    def test_nesting_beyond_max_depth_is_refused(self) -> None:
        deep = b"[" * 65 + b"]" * 65
        body = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"x":' + deep + b"}}"
        parsed = parse_body(body)
        self.assertEqual(parsed.error.code if parsed.error else None, jsonrpc.PARSE_ERROR)

    def test_nesting_at_max_depth_is_accepted(self) -> None:
        deep = b"[" * 62 + b"]" * 62  # + params object + message object = 64
        body = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"x":' + deep + b"}}"
        self.assertIsInstance(only(body), Request)

    def test_many_brackets_in_strings_do_not_count_as_depth(self) -> None:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "m", "params": {"s": "[{" * 500}})
        self.assertIsInstance(only(body.encode()), Request)

    def test_depth_bomb_beyond_recursion_limit_is_a_parse_error(self) -> None:
        parsed = parse_body(b"[" * 100_000 + b"]" * 100_000)
        self.assertEqual(parsed.error.code if parsed.error else None, jsonrpc.PARSE_ERROR)

    def test_top_level_scalar_is_an_invalid_request(self) -> None:
        """§6 example "invalid Batch" (rpc call with an invalid Batch, but not empty)."""
        for body in (b"1", b'"x"', b"null", b"true"):
            parsed = parse_body(body)
            self.assertEqual(parsed.error.code if parsed.error else None, jsonrpc.INVALID_REQUEST)

    def test_empty_batch_is_an_invalid_request(self) -> None:
        """§6: "rpc call with an empty Array" gets one Invalid Request error."""
        parsed = parse_body(b"[]")
        self.assertEqual(parsed.error.code if parsed.error else None, jsonrpc.INVALID_REQUEST)
        self.assertEqual(parsed.messages, ())

    def test_batch_keeps_order_and_marks_each_invalid_item(self) -> None:
        """§6: each invalid element of a batch gets its own error (here [1, 2, 3])."""
        parsed = parse_body(
            b'[{"jsonrpc":"2.0","method":"n"},1,{"jsonrpc":"2.0","id":"x","method":"m"}]'
        )
        self.assertTrue(parsed.is_batch)
        self.assertIsNone(parsed.error)
        first, second, third = parsed.messages
        self.assertEqual(first, Notification("n", None))
        assert isinstance(second, InvalidMessage)
        self.assertEqual((second.id, second.error.code), (None, jsonrpc.INVALID_REQUEST))
        self.assertEqual(third, Request("x", "m", None))

    def test_oversized_batch_is_refused(self) -> None:
        item = b'{"jsonrpc":"2.0","method":"n"}'
        parsed = parse_body(b"[" + b",".join([item] * 257) + b"]")
        self.assertEqual(parsed.error.code if parsed.error else None, jsonrpc.INVALID_REQUEST)

    def test_single_invalid_message_is_a_message_not_a_body_error(self) -> None:
        message = only(b'{"jsonrpc":"1.0","id":9,"method":"m"}')
        assert isinstance(message, InvalidMessage)
        self.assertEqual(message.id, 9)


class MessageTests(SynchronousTestCase):
    """One message (JSON-RPC 2.0 §4 Request object, §4.1 Notification, §5 Response)."""

    def assertInvalid(self, obj: object, expected_id: object = None) -> None:
        message = parse_message(obj)
        assert isinstance(message, InvalidMessage), message
        self.assertEqual(message.error.code, jsonrpc.INVALID_REQUEST)
        self.assertEqual(message.id, expected_id)

    def test_jsonrpc_member_must_be_exactly_2_0(self) -> None:
        """§4: "MUST be exactly "2.0"". The id is kept so the error can name it."""
        self.assertInvalid({"jsonrpc": "2", "id": 3, "method": "m"}, 3)
        self.assertInvalid({"id": 3, "method": "m"}, 3)

    def test_message_must_be_an_object(self) -> None:
        self.assertInvalid([1])
        self.assertInvalid("x")

    def test_request_without_id_is_a_notification(self) -> None:
        """§4.1: a Request object without an "id" member is a Notification."""
        self.assertEqual(
            parse_message({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            Notification("notifications/initialized", None),
        )

    def test_request_id_may_be_string_or_integer(self) -> None:
        """MCP basic "Requests": the id MUST be a string or integer."""
        self.assertEqual(
            parse_message({"jsonrpc": "2.0", "id": "a", "method": "m"}), Request("a", "m")
        )
        self.assertEqual(
            parse_message({"jsonrpc": "2.0", "id": -7, "method": "m"}), Request(-7, "m")
        )

    def test_request_id_must_not_be_null(self) -> None:
        """MCP basic "Requests": unlike base JSON-RPC, the ID MUST NOT be null."""
        self.assertInvalid({"jsonrpc": "2.0", "id": None, "method": "m"})

    def test_request_id_must_not_be_fractional_boolean_or_structured(self) -> None:
        bad: object
        for bad in (1.5, True, [], {}):
            self.assertInvalid({"jsonrpc": "2.0", "id": bad, "method": "m"})

    def test_method_must_be_a_string(self) -> None:
        """§4 and the §7 example {"method": 1, "params": "bar"}: Invalid Request."""
        self.assertInvalid({"jsonrpc": "2.0", "method": 1, "params": "bar"})
        self.assertInvalid({"jsonrpc": "2.0", "id": 4, "method": None}, 4)

    def test_params_must_be_structured(self) -> None:
        """§4.2: params, if present, MUST be an Array or an Object."""
        self.assertEqual(
            parse_message({"jsonrpc": "2.0", "id": 1, "method": "m", "params": [1]}),
            Request(1, "m", [1]),
        )
        for bad in ("bar", 1, None, True):
            self.assertInvalid({"jsonrpc": "2.0", "id": 1, "method": "m", "params": bad}, 1)

    def test_request_with_result_is_ambiguous(self) -> None:
        self.assertInvalid({"jsonrpc": "2.0", "id": 1, "method": "m", "result": {}}, 1)

    def test_response_with_result(self) -> None:
        self.assertEqual(
            parse_message({"jsonrpc": "2.0", "id": 5, "result": {"ok": 1}}), Response(5, {"ok": 1})
        )

    def test_response_with_error(self) -> None:
        """§5.1: the error object has an integer code, a string message and optional data."""
        message = parse_message(
            {"jsonrpc": "2.0", "id": "r", "error": {"code": -1, "message": "no", "data": [1]}}
        )
        self.assertEqual(message, ErrorResponse("r", ErrorObject(-1, "no", [1])))

    def test_error_response_may_have_null_id(self) -> None:
        """§5: id is Null if there was an error in detecting the id in the Request."""
        message = parse_message(
            {"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "x"}}
        )
        self.assertEqual(message, ErrorResponse(None, ErrorObject(1, "x")))

    def test_result_response_must_have_an_id(self) -> None:
        self.assertInvalid({"jsonrpc": "2.0", "id": None, "result": {}})
        self.assertInvalid({"jsonrpc": "2.0", "result": {}})

    def test_response_has_result_xor_error(self) -> None:
        """§5: either result or error MUST be included, "but both members MUST NOT"."""
        self.assertInvalid(
            {"jsonrpc": "2.0", "id": 1, "result": 1, "error": {"code": 1, "message": ""}}, 1
        )
        self.assertInvalid({"jsonrpc": "2.0", "id": 1}, 1)

    def test_error_object_needs_integer_code_and_string_message(self) -> None:
        for bad in (
            {"message": "x"},
            {"code": "1", "message": "x"},
            {"code": True, "message": "x"},
            {"code": 1},
            "e",
        ):
            self.assertInvalid({"jsonrpc": "2.0", "id": 1, "error": bad}, 1)


def wire(message: jsonrpc.Message | jsonrpc.InvalidMessage) -> bytes:
    """A typed message as aigw writes it."""
    return jsonrpc.dumps(jsonrpc.to_dict(message))


class IsRequestTests(SynchronousTestCase):
    def test_only_a_message_with_a_method_and_an_id_is_a_request_to_answer(self) -> None:
        roots = {"jsonrpc": "2.0", "id": 7, "method": "roots/list"}
        for request in (roots, {**roots, "id": "r-1"}, {**roots, "id": None}):
            self.assertTrue(jsonrpc.is_request(request))
        for other in (
            {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"},
            {"jsonrpc": "2.0", "id": 7, "result": {}},
            {"jsonrpc": "2.0", "id": 7, "method": 7},
            # JSON-RPC 2.0 §4: an id is a string, a number or null; anything else makes
            # no request (nothing could answer it: the answer echoes the id).
            {**roots, "id": {"an": "object"}},
            {**roots, "id": [1]},
            {**roots, "id": True},
            [roots],
            "ping",
            None,
        ):
            self.assertFalse(jsonrpc.is_request(other))


class IsRequestIdTests(SynchronousTestCase):
    def test_only_a_string_or_an_integer_is_an_mcp_request_id(self) -> None:
        for request_id in ("r-1", "", 0, -7, 2**70):
            self.assertTrue(jsonrpc.is_request_id(request_id))
        for other in (True, False, None, 1.5, [1], {"id": 1}):
            self.assertFalse(jsonrpc.is_request_id(other))


class EncodeTests(SynchronousTestCase):
    def test_encode_is_compact_utf8(self) -> None:
        self.assertEqual(
            wire(Request(1, "m", {"t": "é"})),
            '{"jsonrpc":"2.0","id":1,"method":"m","params":{"t":"é"}}'.encode(),
        )

    def test_encode_leaves_out_absent_params_and_null_error_data(self) -> None:
        self.assertEqual(wire(Notification("n")), b'{"jsonrpc":"2.0","method":"n"}')
        self.assertEqual(
            wire(ErrorResponse(None, ErrorObject(-32600, "bad"))),
            b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad"}}',
        )

    def test_invalid_message_encodes_as_its_error_response(self) -> None:
        invalid = parse_message({"jsonrpc": "2.0", "id": 2, "method": 3})
        self.assertEqual(json.loads(wire(invalid))["id"], 2)

    def test_lone_surrogates_stay_valid_json(self) -> None:
        message = only(b'{"jsonrpc":"2.0","id":"\\ud800","method":"m"}')
        encoded = wire(message)
        self.assertEqual(json.loads(encoded)["id"], "\ud800")
        encoded.decode("utf-8")

    def test_integers_beyond_64_bits_keep_every_digit(self) -> None:
        """JSON-RPC ids may be any integer; orjson refuses these, the fallback writes them."""
        request = Request(2**70 + 1, "m", {"n": -(2**80)})
        self.assertEqual(only(wire(request)), request)

    def test_overflowing_numbers_become_null(self) -> None:
        """``1e400`` parses to infinity, which JSON cannot carry: null, never ``Infinity``."""
        self.assertEqual(jsonrpc.dumps({"x": float("inf")}), b'{"x":null}')

    def test_gateway_error_codes_are_in_the_server_error_range(self) -> None:
        """JSON-RPC 2.0 §5.1: -32000 to -32099 are implementation-defined server errors."""
        for code in (
            jsonrpc.SESSION_NOT_FOUND,
            jsonrpc.UPSTREAM_UNAVAILABLE,
            jsonrpc.UPSTREAM_TIMEOUT,
            jsonrpc.REQUEST_CANCELLED,
            jsonrpc.UPSTREAM_BAD_REPLY,
        ):
            self.assertTrue(jsonrpc.SERVER_ERROR_MIN <= code <= jsonrpc.SERVER_ERROR_MAX)


json_ids = st.one_of(st.text(), st.integers())
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


class RoundTripTests(SynchronousTestCase):
    @given(json_ids, st.text(), st.dictionaries(st.text(), json_values, max_size=4))
    def test_request_round_trips_through_encode_and_parse(
        self, message_id: str | int, method: str, params: dict[str, object]
    ) -> None:
        request = Request(message_id, method, params)
        self.assertEqual(only(wire(request)), request)

    @given(st.binary(max_size=200))
    def test_parse_body_never_raises(self, body: bytes) -> None:
        """Any bytes: either one error for the whole body and no message, or messages
        (JSON-RPC 2.0 §5, §6), never an exception."""
        parsed = parse_body(body)
        self.assertNotEqual(parsed.error is None, parsed.messages == ())


def _same(a: object, b: object) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)  # type: ignore[index]
    return a == b


def _outcome(decode: object, data: bytes | str) -> tuple[str, object]:
    try:
        return "value", decode(data)  # type: ignore[operator]
    except (ValueError, RecursionError) as error:
        return "error", type(error).__mro__[-3]  # ValueError or RecursionError


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=15,
)
_JSON_BYTES = st.lists(
    st.sampled_from([*b'[]{}",:0123456789-+.eE \t\n\\utrfalsnINy', 0xC3, 0xA9, 0xFF, 0xEF]),
    max_size=40,
).map(bytes)
_NUMBERS = st.from_regex(rb"\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,4})?\Z")


class DecodingTests(SynchronousTestCase):
    """``jsonrpc.loads`` and ``parse_body`` decode with orjson where it agrees with the
    standard library, so each must decode every document as the standard library does."""

    def assertDecodesAsTheStandardLibrary(self, data: bytes | str) -> None:
        ours, theirs = _outcome(jsonrpc.loads, data), _outcome(json.loads, data)
        self.assertEqual(ours[0], theirs[0], data)
        if ours[0] == "value":
            self.assertTrue(_same(ours[1], theirs[1]), (data, ours, theirs))

    @given(_JSON_VALUES)
    def test_documents(self, value: object) -> None:
        """expected: the same values, types included, as bytes and as text."""
        for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
            self.assertDecodesAsTheStandardLibrary(text)
            self.assertDecodesAsTheStandardLibrary(text.encode("utf-8", "surrogatepass"))

    @given(_JSON_BYTES)
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """expected: the same value or the same refusal for near-JSON noise."""
        self.assertDecodesAsTheStandardLibrary(data)

    @given(_NUMBERS)
    def test_numbers(self, number: bytes) -> None:
        """expected: integers stay integers of any size, floats round alike."""
        self.assertDecodesAsTheStandardLibrary(b"[" + number + b"]")

    def test_what_orjson_refuses_or_decodes_otherwise(self) -> None:
        """expected: each decoded as the standard library decodes it."""
        for data in (
            b"[18446744073709551616]",  # orjson: a float
            b"[-9223372036854775809]",
            b"[1e400]",  # orjson refuses; the standard library: infinity
            b'["\\ud800"]',
            b"\xef\xbb\xbf[1]",
            b"[NaN]",
            "[1]".encode("utf-16"),
            b"[" * 1100 + b"]" * 1100,
        ):
            self.assertDecodesAsTheStandardLibrary(data)

    def test_nesting_past_the_recursion_limit_is_not_json(self) -> None:
        """expected: ValueError, as for any document that is not JSON, never a
        RecursionError escaping a backend's reply reader (``upstream/client.py``)."""
        deep = 100_000
        for document in (b"[" * deep + b"]" * deep, b'{"a":' * deep + b"1" + b"}" * deep):
            with self.assertRaises(ValueError):
                jsonrpc.loads(document)

    def test_what_could_not_be_written_again_is_not_json(self) -> None:
        """expected: a document nested deeper than ``MAX_WRITTEN_DEPTH`` (orjson writes
        at most that; past about a thousand levels the standard library's fallback
        raises ``RecursionError`` too) is refused as it is read, so that whatever aigw
        relays of a backend's it can write; shallower ones, wide ones, and big integers
        and lone surrogates (which orjson does not write) are read as ever."""
        limit = jsonrpc.MAX_WRITTEN_DEPTH
        for depth in (limit + 1, 1000, 1020):
            for document in (
                b'{"jsonrpc":"2.0","method":"m","params":{"a":'
                + b"[" * depth
                + b"]" * depth
                + b"}}",
                b"[" * depth + b"]" * depth,
            ):
                with self.assertRaises(ValueError):
                    jsonrpc.loads(document)
        at_limit = (
            b"[" * (limit - 1) + b'{"id":18446744073709551616,"s":"\\ud800"}' + b"]" * (limit - 1)
        )
        self.assertEqual(jsonrpc.dumps(jsonrpc.loads(at_limit)), at_limit)
        wide = b"[" + b",".join([b"[[1]]"] * 5000) + b"]"
        self.assertEqual(len(jsonrpc.loads(wide)), 5000)

    def test_a_body_keeps_its_rules_on_either_path(self) -> None:
        """expected: a 70-bit id stays an integer, NaN is a parse error, a BOM and a
        lone surrogate are accepted, invalid UTF-8 is the UTF-8 parse error."""
        request = only(b'{"jsonrpc":"2.0","id":1180591620717411303425,"method":"m"}')
        self.assertEqual(request.id, 2**70 + 1)  # type: ignore[union-attr]
        self.assertEqual(
            parse_body(b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"x":NaN}}').error,
            ErrorObject(jsonrpc.PARSE_ERROR, "Parse error: the body is not valid JSON"),
        )
        self.assertIsInstance(only(b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"m"}'), Request)
        self.assertEqual(
            parse_body(b'{"jsonrpc":"2.0","id":1,"method":"\xff"}').error,
            ErrorObject(jsonrpc.PARSE_ERROR, "Parse error: the body is not UTF-8"),
        )
