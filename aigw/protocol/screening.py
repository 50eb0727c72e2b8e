"""Screening tool and prompt descriptions for poisoning: pure checks over one list item.

A description is read by the model, not by the user, so a server can hide
instructions in it (tool poisoning): characters no one sees, text aimed at the
model ("ignore previous instructions", ``<IMPORTANT>`` blocks, "do not tell the
user", reading ``~/.ssh``), or steering toward another server's tools (shadowing).
``findings`` looks at every text of an item the model reads (title, description,
the schemas' titles and descriptions, annotations' title, prompt arguments) and
says what it found and where; the gateway decides what to do (``gateway/screening.py``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

#: Characters that render as nothing or reorder text, by check name.
HIDDEN_RANGES: tuple[tuple[str, int, int], ...] = (
    ("tag characters", 0xE0000, 0xE007F),
    ("zero-width characters", 0x200B, 0x200D),
    ("zero-width characters", 0x2060, 0x2064),
    ("zero-width characters", 0xFEFF, 0xFEFF),
    ("zero-width characters", 0x180E, 0x180E),
    ("bidirectional controls", 0x200E, 0x200F),
    ("bidirectional controls", 0x202A, 0x202E),
    ("bidirectional controls", 0x2066, 0x2069),
)
_HIDDEN = re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for _, lo, hi in HIDDEN_RANGES) + "]")

#: Text aimed at the model rather than the user, by check name (case-insensitive).
INSTRUCTION_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "ignore_instructions",
        r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+)?"
        r"(?:previous|prior|above|earlier|preceding|other|system)\s+"
        r"(?:instructions?|prompts?|rules|directions|guidelines)",
    ),
    (
        "hidden_block",
        r"<\s*/?\s*(?:important|system|instructions?|secret|hidden|admin|critical)\b[^>]*>",
    ),
    (
        "conceal_from_user",
        r"\b(?:do\s+not|don'?t|never|must\s+not|without)\s+(?:\w+\s+){0,2}?"
        r"(?:tell(?:ing)?|mention(?:ing)?|inform(?:ing)?|notify(?:ing)?|reveal(?:ing)?|"
        r"show(?:ing)?|alert(?:ing)?)\s+(?:\w+\s+){0,2}?(?:the\s+)?user\b",
    ),
    (
        "sensitive_files",
        r"~/\.ssh|\bid_(?:rsa|ed25519|ecdsa)\b|\.aws/credentials|/etc/(?:passwd|shadow)\b"
        r"|\bmcp\.json\b|\.cursor/|\.config/gcloud|\bprivate[\s_-]key\b",
    ),
    ("sidenote", r"\bside[\s_-]?note\b"),
    (
        "model_directive",
        r"\b(?:you\s+are\s+now|new\s+instructions?\s*:|system\s+prompt\s*:|"
        r"as\s+an\s+ai\b.{0,40}\byou\s+must)",
    ),
    (
        "pass_secrets",
        r"\b(?:pass|send|include|append|put)\b.{0,60}\b(?:api[\s_-]*keys?|passwords?|"
        r"tokens?|credentials|secrets?)\b.{0,40}\b(?:parameter|argument|field)",
    ),
)
_INSTRUCTIONS = tuple(
    (name, re.compile(text, re.IGNORECASE | re.DOTALL)) for name, text in INSTRUCTION_PATTERNS
)
#: Every check name, for bounded metric labels.
CHECKS = ("hidden_unicode", *(name for name, _ in INSTRUCTION_PATTERNS), "other_backend_tool")
#: Text quoted in a finding, at most.
_QUOTED = 60


@attrs.frozen
class Finding:
    check: str
    #: Where in the item: ``description``, ``inputSchema.properties.path.description``.
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.check} in {self.where}: {self.what}"


def texts(item: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every text of a tool or prompt the model reads, with its place in the item."""
    for key in ("title", "description"):
        if isinstance(item.get(key), str):
            yield key, item[key]
    annotations = item.get("annotations")
    if isinstance(annotations, dict) and isinstance(annotations.get("title"), str):
        yield "annotations.title", annotations["title"]
    for schema in ("inputSchema", "outputSchema"):
        yield from _schema_texts(item.get(schema), schema, 0)
    arguments = item.get("arguments")
    if isinstance(arguments, list):
        for index, argument in enumerate(arguments):
            if isinstance(argument, dict):
                for key in ("name", "title", "description"):
                    if isinstance(argument.get(key), str):
                        yield f"arguments[{index}].{key}", argument[key]


def _schema_texts(node: Any, where: str, depth: int) -> Iterator[tuple[str, str]]:
    """Titles, descriptions, property names and string enums of a JSON Schema."""
    if depth > 16:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            place = f"{where}.{key}"
            if key in ("title", "description", "default") and isinstance(value, str):
                yield place, value
            elif key == "properties" and isinstance(value, dict):
                for name in value:
                    if isinstance(name, str):
                        yield f"{place}.{name}(name)", name
                yield from _schema_texts(value, place, depth + 1)
            else:
                yield from _schema_texts(value, place, depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, str) and where.endswith(".enum"):
                yield f"{where}[{index}]", value
            else:
                yield from _schema_texts(value, f"{where}[{index}]", depth + 1)


def _hidden(text: str) -> str | None:
    found = sorted({char for char in _HIDDEN.findall(text)})
    if not found:
        return None
    kinds = sorted({kind for kind, lo, hi in HIDDEN_RANGES for c in found if lo <= ord(c) <= hi})
    codes = ", ".join(f"U+{ord(c):04X}" for c in found[:5])
    revealed = "".join(chr(ord(c) - 0xE0000) for c in text if 0xE0020 <= ord(c) <= 0xE007E)
    said = f"{' and '.join(kinds)} ({codes})"
    return said + (f", tags spell {revealed[:_QUOTED]!r}" if revealed else "")


def _quote(text: str, match: re.Match[str]) -> str:
    return repr(" ".join(text[match.start() : match.end()].split())[:_QUOTED])


def findings(
    item: dict[str, Any], others: Iterable[str] = (), own: Iterable[str] = ()
) -> tuple[Finding, ...]:
    """What in ``item`` looks like poisoning.

    ``others`` are names the item has no business naming: other backends' exposed
    prefixes (``mail__``) and their tools' names; ``own`` are this backend's tools,
    never flagged.  Bare names are flagged only when distinctive (holding ``_``, ``-``
    or ``.``, 5 characters or more), so that ``search`` or ``read`` stay plain words.
    """
    found: list[Finding] = []
    own_names = set(own)
    foreign = _foreign_pattern(tuple(sorted({n for n in others if n not in own_names})))
    for where, text in texts(item):
        hidden = _hidden(text)
        if hidden is not None:
            found.append(Finding("hidden_unicode", where, hidden))
        visible = unicodedata.normalize("NFKC", _HIDDEN.sub("", text))
        for name, pattern in _INSTRUCTIONS:
            match = pattern.search(visible)
            if match is not None:
                found.append(Finding(name, where, _quote(visible, match)))
        match = foreign.search(visible) if foreign is not None else None
        if match is not None:
            found.append(Finding("other_backend_tool", where, _quote(visible, match)))
    return tuple(found)


@functools.lru_cache(maxsize=64)
def _foreign_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for every other backend's prefix (``mail__``) and distinctive tool name."""
    prefixes = [n for n in names if n.endswith("__")]
    bare = [n for n in names if not n.endswith("__") and len(n) >= 5 and re.search(r"[_.-]", n)]
    parts = [re.escape(p) + r"[A-Za-z0-9_-]+" for p in prefixes]
    parts += [re.escape(n) for n in sorted(bare, key=len, reverse=True)]
    if not parts:
        return None
    return re.compile(r"(?<![A-Za-z0-9_-])(?:" + "|".join(parts) + r")(?![A-Za-z0-9_-])")
