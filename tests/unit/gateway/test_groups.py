"""``groups.Groups``: values by group, in the order they came, no empty group kept."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.gateway.groups import Groups


class GroupsTests(SynchronousTestCase):
    def test_a_group_keeps_its_values_in_the_order_they_came(self) -> None:
        groups: Groups[str, str, int] = Groups()
        groups.add("alice", "b", 2)
        groups.add("bob", "x", 9)
        groups.add("alice", "a", 1)
        self.assertEqual(list(groups.of("alice").items()), [("b", 2), ("a", 1)])
        self.assertEqual(dict(groups.of("carol")), {})

    def test_a_group_goes_with_its_last_value(self) -> None:
        groups: Groups[str, str, int] = Groups()
        groups.add("alice", "a", 1)
        groups.add("alice", "b", 2)
        groups.discard("alice", "a")
        self.assertEqual(groups.snapshot(), {"alice": {"b": 2}})
        groups.discard("alice", "b")
        self.assertEqual(groups.snapshot(), {})

    def test_discarding_what_is_not_there_changes_nothing(self) -> None:
        groups: Groups[str, str, int] = Groups()
        groups.add("alice", "a", 1)
        groups.discard("alice", "z")
        groups.discard("bob", "a")
        self.assertEqual(groups.snapshot(), {"alice": {"a": 1}})

    def test_a_group_read_is_a_view_that_cannot_change_the_index(self) -> None:
        groups: Groups[str, str, int] = Groups()
        groups.add("alice", "a", 1)
        view = groups.of("alice")
        with self.assertRaises(TypeError):
            view["b"] = 2  # type: ignore[index]
        groups.add("alice", "b", 2)
        self.assertEqual(list(view), ["a", "b"])
