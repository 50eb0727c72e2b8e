"""JSON-RPC 2.0 messages as MCP uses them (MCP 2025-11-25 basic, "Messages").

A body is decoded exactly once (as ``json.loads`` decodes the UTF-8 text) and each
message in it becomes a typed, frozen object; the decoded ``params``,
``result`` and ``error.data`` values are kept as they are, never copied.
Anything that is not a valid message becomes an ``InvalidMessage`` carrying the
id (when one could be read) and the error to answer with; parsing never raises.

What is refused, and why:

* a body that is not UTF-8 (RFC 8259 §8.1), not JSON, or uses the
  ``NaN``/``Infinity`` extensions: ``PARSE_ERROR`` (JSON-RPC 2.0 §5.1);
* nesting deeper than ``MAX_DEPTH``: ``PARSE_ERROR`` (a depth bomb costs stack
  in every component that walks the value, here and upstream);
* a top-level value that is neither an object nor an array, an empty batch,
  or a batch longer than ``MAX_BATCH``: ``INVALID_REQUEST`` for the body as a
  whole (JSON-RPC 2.0 §6: "a single Response object");
* per message (JSON-RPC 2.0 §4, §4.1, §5): ``jsonrpc`` other than ``"2.0"``,
  a method that is not a string, ``params`` that is neither object nor array,
  an id that is not a string or an integer (MCP basic "Requests": the id MUST
  NOT be null; ``null`` is allowed only in an error response, JSON-RPC 2.0 §5),
  a response without exactly one of ``result`` and ``error``, an error object
  without an integer ``code`` and a string ``message`` (§5.1).

Duplicate object keys are not refused: the last one wins, and since aigw
re-encodes every message it forwards, no upstream ever sees a different choice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeGuard

import attrs
import orjson

JsonRpcId = str | int

# -- Error codes ---------------------------------------------------------------

# JSON-RPC 2.0 §5.1, pre-defined.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# MCP 2025-11-25 server/resources "Error Handling".
RESOURCE_NOT_FOUND = -32002

# JSON-RPC 2.0 §5.1 leaves -32000 to -32099 to the implementation ("Server
# error").  -32001 for an unknown session is what the MCP SDKs send with HTTP
# 404.  MCP 2026-07-28 reserves -32020 to -32099 for errors of the specification,
# so aigw's own codes sit at -32010 to -32017, clear of both.
SESSION_NOT_FOUND = -32001
#: MCP 2026-07-28 basic/transports/streamable-http "Server Validation".
HEADER_MISMATCH = -32020
#: MCP 2026-07-28 basic/versioning "Protocol Version Negotiation".
UNSUPPORTED_PROTOCOL_VERSION = -32022
#: MCP 2025-11-25 client/elicitation "URL Elicitation Required Error": the request
#: needs the user to visit the URLs in ``error.data.elicitations`` first.
URL_ELICITATION_REQUIRED = -32042
UPSTREAM_UNAVAILABLE = -32010
UPSTREAM_TIMEOUT = -32011
REQUEST_CANCELLED = -32012
UPSTREAM_BAD_REPLY = -32013
#: A stream refused by one of aigw's bounds on open streams (aigw/mcp/limits.py).
TOO_MANY_STREAMS = -32014
#: No credentials could be had for a backend (token endpoint, token exchange, claims).
UPSTREAM_CREDENTIALS = -32015
#: A request refused by a rate or in-flight limit, or its limiter unavailable (limits).
RATE_LIMITED = -32016
#: An audited request refused: the audit file cannot be written (audit.on_write_error).
AUDIT_UNAVAILABLE = -32017
SERVER_ERROR_MIN = -32099
SERVER_ERROR_MAX = -32000

#: Deepest nesting of arrays and objects accepted in a body.
MAX_DEPTH = 64
#: Deepest nesting ``loads`` reads (a backend's document): what orjson writes (its
#: recursion limit), so that aigw can write again whatever it relays.
MAX_WRITTEN_DEPTH = 255
#: Most messages accepted in one batch (batches exist in MCP 2025-03-26 only).
MAX_BATCH = 256

#: JSON-RPC 2.0 §4: the ``jsonrpc`` member every message carries.
JSON_VERSION = "2.0"
_BOM = "\ufeff"


# -- Messages --------------------------------------------------------------------


@attrs.frozen
class ErrorObject:
    """The ``error`` member of a response (JSON-RPC 2.0 §5.1); ``data`` None is left out."""

    code: int
    message: str
    data: Any = None

    def to_dict(self) -> dict[str, Any]:
        return error_object(self.code, self.message, self.data)


@attrs.frozen
class Request:
    """A call that expects an answer (JSON-RPC 2.0 §4)."""

    id: JsonRpcId
    method: str
    params: dict[str, Any] | list[Any] | None = None


@attrs.frozen
class Notification:
    """A call without an id: nothing is answered (JSON-RPC 2.0 §4.1)."""

    method: str
    params: dict[str, Any] | list[Any] | None = None


@attrs.frozen
class Response:
    """A successful answer (JSON-RPC 2.0 §5)."""

    id: JsonRpcId
    result: Any


@attrs.frozen
class ErrorResponse:
    """A failed answer; ``id`` is None when the request's id could not be read (§5)."""

    id: JsonRpcId | None
    error: ErrorObject


@attrs.frozen
class InvalidMessage:
    """Not a valid message: answer with ``error`` and ``id`` (None when unreadable)."""

    id: JsonRpcId | None
    error: ErrorObject


Message = Request | Notification | Response | ErrorResponse
Parsed = Message | InvalidMessage


@attrs.frozen
class ParsedBody:
    """A POST body: one message, or a batch of them.

    ``error`` is set only when the body as a whole is unusable (not JSON, too
    deep, not an object or array, an empty or oversized batch); then
    ``messages`` is empty and one error response with a null id answers it
    (JSON-RPC 2.0 §5, §6).  Otherwise ``messages`` holds one entry per message,
    invalid ones included as ``InvalidMessage``.
    """

    messages: tuple[Parsed, ...] = ()
    is_batch: bool = False
    error: ErrorObject | None = None


# -- Parsing -----------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: Built once: ``json.loads`` with an option builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)

#: Nineteen digits in a row may be an integer beyond 64 bits, which orjson decodes as
#: a float where the standard library keeps the integer (a JSON-RPC id may be any).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_DIGITS = b"0123456789"
#: What ``_decode_fast`` returns for a document it leaves to the standard library.
_DECLINED: Any = object()


def _decode_fast(data: bytes | str) -> Any:
    """``data`` decoded by orjson, about four times faster than the standard library,
    where the two agree; else ``_DECLINED``.

    They agree on every document orjson accepts but one kind: integers beyond 64 bits,
    which orjson turns into floats (hence the look for long digit runs first; digits in
    strings are declined too, harmlessly).  What orjson refuses and the standard library
    may accept is declined with the rest: ``NaN`` and ``Infinity``, numbers beyond a
    float's range (``1e400``: infinity), lone surrogates (``"\\ud800"``), UTF-16 and
    UTF-32, a byte order mark, nesting beyond 1024.  ``tests/unit/protocol`` compares
    the two on random documents."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    # Nineteen digits in a row need nineteen digits: counting them (one pass in C)
    # spares most documents the regex search, which costs more than orjson's decoding.
    if len(raw) - len(raw.translate(None, _DIGITS)) >= 19 and _LONG_DIGITS.search(raw):
        return _DECLINED
    try:
        return orjson.loads(raw)  # lone surrogates, encoded as they came, are refused
    except orjson.JSONDecodeError:
        return _DECLINED


def loads(data: bytes | str, fallback: Callable[[Any], Any] = json.loads) -> Any:
    """JSON as ``fallback`` (the standard library's ``json.loads``) decodes it, and
    raises as it does: orjson where the two agree (``_decode_fast``), ``fallback`` for
    the rest.  For the documents of the hot path: a backend's JSON reply or SSE event.

    A document nested deeper than ``MAX_WRITTEN_DEPTH`` raises ``ValueError`` too: to
    its callers, whatever a backend sends, it is a document that is not JSON.  Deeper,
    aigw could not write it again (orjson refuses, and past about a thousand levels the
    standard library's fallback raises ``RecursionError``, as its decoding does).  Only
    a document with more brackets than that is checked: by orjson writing it (a
    twentieth of its decoding), walked only when that fails."""
    decoded = _decode_fast(data)
    if decoded is _DECLINED:
        try:
            decoded = fallback(data)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
    if _brackets(data) > MAX_WRITTEN_DEPTH and _unwritable(decoded):
        raise ValueError(f"JSON nested deeper than {MAX_WRITTEN_DEPTH} levels")
    return decoded


def reported_text(text: str) -> str:
    """A string ``loads`` read, as UTF-8 can hold it: unchanged but for lone surrogates,
    escaped (``\\ud800``).  For where a client's or a backend's string is only reported
    and the format is UTF-8 text: a span's attributes (OTLP's protobuf), a metric's label
    values (the Prometheus exposition formats); there, one such string failed the whole
    export or scrape.  ``loads`` keeps them, as JSON may hold them (RFC 8259 section
    8.2: ``"\\ud800"`` is valid JSON text), so that what is relayed is as it came."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unwritable(value: Any) -> bool:
    """Is ``value`` nested deeper than ``MAX_WRITTEN_DEPTH``?  orjson writing it says
    not, at C speed; what it refuses (also integers beyond 64 bits, lone surrogates)
    is walked."""
    try:
        orjson.dumps(value)
    except TypeError:
        return _deeper_than(value, MAX_WRITTEN_DEPTH)
    return False


def _deeper_than(value: Any, limit: int) -> bool:
    """Is any array or object nested more than ``limit`` levels deep?

    Iterative, and only containers are pushed, so the walk costs one type check
    per value and no stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        container, depth = pop()
        if depth > limit:
            return True
        children = container.values() if type(container) is dict else container
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                push((child, depth + 1))
    return False


def _body_error(code: int, message: str) -> ParsedBody:
    return ParsedBody(error=ErrorObject(code, message))


def parse_body(
    body: bytes | str, max_depth: int = MAX_DEPTH, max_batch: int = MAX_BATCH
) -> ParsedBody:
    """Decode a body once and type every message in it (JSON-RPC 2.0 §4-§6).

    ``body`` is a POST body (bytes, which must be UTF-8) or text already
    decoded, such as the ``data`` of an upstream SSE event.
    """
    decoded = _decode_fast(body)
    if decoded is _DECLINED:
        if isinstance(body, str):
            text = body
        else:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                return _body_error(PARSE_ERROR, "Parse error: the body is not UTF-8")
        if text.startswith(_BOM):
            text = text[1:]  # RFC 8259 §8.1: a parser MAY ignore a byte order mark
        try:
            decoded = _DECODER.decode(text)
        except (ValueError, RecursionError):
            return _body_error(PARSE_ERROR, "Parse error: the body is not valid JSON")
    kind = type(decoded)
    if kind is not dict and kind is not list:
        return _body_error(INVALID_REQUEST, "Invalid Request: expected an object or an array")
    # Bracket characters bound the depth from above: most bodies skip the walk (UTF-8
    # multi-byte sequences hold no ASCII byte, so bytes count as the text would).
    if _brackets(body) > max_depth and _deeper_than(decoded, max_depth):
        return _body_error(PARSE_ERROR, f"Parse error: nested deeper than {max_depth} levels")
    if kind is dict:
        return ParsedBody(messages=(parse_message(decoded),))
    if not decoded:
        return _body_error(INVALID_REQUEST, "Invalid Request: empty batch")
    if len(decoded) > max_batch:
        return _body_error(INVALID_REQUEST, f"Invalid Request: more than {max_batch} in a batch")
    return ParsedBody(messages=tuple(map(parse_message, decoded)), is_batch=True)


def _brackets(body: bytes | str) -> int:
    if isinstance(body, str):
        return body.count("[") + body.count("{")
    return body.count(b"[") + body.count(b"{")


def is_request_id(value: Any) -> TypeGuard[JsonRpcId]:
    """An MCP request id: a string or an integer (MCP basic "Requests"); booleans are not
    integers."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _read_id(value: Any) -> JsonRpcId | None:
    return value if is_request_id(value) else None


def _invalid(message_id: JsonRpcId | None, why: str) -> InvalidMessage:
    return InvalidMessage(message_id, ErrorObject(INVALID_REQUEST, f"Invalid Request: {why}"))


def parse_message(obj: Any) -> Parsed:
    """One decoded JSON value (a POST item, an upstream SSE event) to a typed message."""
    if not isinstance(obj, dict):
        return _invalid(None, "a message must be a JSON object")
    has_id = "id" in obj
    raw_id = obj["id"] if has_id else None
    message_id = _read_id(raw_id)
    if obj.get("jsonrpc") != JSON_VERSION:
        return _invalid(message_id, 'jsonrpc must be "2.0"')
    has_result = "result" in obj
    has_error = "error" in obj
    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str):
            return _invalid(message_id, "method must be a string")
        if has_result or has_error:
            return _invalid(message_id, "a request has no result or error")
        params = obj.get("params")
        if "params" in obj and not isinstance(params, dict | list):
            return _invalid(message_id, "params must be an object or an array")
        if not has_id:
            return Notification(method, params)
        if message_id is None:
            return _invalid(None, "id must be a string or an integer")
        return Request(message_id, method, params)
    if has_result == has_error:
        if has_result:
            return _invalid(message_id, "a response has a result or an error, not both")
        return _invalid(message_id, "a message needs a method, a result or an error")
    if not has_id:
        return _invalid(None, "a response needs an id")
    if has_result:
        if message_id is None:
            return _invalid(None, "id must be a string or an integer")
        return Response(message_id, obj["result"])
    if message_id is None and raw_id is not None:
        return _invalid(None, "id must be a string, an integer or null")
    error = obj["error"]
    if not isinstance(error, dict):
        return _invalid(message_id, "error must be an object")
    code = error.get("code")
    message = error.get("message")
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        return _invalid(message_id, "error needs an integer code and a string message")
    return ErrorResponse(message_id, ErrorObject(code, message, error.get("data")))


def is_request(message: Any) -> bool:
    """A decoded message that is a request (a method and an id: JSON-RPC 2.0 §4), which
    someone must answer; a notification (no id) is not answered.  An id that is no
    JSON-RPC id (§4: a string, a number or null; not an object, an array, a boolean)
    makes no request either: nothing can answer it (the answer would echo the id, an
    object a backend may nest past what the encoder's recursion writes back)."""
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return False
    if "id" not in message:
        return False
    message_id = message["id"]
    return message_id is None or (
        isinstance(message_id, str | int | float) and not isinstance(message_id, bool)
    )


# -- Encoding ------------------------------------------------------------------------
#
# The wire form of every message aigw writes is built here and nowhere else.


def error_object(code: int, message: str, data: Any = None) -> dict[str, Any]:
    """The ``error`` member of a response (JSON-RPC 2.0 §5.1); ``data`` None is left out."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return error


def request(request_id: JsonRpcId, method: str, params: Any = None) -> dict[str, Any]:
    """A request (JSON-RPC 2.0 §4); ``params`` None is left out."""
    out: dict[str, Any] = {"jsonrpc": JSON_VERSION, "id": request_id, "method": method}
    if params is not None:
        out["params"] = params
    return out


def notification(method: str, params: Any = None) -> dict[str, Any]:
    """A notification (JSON-RPC 2.0 §4.1); ``params`` None is left out."""
    out: dict[str, Any] = {"jsonrpc": JSON_VERSION, "method": method}
    if params is not None:
        out["params"] = params
    return out


def result_response(request_id: Any, result: Any) -> dict[str, Any]:
    """A successful answer (JSON-RPC 2.0 §5)."""
    return {"jsonrpc": JSON_VERSION, "id": request_id, "result": result}


def error_response(request_id: Any, error: dict[str, Any]) -> dict[str, Any]:
    """A failed answer carrying an ``error_object`` (JSON-RPC 2.0 §5)."""
    return {"jsonrpc": JSON_VERSION, "id": request_id, "error": error}


def to_dict(message: Message | InvalidMessage) -> dict[str, Any]:
    """The wire form of a typed message (an InvalidMessage becomes its error response)."""
    if isinstance(message, Request):
        return request(message.id, message.method, message.params)
    if isinstance(message, Notification):
        return notification(message.method, message.params)
    if isinstance(message, Response):
        return result_response(message.id, message.result)
    return error_response(message.id, message.error.to_dict())


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8: every message aigw writes goes through here.

    orjson does the work (about fifteen times faster than the standard
    library, which was a twentieth of a proxied call: docs/performance.md).
    What orjson refuses goes to the standard library: integers beyond 64 bits
    (JSON-RPC ids may be any integer) and strings holding lone surrogates
    (``json.loads`` accepts ``"\\ud800"``; escaped again they stay valid JSON
    that decodes to the same value).  A non-finite float, which only an
    overflowing number such as ``1e400`` can produce, is written as ``null``.
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")
