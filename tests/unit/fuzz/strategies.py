"""Hypothesis strategies for hostile input, and the settings every fuzz test shares.

The normal suite runs them for a bounded time (``FUZZ``: a fixed number of
examples, derandomized so a run is the same on every machine, no example
database written); ``make fuzz`` (bench/fuzz/, atheris) explores further.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Every fuzz test: bounded examples, the same examples on every run, no per-example
#: deadline (a timed assertion on a shared machine).
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Any JSON value, small.
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

METHODS = (
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "server/discover",
    "subscriptions/listen",
)

ids = st.none() | st.integers() | st.text(max_size=10) | st.floats() | st.booleans()


@st.composite
def jsonrpc_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON-RPC message, well-formed or nearly: any key may be missing or wrong."""
    message: dict[str, Any] = {}
    if draw(st.booleans()):
        message["jsonrpc"] = draw(st.sampled_from(["2.0", "2.0", "1.0", 2]))
    if draw(st.booleans()):
        message["id"] = draw(ids)
    if draw(st.integers(0, 9)):
        message["method"] = draw(st.sampled_from(METHODS) | st.text(max_size=12))
    if draw(st.booleans()):
        name = st.sampled_from(["alpha__echo", "beta__t1", "nope", "alpha__", ""])
        params = st.fixed_dictionaries(
            {}, optional={"name": name | json_values, "arguments": json_values, "uri": json_values}
        )
        message["params"] = draw(params | json_values)
    for key in draw(st.lists(st.sampled_from(["result", "error", "extra"]), max_size=2)):
        message[key] = draw(json_values)
    return message


#: A POST body: JSON-RPC messages (one or a batch), any JSON, or bytes.
bodies: st.SearchStrategy[bytes] = st.one_of(
    jsonrpc_messages().map(lambda m: json.dumps(m).encode()),
    st.lists(jsonrpc_messages(), max_size=4).map(lambda m: json.dumps(m).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
)

#: What Python's HTTP clients read as a line break: a header value cannot carry them.
_LINE_BREAKS = b"\r\n\x0b\x0c\x1c\x1d\x1e\x85"

#: Header values: visible ASCII mostly, some Latin-1 and control bytes (never CR/LF:
#: the client could not send those as one header).
header_values: st.SearchStrategy[bytes] = st.one_of(
    st.sampled_from(
        [
            b"2025-11-25",
            b"2026-07-28",
            b"2025-03-26",
            b"application/json",
            b"text/event-stream",
            b"application/json, text/event-stream",
            b"tools/call",
            b"alpha__echo",
            b"=?base64?YWxwaGFfX2VjaG8=?=",
            b"=?base64?!!?=",
            b"http://127.0.0.1:1975",
            b"http://evil.example",
            b"null",
            b"127.0.0.1:1975",
            b"",
        ]
    ),
    st.binary(max_size=40).map(lambda b: b.translate(None, _LINE_BREAKS)),
)

MCP_HEADERS = (
    b"Mcp-Session-Id",
    b"MCP-Protocol-Version",
    b"Mcp-Method",
    b"Mcp-Name",
    b"Accept",
    b"Content-Type",
    b"Origin",
    b"Host",
    b"Last-Event-ID",
)

headers: st.SearchStrategy[dict[bytes, bytes]] = st.dictionaries(
    st.sampled_from(MCP_HEADERS), header_values, max_size=6
)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_segments = st.one_of(
    json_values.map(lambda v: b64url(json.dumps(v).encode())),
    st.fixed_dictionaries(
        {},
        optional={
            "alg": st.sampled_from(["RS256", "HS256", "none", "ES256", "", "RS1"]) | json_values,
            "kid": st.sampled_from(["rsa-1", "../x"]) | json_values,
            "typ": st.sampled_from(["at+jwt", "JWT", "id"]) | json_values,
            "crit": json_values,
            "jku": json_values,
        },
    ).map(lambda v: b64url(json.dumps(v).encode())),
    st.binary(max_size=30).map(b64url),
    st.text(max_size=30),
)

#: JWT-shaped strings: 1 to 5 segments of base64url JSON, junk or text.
jwts: st.SearchStrategy[str] = st.lists(_segments, min_size=1, max_size=5).map(".".join)

#: SSE streams: lines of fields, comments and JSON data, with every line ending.
_sse_lines = st.one_of(
    st.builds(
        lambda field, value: field + b":" + value,
        st.sampled_from([b"data", b"data", b"event", b"id", b"retry", b"", b"x"]),
        st.one_of(
            jsonrpc_messages().map(lambda m: b" " + json.dumps(m).encode()),
            st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        ),
    ),
    st.just(b""),
    st.just(b": comment"),
    st.just(b"\xef\xbb\xbf"),
)
sse_streams: st.SearchStrategy[bytes] = st.lists(
    st.tuples(_sse_lines, st.sampled_from([b"\n", b"\r\n", b"\r"])), max_size=12
).map(lambda lines: b"".join(line + end for line, end in lines))

#: YAML-ish config documents: random nested structures under aigw's own keys.
_config_keys = st.sampled_from(
    [
        "listen",
        "public_url",
        "mcp_path",
        "auth",
        "backends",
        "sessions",
        "server",
        "logging",
        "audit",
        "metrics",
        "access",
        "allowed_origins",
        "strict_file_modes",
        "import_mcp_servers",
        "name",
        "url",
        "command",
        "timeout",
        "headers",
        "issuer",
        "secret",
        "secret_file",
        "rules",
        "tools",
    ]
)
_config_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.sampled_from(["tcp:1975", "http://127.0.0.1:1/mcp", "/mcp", "${X}", "$${", "30s", "none"]),
    st.text(max_size=12),
)
config_trees: st.SearchStrategy[Any] = st.recursive(
    _config_leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(_config_keys | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=20,
)
