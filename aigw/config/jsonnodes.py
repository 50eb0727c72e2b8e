"""JSON read into the YAML node tree of ``nodes.py``, every value with its line.

The ``mcpServers`` files of MCP clients are JSON.  Read by the standard library's
parser (strict JSON: a syntax error names its line and column), but into PyYAML
nodes carrying the position of each value, so the config's own readers and
converters (``nodes.Section``, ``values.url``, ``${VAR}`` substitution) read them
as they read YAML, and each problem names its key path and line.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from collections.abc import Callable
from typing import Any

from yaml.error import Mark

from aigw.config import nodes as cp

_Scan = Callable[[str, int], tuple[Any, int]]


def _skip_space(text: str, index: int) -> int:
    """The index of the first character at or after ``index`` that is not JSON whitespace."""
    while index < len(text) and text[index] in " \t\n\r":
        index += 1
    return index


class _Pairs(list[tuple[str, cp.Node]]):
    """A JSON object as its pairs, in order, repeated keys kept (``Section`` reports them)."""


class _NotJSON(ValueError):
    """``NaN``, ``Infinity``: Python's parser takes them, JSON has no such values."""


def _reject_constant(name: str) -> None:
    raise _NotJSON(f"{name} is not a JSON value")


class _Decoder(json.JSONDecoder):
    """The pure-Python scanner, whose objects and arrays hold located values."""

    def __init__(self, text: str) -> None:
        super().__init__(object_pairs_hook=_Pairs, parse_constant=_reject_constant)
        self._text = text
        self.parse_object = self._object
        self.parse_array = self._array
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]

    def _object(self, s_and_end: tuple[str, int], strict: bool, scan: _Scan, *rest: Any) -> Any:
        return json.decoder.JSONObject(s_and_end, strict, self.located(scan), *rest)  # type: ignore[attr-defined]

    def _array(self, s_and_end: tuple[str, int], scan: _Scan) -> Any:
        return json.decoder.JSONArray(s_and_end, self.located(scan))  # type: ignore[attr-defined]

    def located(self, scan: _Scan) -> _Scan:
        def scan_node(text: str, index: int) -> tuple[cp.Node, int]:
            try:
                value, end = scan(text, index)
            except _NotJSON as error:  # raised where the constant is, which says where
                raise json.JSONDecodeError(str(error), text, index) from None
            return _node(value, self._mark(index)), end

        return scan_node

    def _mark(self, index: int) -> Mark:
        line = self._text.count("\n", 0, index)
        column = index - (self._text.rfind("\n", 0, index) + 1)
        return Mark("<json>", index, line, column, None, 0)


def _node(value: object, mark: Mark) -> cp.Node:
    """The YAML node of one decoded value (its items already nodes)."""
    if isinstance(value, _Pairs):
        pairs = [(_key(key, item), item) for key, item in value]
        return cp.MappingNode(cp.TAG + "map", pairs, mark, mark)
    if isinstance(value, list):
        return cp.SequenceNode(cp.TAG + "seq", value, mark, mark)
    if isinstance(value, str):
        return cp.ScalarNode(cp.STR, value, mark, mark, style='"')
    if isinstance(value, bool):
        return cp.ScalarNode(cp.TAG + "bool", "true" if value else "false", mark, mark)
    if value is None:
        return cp.ScalarNode(cp.TAG + "null", "null", mark, mark)
    kind = "int" if isinstance(value, int) else "float"
    return cp.ScalarNode(cp.TAG + kind, repr(value), mark, mark)


def _key(key: str, value: cp.Node) -> cp.ScalarNode:
    """A key, placed at its value: the line a problem with either is on."""
    return cp.ScalarNode(cp.STR, key, value.start_mark, value.end_mark, style='"')


def compose_json(ctx: cp.Context, text: str) -> cp.Node | None:
    """The node tree of a JSON document; a syntax error is a problem naming line and column.

    A leading byte order mark (some Windows editors write one) is skipped.
    """
    decoder = _Decoder(text)
    start = _skip_space(text, 1 if text.startswith("\ufeff") else 0)
    try:
        try:
            node: cp.Node
            node, end = decoder.located(decoder.scan_once)(text, start)
        except StopIteration as stop:
            raise json.JSONDecodeError("Expecting value", text, stop.value) from None
        end = _skip_space(text, end)
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as error:
        where = f"column {error.colno}: " if error.colno else ""
        ctx.problems.append(("(root)", error.lineno, f"JSON syntax error: {where}{error.msg}"))
        return None
    except RecursionError:
        ctx.problems.append(("(root)", None, "the JSON is nested too deeply"))
        return None
    return node
