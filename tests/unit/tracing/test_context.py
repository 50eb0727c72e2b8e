"""W3C Trace Context §3.2 (``traceparent``) and §3.3 (``tracestate``), as aigw reads them."""

from __future__ import annotations

import pytest

from aigw.tracing.context import (
    MAX_TRACESTATE,
    TraceContext,
    from_headers,
    from_meta,
    parse_traceparent,
    parse_tracestate,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


def test_a_version_00_traceparent_is_read() -> None:
    assert parse_traceparent(VALID) == (TRACE, SPAN, "01")


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"00-{TRACE}-{SPAN}",  # no flags
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"01-{TRACE}-{SPAN}-01",  # a version aigw does not know
        f"ff-{TRACE}-{SPAN}-01",  # §3.2.2.2: ff is forbidden
        f"00-{TRACE.upper()}-{SPAN}-01",  # §3.2.2: lower-case hex only
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}x-01",
        f"00-{'0' * 32}-{SPAN}-01",  # §3.2.2.3: all-zero trace-id
        f"00-{TRACE}-{'0' * 16}-01",  # §3.2.2.4: all-zero parent-id
        f"00-{TRACE}-{SPAN}-0g",
        f"00_{TRACE}_{SPAN}_01",
    ],
)
def test_a_malformed_traceparent_is_ignored(value: str) -> None:
    assert parse_traceparent(value) is None


def test_sampled_is_bit_0_of_the_flags() -> None:
    assert TraceContext(TRACE, SPAN, "01").sampled
    assert TraceContext(TRACE, SPAN, "03").sampled
    assert not TraceContext(TRACE, SPAN, "00").sampled


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["rojo=00f067aa0ba902b7"], "rojo=00f067aa0ba902b7"),
        (["rojo=1,congo=t61rcWkgMzE"], "rojo=1,congo=t61rcWkgMzE"),
        (["rojo=1 , congo=2"], "rojo=1,congo=2"),  # optional whitespace around members
        (["rojo=1", "congo=2"], "rojo=1,congo=2"),  # §3.3.1.1: several fields, one list
        (["rojo=1,,congo=2"], "rojo=1,congo=2"),  # empty list members are allowed
        (["tenant@vendor=x"], "tenant@vendor=x"),  # a multi-tenant key
    ],
)
def test_a_valid_tracestate_is_kept(fields: list[str], expected: str) -> None:
    assert parse_tracestate(fields) == expected


@pytest.mark.parametrize(
    "fields",
    [
        [""],
        ["novalue"],
        ["Upper=1"],  # keys are lower case
        ["rojo=a,b"],  # "b" is no member
        ["rojo=x=y"],  # "=" is not allowed in a value
        ["rojo=\x01"],  # values are printable ASCII
        ["rojo=caf\xe9"],
        ["k=" + "v" * MAX_TRACESTATE],  # longer than aigw keeps
        [",".join(f"k{i}=v" for i in range(33))],  # §3.3.1: at most 32 members
    ],
)
def test_a_malformed_tracestate_is_dropped(fields: list[str]) -> None:
    assert parse_tracestate(fields) is None


def test_headers_are_read_into_a_context() -> None:
    context = from_headers([VALID.encode()], [b"rojo=1"])
    assert context == TraceContext(TRACE, SPAN, "01", "rojo=1")


def test_two_traceparent_fields_are_invalid() -> None:
    """§3.2: a request with more than one traceparent field is treated as having none."""
    assert from_headers([VALID.encode(), VALID.encode()], None) is None


def test_tracestate_without_a_valid_traceparent_is_ignored() -> None:
    """§3.3: tracestate is meaningless without its traceparent."""
    assert from_headers([b"garbage"], [b"rojo=1"]) is None
    assert from_headers(None, [b"rojo=1"]) is None


def test_a_malformed_tracestate_leaves_the_traceparent() -> None:
    assert from_headers([VALID.encode()], [b"not a member"]) == TraceContext(TRACE, SPAN, "01")


def test_the_headers_written_upstream() -> None:
    headers: dict[bytes, bytes] = {}
    TraceContext(TRACE, SPAN, "01", "rojo=1").add_headers(headers)
    assert headers == {b"traceparent": VALID.encode(), b"tracestate": b"rojo=1"}
    headers = {}
    TraceContext(TRACE, SPAN, "00").add_headers(headers)
    assert headers == {b"traceparent": f"00-{TRACE}-{SPAN}-00".encode()}


def test_a_context_is_read_from_meta() -> None:
    """SEP-414: the same values as unprefixed _meta keys."""
    meta = {"traceparent": VALID, "tracestate": "rojo=1", "progressToken": 3}
    assert from_meta(meta) == TraceContext(TRACE, SPAN, "01", "rojo=1")
    assert from_meta({"traceparent": VALID, "tracestate": 7}) == TraceContext(TRACE, SPAN, "01")


@pytest.mark.parametrize(
    "meta", [None, [], {}, {"traceparent": 1}, {"traceparent": "00-x"}, {"tracestate": "a=1"}]
)
def test_no_context_in_meta(meta: object) -> None:
    assert from_meta(meta) is None


def test_a_context_replaces_the_one_in_meta_and_keeps_the_rest() -> None:
    params = {"name": "t", "_meta": {"progressToken": 3, "traceparent": "x", "tracestate": "a=1"}}
    assert TraceContext(TRACE, SPAN, "01").in_meta(params) == {
        "name": "t",
        "_meta": {"progressToken": 3, "traceparent": VALID},
    }
    assert TraceContext(TRACE, SPAN, "01", "b=2").in_meta({}) == {
        "_meta": {"traceparent": VALID, "tracestate": "b=2"}
    }
    assert params["_meta"]["traceparent"] == "x"  # the caller's params are left as they were
