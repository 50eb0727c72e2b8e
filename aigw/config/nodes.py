"""YAML node walking for aigw.config: typed reads that remember line numbers.

PyYAML's composed node tree (not the constructed dicts) keeps the position of
every value, so each problem can name its line.  Readers here never raise: they
record a problem and return None, so one pass reports everything that is wrong.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import attrs
import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode as MappingNode
from yaml.nodes import Node as Node
from yaml.nodes import ScalarNode as ScalarNode
from yaml.nodes import SequenceNode as SequenceNode
from yaml.resolver import Resolver

from aigw.config import secrets
from aigw.config.errors import ConfigError, Problem

T = TypeVar("T")

TAG = "tag:yaml.org,2002:"
STR = TAG + "str"
_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "null (an empty value)",
    "timestamp": "a date",
    "binary": "binary data",
}
_BOOL_HINT = " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"

ProblemTuple = tuple[str, int | None, str]


@attrs.define
class Context:
    """What every reader needs: where problems go, the environment, the base directory."""

    env: Mapping[str, str]
    base_dir: str
    problems: list[ProblemTuple] = attrs.field(factory=list)
    #: Every file read for a secret: (key path, line, file name), for its mode check.
    secret_files: list[ProblemTuple] = attrs.field(factory=list)
    #: Every secret written out in the config file: (key path, line, what it is).
    literal_secrets: list[ProblemTuple] = attrs.field(factory=list)

    def report(self, path: str, node: Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append((path, line, message))

    def secret_file(self, path: str, node: Node, name: str) -> None:
        """Remember that the file ``name`` at ``path`` holds a secret."""
        self.secret_files.append((path, node.start_mark.line + 1, self.resolve_path(name)))

    def literal_secret(self, path: str, node: Node, what: str = "a secret") -> None:
        """Remember that ``path`` holds a secret inline (unless it comes from ``${VAR}``)."""
        if not isinstance(node, ScalarNode) or secrets.is_literal(node.value):
            self.literal_secrets.append((path, node.start_mark.line + 1, what))

    def resolve_path(self, name: str) -> str:
        """File names in the config are relative to the config file's directory."""
        return os.path.join(self.base_dir, os.path.expanduser(name))


Converter = Callable[[Context, str, Node], T | None]


def describe(node: Node) -> str:
    """Say what a node is, the way a user would: "a list", "the boolean `yes`"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    short = node.tag.removeprefix(TAG)
    name = _TYPE_NAMES.get(short, node.tag)
    if short == "null":
        return name
    if short == "str":
        return f"{name} {node.value!r}"
    return f"{name} `{node.value}`"


def expected(ctx: Context, path: str, node: Node, what: str) -> None:
    """Report a value of the wrong type."""
    is_bool = node.tag == TAG + "bool" and isinstance(node, ScalarNode)
    hint = _BOOL_HINT if is_bool and "string" in what else ""
    ctx.report(path, node, f"expected {what}, got {describe(node)}{hint}")


# --- ${VAR} substitution -------------------------------------------------------

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def substitute(ctx: Context, path: str, node: Node, text: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; ``$${`` is a literal ``${``.

    As in the shell, ``:-`` also replaces a variable that is set but empty.
    """

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        inner = match.group(1)
        if inner is None:
            ctx.report(path, node, "unclosed `${` (write `$${` for a literal `${`)")
            return whole
        name, separator, default = inner.partition(":-")
        if not _VARIABLE.fullmatch(name):
            ctx.report(
                path,
                node,
                f"`${{{inner}}}` is not a variable reference: write ${{NAME}} or "
                "${NAME:-default} (or `$${` for a literal `${`)",
            )
            return ""
        value = ctx.env.get(name)
        if value:
            return value
        if separator:
            return default
        if value is None:
            ctx.report(
                path,
                node,
                f"environment variable {name} is not set "
                f"(give it a default with ${{{name}:-default}})",
            )
            return ""
        return value

    return _REFERENCE.sub(replace, text)


def scalar_value(ctx: Context, path: str, node: ScalarNode) -> object:
    """The Python value of a scalar, with ``${VAR}`` expanded in strings.

    An unquoted scalar that held a reference is resolved again after expansion,
    so ``max_connections: ${CONNS:-8}`` is still an integer.
    """
    if node.tag != STR:
        return _construct(node)
    text = substitute(ctx, path, node, node.value)
    if node.style is None and text != node.value:
        tag: str = Resolver().resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        if tag != STR:
            return _construct(ScalarNode(tag, text, node.start_mark, node.end_mark))
    return text


def _construct(node: ScalarNode) -> object:
    """The safe constructor's value, or the raw text when the tag does not fit it.

    PyYAML's constructors fail in many ways on a tag that does not fit its
    text (``!!bool foo`` is a KeyError, ``!!timestamp foo`` an AttributeError):
    any failure leaves the text, which the converter then reports.
    """
    try:
        return SafeConstructor().construct_object(node)
    except Exception:
        return node.value


# --- Converters: (ctx, path, node) -> value, or None after reporting -----------


def as_str(ctx: Context, path: str, node: Node) -> str | None:
    if isinstance(node, ScalarNode) and node.tag == STR:
        return substitute(ctx, path, node, node.value)
    expected(ctx, path, node, "a string")
    return None


def as_nonempty_str(ctx: Context, path: str, node: Node) -> str | None:
    value = as_str(ctx, path, node)
    if value == "":
        ctx.report(path, node, "must not be empty")
        return None
    return value


def _typed_scalar(ctx: Context, path: str, node: Node) -> object:
    if not isinstance(node, ScalarNode):
        return node
    return scalar_value(ctx, path, node)


def as_bool(ctx: Context, path: str, node: Node) -> bool | None:
    value = _typed_scalar(ctx, path, node)
    if isinstance(value, bool):
        return value
    expected(ctx, path, node, "a boolean (true or false)")
    return None


def integer(minimum: int = 0) -> Converter[int]:
    """A converter to an int no smaller than ``minimum``."""

    def convert(ctx: Context, path: str, node: Node) -> int | None:
        value = _typed_scalar(ctx, path, node)
        if not isinstance(value, int) or isinstance(value, bool):
            expected(ctx, path, node, "an integer")
            return None
        if value < minimum:
            ctx.report(path, node, f"must be at least {minimum}, got {value}")
            return None
        return value

    return convert


_DURATION = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _seconds(value: object) -> float | None:
    """Seconds from a number or a ``<number><unit>`` string; None if neither, or not finite."""
    seconds: float | None = None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            match = _DURATION.fullmatch(value.strip())
            if match:
                seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    except OverflowError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) else None


def duration(allow_zero: bool = False, at_most: float | None = None) -> Converter[float]:
    """A converter to float seconds from ``250ms``, ``30s``, ``5m``, ``1h``, ``1d`` or a number
    (``at_most``: seconds beyond which a value is a mistake, not a wish)."""

    def convert(ctx: Context, path: str, node: Node) -> float | None:
        seconds = _seconds(_typed_scalar(ctx, path, node))
        if seconds is None:
            ctx.report(
                path,
                node,
                f"expected a duration like 250ms, 30s, 5m, 1h, 1d or a number "
                f"of seconds, got {describe(node)}",
            )
            return None
        if seconds < 0 or (seconds == 0 and not allow_zero):
            ctx.report(path, node, f"must be {'at least 0' if allow_zero else 'more than 0'}")
            return None
        if at_most is not None and seconds > at_most:
            ctx.report(path, node, f"must be at most {at_most:g} s, got {seconds:g} s")
            return None
        return seconds

    return convert


_SIZE = re.compile(r"(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}


def as_size(ctx: Context, path: str, node: Node) -> int | None:
    """Bytes, from ``4MiB``, ``512KiB``, ``1MB`` or a plain number of bytes."""
    value = _typed_scalar(ctx, path, node)
    size: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match:
            size = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if size is None:
        ctx.report(
            path,
            node,
            f"expected a size like 4MiB, 512KiB, 1MB or a number of bytes, got {describe(node)}",
        )
        return None
    if size <= 0:
        ctx.report(path, node, "must be more than 0 bytes")
        return None
    return size


def choice(*choices: str) -> Converter[str]:
    """A converter accepting one of ``choices``, with a hint when close to one."""

    def convert(ctx: Context, path: str, node: Node) -> str | None:
        value = as_str(ctx, path, node)
        if value is None:
            return None
        if value not in choices:
            listed = " or ".join(repr(c) for c in choices)
            ctx.report(path, node, f"must be {listed}, got {value!r}{did_you_mean(value, choices)}")
            return None
        return value

    return convert


def items(ctx: Context, path: str, node: Node) -> list[tuple[str, Node]] | None:
    """The items of a list with their paths; report anything but a list."""
    if not isinstance(node, SequenceNode):
        expected(ctx, path, node, "a list")
        return None
    return [(f"{path}[{i}]", item) for i, item in enumerate(node.value)]


def list_of(convert: Converter[T]) -> Converter[tuple[T, ...]]:
    """A converter for a list whose items ``convert`` reads (bad items are left out)."""

    def convert_list(ctx: Context, path: str, node: Node) -> tuple[T, ...] | None:
        listed = items(ctx, path, node)
        if listed is None:
            return None
        values = [convert(ctx, item_path, item) for item_path, item in listed]
        return tuple(v for v in values if v is not None)

    return convert_list


as_str_list = list_of(as_nonempty_str)


def as_str_map(ctx: Context, path: str, node: Node) -> dict[str, str] | None:
    """A mapping of strings to strings (numbers are taken as their text)."""
    if not isinstance(node, MappingNode):
        expected(ctx, path, node, "a mapping")
        return None
    result: dict[str, str] = {}
    for key_node, value_node in node.value:
        key = as_nonempty_str(ctx, path, key_node)
        if key is None:
            continue
        item_path = f"{path}.{key}"
        value = _typed_scalar(ctx, item_path, value_node)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            result[key] = value
        else:
            expected(ctx, item_path, value_node, "a string")
    return result


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- Files --------------------------------------------------------------------


#: The most aigw reads of the config file or of a file it names (secrets, headers,
#: CA bundles are all far smaller); ``/dev/zero`` must not be read for ever.
MAX_FILE_BYTES = 4 * 1024 * 1024


class FileTooLarge(Exception):
    """A file is larger than MAX_FILE_BYTES."""


def read_bounded(full: str) -> bytes:
    """The bytes of ``full``, at most MAX_FILE_BYTES; OSError or FileTooLarge.

    Opened without blocking, then read blocking: a FIFO nobody writes to
    (a mistyped path under /run, say) reads as empty instead of hanging the
    daemon at start, while a pipe someone does write to (``--config <(...)``)
    is read to its end.
    """
    descriptor = os.open(full, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    os.set_blocking(descriptor, True)
    with os.fdopen(descriptor, "rb") as stream:
        data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise FileTooLarge(f"larger than {MAX_FILE_BYTES} bytes")
    return data


def read_text(path: str) -> str:
    """The UTF-8 text of the file at ``path`` that a command is given (the config,
    ``--mcp-config``, ``aigw convert``'s); ConfigError naming the file when it cannot be
    read, is too large or is not UTF-8 text."""
    try:
        return read_bounded(path).decode("utf-8")
    except OSError as error:
        raise ConfigError(
            path, [Problem("(file)", None, f"cannot read: {error.strerror}")]
        ) from None
    except FileTooLarge as error:
        raise ConfigError(path, [Problem("(file)", None, f"cannot read: {error}")]) from None
    except UnicodeDecodeError as error:
        raise ConfigError(path, [Problem("(file)", None, f"not UTF-8 text: {error}")]) from None


def read_file(ctx: Context, path: str, node: Node, name: str) -> bytes | None:
    """The bytes of a file named in the config; report it when unreadable."""
    full = ctx.resolve_path(name)
    try:
        return read_bounded(full)
    except OSError as error:
        ctx.report(path, node, f"cannot read {full}: {error.strerror or error}")
    except FileTooLarge as error:
        ctx.report(path, node, f"cannot read {full}: {error}")
    return None


def strip_newline(data: bytes) -> bytes:
    """Editors end files with a newline; a text secret does not include it."""
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data.removesuffix(b"\n")


#: Reads a value given inline (``is_file`` false) or in the file its twin key names.
TwinConverter = Callable[[Context, str, Node, bool], T | None]


def secret(ctx: Context, path: str, node: Node, is_file: bool) -> bytes | None:
    """A text secret: inline, or a file's bytes less one trailing newline."""
    text = as_nonempty_str(ctx, path, node)
    if text is None:
        return None
    if not is_file:
        ctx.literal_secret(path, node)
        return text.encode("utf-8")
    data = read_file(ctx, path, node, text)
    if data is None:
        return None
    ctx.secret_file(path, node, text)
    data = strip_newline(data)
    if not data:
        ctx.report(path, node, f"{ctx.resolve_path(text)} is empty")
        return None
    return data


def secret_text(ctx: Context, path: str, node: Node, is_file: bool) -> str | None:
    """Like secret, for secrets that are text (a client secret)."""
    data = secret(ctx, path, node, is_file)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        ctx.report(path, node, "the secret is not UTF-8 text")
        return None


# --- Mappings -----------------------------------------------------------------


class Section:
    """A YAML mapping, read key by key; keys outside ``known`` are reported at once."""

    def __init__(self, ctx: Context, node: MappingNode, path: str, known: Iterable[str]) -> None:
        self.ctx = ctx
        self.node = node
        self.path = path
        self.values: dict[str, Node] = {}
        self._flatten_merges()
        known = tuple(known)
        for key_node, value_node in node.value:
            self._add(key_node, value_node, known)

    def _flatten_merges(self) -> None:
        """Honour YAML merge keys (``<<: *defaults``) as PyYAML's loader would."""
        try:
            SafeConstructor().flatten_mapping(self.node)
        except ConstructorError as error:
            self.ctx.report(self.child("<<"), self.node, str(error.problem))

    def _add(self, key_node: Node, value_node: Node, known: tuple[str, ...]) -> None:
        if not (isinstance(key_node, ScalarNode) and key_node.tag == STR):
            expected(self.ctx, self.path or "(root)", key_node, "a string key")
            return
        key = key_node.value
        if key in self.values:
            first = self.values[key].start_mark.line + 1
            self.ctx.report(self.child(key), key_node, f"given twice (first on line {first})")
        elif key not in known:
            hint = did_you_mean(key, known)
            self.ctx.report(self.child(key), key_node, f"unknown key {key!r}{hint}")
        else:
            self.values[key] = value_node

    def child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.values

    def read(self, key: str, convert: Converter[T], default: T) -> T:
        """The converted value at ``key``, or ``default`` when absent or wrong."""
        node = self.values.get(key)
        if node is None:
            return default
        value = convert(self.ctx, self.child(key), node)
        return default if value is None else value

    def need(self, key: str, convert: Converter[T], placeholder: T) -> T:
        """Like read, but a missing key is a problem, reported on the mapping's line."""
        if key not in self.values:
            self.missing(key)
            return placeholder
        return self.read(key, convert, placeholder)

    def missing(self, key: str) -> None:
        self.ctx.report(self.child(key), self.node, f"required key {key!r} is missing")

    def section(self, key: str, known: Iterable[str]) -> Section | None:
        """The mapping at ``key`` as a Section (None when absent or not a mapping)."""
        node = self.values.get(key)
        if node is None:
            return None
        return open_section(self.ctx, node, self.child(key), known)

    def twin(self, key: str, file_key: str) -> tuple[str, Node, bool] | None:
        """Which of ``key`` and its twin ``file_key`` is given: (path, node, is_file).

        Giving both is a problem: which one wins would be a guess.
        """
        inline, file = self.values.get(key), self.values.get(file_key)
        if inline is not None and file is not None:
            self.ctx.report(self.child(file_key), file, f"give {key} or {file_key}, not both")
            return None
        if file is not None:
            return self.child(file_key), file, True
        if inline is not None:
            return self.child(key), inline, False
        return None


def value_node(node: Node, key: str) -> Node:
    """The value node at ``key`` of a mapping node (the node itself if absent)."""
    for key_node, value in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return value  # type: ignore[no-any-return]
    return node


def open_section(ctx: Context, node: Node, path: str, known: Iterable[str]) -> Section | None:
    if not isinstance(node, MappingNode):
        expected(ctx, path or "(root)", node, "a mapping")
        return None
    return Section(ctx, node, path, known)


def compose(ctx: Context, text: str) -> Node | None:
    """The node tree of a YAML document; syntax errors become problems."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        message = " ".join(str(part) for part in (error.context, error.problem) if part)
        ctx.problems.append(("(root)", line, f"YAML syntax error: {message}"))
    except yaml.YAMLError as error:
        ctx.problems.append(("(root)", None, f"YAML syntax error: {error}"))
    except RecursionError:
        # PyYAML's composer recurses once per nesting level.
        ctx.problems.append(("(root)", None, "the YAML is nested too deeply"))
    return None
