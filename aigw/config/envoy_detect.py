"""Whether a config file is in the Envoy AI Gateway's standalone format (``envoy/``).

Asked of every config file read, so it lives outside the ``envoy`` package: a gateway of
a native config never imports the Envoy reader (docs/performance.md, "Imports a started
gateway leaves out").
"""

from __future__ import annotations

import yaml

from aigw.config import nodes as cp


def _names(node: cp.Node) -> list[str]:
    if not isinstance(node, cp.MappingNode):
        return []
    return [key.value for key, _ in node.value if isinstance(key, cp.ScalarNode)]


def is_envoy(text: str) -> bool:
    """Whether ``text`` is in the Envoy format: some document has ``apiVersion`` and ``kind``."""
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except (yaml.YAMLError, RecursionError):
        return False
    return any({"apiVersion", "kind"} <= set(_names(d)) for d in documents if d is not None)
