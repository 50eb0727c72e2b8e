"""``catalog.selected``: the tools or prompts of a listed page that are pinned and that the
policy is asked about, one filter for both."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from aigw.gateway.catalog import selected

PAGE: list[Any] = [
    {"name": "search"},
    {"name": "delete"},
    {"title": "no name"},
    {"name": 7},
    "not an item",
    None,
]


def only_search(name: str) -> bool:
    return name == "search"


class SelectedTests(SynchronousTestCase):
    def test_tools_the_selector_allows_and_only_named_ones(self) -> None:
        self.assertEqual(selected(PAGE, "tool", only_search), [{"name": "search"}])

    def test_prompts_have_no_selector(self) -> None:
        self.assertEqual(
            selected(PAGE, "prompt", only_search), [{"name": "search"}, {"name": "delete"}]
        )

    def test_an_empty_page(self) -> None:
        self.assertEqual(selected([], "tool", only_search), [])
