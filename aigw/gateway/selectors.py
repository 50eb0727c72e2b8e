"""A backend's ``tools`` selector from the config, as a predicate on upstream names."""

from __future__ import annotations

from aigw.config import ToolSelector


class ToolFilter:
    """A backend's ``tools`` selector, applied to upstream tool names.

    ``exclude`` and ``exclude_regex`` win; with neither ``include`` nor
    ``include_regex`` every other tool is allowed.  Patterns must match the
    whole name (``re.fullmatch``).
    """

    __slots__ = ("_everything", "_exclude", "_exclude_regex", "_include", "_include_regex")

    def __init__(self, selector: ToolSelector) -> None:
        self._include = frozenset(selector.include)
        self._include_regex = selector.include_regex
        self._exclude = frozenset(selector.exclude)
        self._exclude_regex = selector.exclude_regex
        self._everything = not selector.include and not selector.include_regex

    def allows(self, name: str) -> bool:
        if name in self._exclude:
            return False
        for pattern in self._exclude_regex:
            if pattern.fullmatch(name):
                return False
        if self._everything or name in self._include:
            return True
        return any(pattern.fullmatch(name) for pattern in self._include_regex)
