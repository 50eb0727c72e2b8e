"""config.holder.ConfigHolder: the config in force, swapped atomically on reload."""

from __future__ import annotations

import attrs
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import BackendConfig, Config, LoggingConfig
from aigw.config.holder import ConfigHolder

FIRST = Config(
    listen=("tcp:0",),
    public_url="https://gw.example",
    mcp_path="/mcp",
    auth=None,
    backends=(BackendConfig(name="files", url="http://files.internal/mcp"),),
)
SECOND = attrs.evolve(FIRST, logging=LoggingConfig(level="debug"))


class ConfigHolderTests(SynchronousTestCase):
    def test_current_is_the_config_given(self) -> None:
        self.assertIs(ConfigHolder(FIRST).current, FIRST)

    def test_swap_puts_the_new_config_in_force_and_returns_the_old(self) -> None:
        holder = ConfigHolder(FIRST)
        self.assertIs(holder.swap(SECOND), FIRST)
        self.assertIs(holder.current, SECOND)

    def test_subscribers_are_told_old_and_new_in_order(self) -> None:
        holder = ConfigHolder(FIRST)
        told: list[tuple[str, Config, Config]] = []
        holder.subscribe(lambda old, new: told.append(("a", old, new)))
        holder.subscribe(lambda old, new: told.append(("b", old, new)))
        holder.swap(SECOND)
        self.assertEqual(told, [("a", FIRST, SECOND), ("b", FIRST, SECOND)])

    def test_subscribers_see_the_new_config_already_in_force(self) -> None:
        holder = ConfigHolder(FIRST)
        seen: list[Config] = []
        holder.subscribe(lambda old, new: seen.append(holder.current))
        holder.swap(SECOND)
        self.assertEqual(seen, [SECOND])

    def test_a_readers_snapshot_is_unchanged_by_a_later_swap(self) -> None:
        """A request reads ``current`` once and keeps that snapshot to its end."""
        holder = ConfigHolder(FIRST)
        snapshot = holder.current
        holder.swap(SECOND)
        self.assertIs(snapshot, FIRST)
        self.assertEqual(snapshot.logging, LoggingConfig())
        self.assertEqual(holder.current.logging.level, "debug")
