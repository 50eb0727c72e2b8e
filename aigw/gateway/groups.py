"""An index of values by group, kept in step with the collection it indexes.

A note from another process or a client's request names one session or one user;
finding that one's streams or lingering feeds by scanning all of them costs every
open stream per event, which anyone may send at will.  ``Groups`` finds them in one
lookup instead.  Its owner adds and discards each value where the indexed collection
gains and loses it, so it holds what that holds; a group goes with its last value, so
the index is bounded as the collection is.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Generic, TypeVar

G = TypeVar("G")
K = TypeVar("K")
V = TypeVar("V")


class Groups(Generic[G, K, V]):
    """Values by key, grouped; each group keeps its values in the order they came in."""

    def __init__(self) -> None:
        self._groups: dict[G, dict[K, V]] = {}

    def add(self, group: G, key: K, value: V) -> None:
        self._groups.setdefault(group, {})[key] = value

    def discard(self, group: G, key: K) -> None:
        """``key`` leaves ``group`` (nothing if it is not there); an emptied group goes."""
        members = self._groups.get(group)
        if members is None or key not in members:
            return
        del members[key]
        if not members:
            del self._groups[group]

    def of(self, group: G) -> Mapping[K, V]:
        """``group``'s values by key, oldest first (empty when it has none): a view, so
        a caller that changes the index while it goes through them copies them first."""
        members = self._groups.get(group)
        return MappingProxyType(members) if members is not None else MappingProxyType({})

    def snapshot(self) -> dict[G, dict[K, V]]:
        """Every group, copied (what tests compare with the indexed collection)."""
        return {group: dict(members) for group, members in self._groups.items()}
