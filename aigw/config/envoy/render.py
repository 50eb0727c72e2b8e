"""``aigw convert``: a translation written as native YAML, with its notes as comments."""

from __future__ import annotations

import textwrap

import yaml

from aigw.config.envoy.documents import Translation
from aigw.config.mcp_servers import plain


def _comment(text: str, indent: str = "") -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text, 88 - len(indent))]


def render(source: str, translation: Translation) -> str:
    """The native config as YAML text, with a comment where a choice was made."""
    lines = [
        f"# Converted from {source} (Envoy AI Gateway) by `aigw convert`.",
        "# Check it with `aigw check FILE`; etc/aigw/aigw.yaml explains every key.",
    ]
    notes = translation.notes
    for _, note in (n for n in notes if n[0] == ""):
        lines.extend(_comment(note))
    for key_node, value in translation.root.value:
        key = key_node.value
        for _, note in (n for n in notes if n[0] == key):
            lines.extend(_comment(note))
        if key != "backends":
            dumped = yaml.safe_dump({key: plain(value)}, sort_keys=False, allow_unicode=True)
            lines.append(dumped.rstrip("\n"))
            continue
        lines.append("backends:")
        for index, item in enumerate(value.value):
            for _, note in (n for n in notes if n[0] == f"backends[{index}]"):
                lines.extend(_comment(note, "  "))
            entry = yaml.safe_dump([plain(item)], sort_keys=False, allow_unicode=True)
            lines.extend(f"  {line}" for line in entry.rstrip("\n").split("\n"))
    return "\n".join(lines) + "\n"
