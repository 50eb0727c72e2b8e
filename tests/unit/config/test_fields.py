"""Each default is written once, in the model's field: what the reader falls back to
is the field's default, for every key left out or given a wrong value."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import (
    AccessConfig,
    AccessRule,
    AuthConfig,
    BackendConfig,
    Config,
    IntrospectionConfig,
    LoggingConfig,
    ServerConfig,
    SessionsConfig,
    ToolSelector,
    fields,
    nodes,
    parse_config,
)
from tests.unit.config.helpers import MINIMAL, ConfigTestCase

MODEL = (
    ToolSelector,
    BackendConfig,
    IntrospectionConfig,
    AuthConfig,
    AccessRule,
    AccessConfig,
    SessionsConfig,
    LoggingConfig,
    ServerConfig,
    Config,
)


def defaults(cls: type) -> dict[str, Any]:
    """The defaults of ``cls``'s fields, from attrs itself."""
    return {f.name: fields.default(f) for f in attrs.fields(cls) if f.default is not attrs.NOTHING}


class MetadataTests(SynchronousTestCase):
    def test_every_field_says_how_it_is_read(self) -> None:
        for cls in MODEL:
            for field in attrs.fields(cls):
                with self.subTest(field=f"{cls.__name__}.{field.name}"):
                    self.assertIsInstance(fields.reading(field), fields.Reading)

    def test_keys_are_the_fields_and_their_file_twins(self) -> None:
        self.assertEqual(
            set(fields.keys(SessionsConfig)) - {f.name for f in attrs.fields(SessionsConfig)},
            {"secret_file", "old_secret_files"},
        )
        self.assertIn("headers_file", fields.keys(BackendConfig))
        self.assertIn("shared_secret_file", fields.keys(AuthConfig))
        self.assertIn("client_secret_file", fields.keys(IntrospectionConfig))

    def test_own_reader_fields_must_be_handed_in(self) -> None:
        with self.assertRaises(TypeError):
            fields.read_field(None, Config, "auth")  # type: ignore[arg-type]


class SingleDefaultTests(ConfigTestCase):
    def test_minimal_config_holds_the_fields_defaults(self) -> None:
        """Every key left out reads as its field's default, nested sections included."""
        config = parse_config(MINIMAL, env={})
        for name, value in defaults(Config).items():
            if name != "source":
                self.assertEqual(getattr(config, name), value, name)
        backend = config.backends[0]
        self.assertEqual(backend, BackendConfig(name="one", url=backend.url))
        for name, value in defaults(BackendConfig).items():
            if name != "url":
                self.assertEqual(getattr(backend, name), value, name)

    def test_empty_sections_hold_the_fields_defaults(self) -> None:
        text = MINIMAL + "access: {}\nsessions: {}\nlogging: {}\nserver: {}\n"
        config = parse_config(text, env={})
        self.assertEqual(config.access, AccessConfig())
        self.assertEqual(config.sessions, SessionsConfig())
        self.assertEqual(config.logging, LoggingConfig())
        self.assertEqual(config.server, ServerConfig())

    def test_empty_auth_and_introspection_hold_the_fields_defaults(self) -> None:
        text = MINIMAL.replace(
            "auth: none\n",
            "auth:\n  issuer: https://as.example\n"
            "  introspection: {endpoint: 'https://as.example/i', client_id: c, client_secret: s}\n",
        )
        auth = parse_config(text, env={}).auth
        assert auth is not None
        assert auth.introspection is not None
        for name, value in defaults(AuthConfig).items():
            if name != "introspection":
                self.assertEqual(getattr(auth, name), value, name)
        for name, value in defaults(IntrospectionConfig).items():
            self.assertEqual(getattr(auth.introspection, name), value, name)

    def test_a_wrong_value_reads_as_the_fields_default(self) -> None:
        """Reading goes on after a problem with the field's default in its place."""
        section = self.section("timeout: 0\nmax_connections: many\nheaders_file: []\n")
        backend = fields.read_fields(section, BackendConfig)
        self.assertEqual(len(section.ctx.problems), 4, section.ctx.problems)  # + name
        self.assertEqual(backend.timeout, attrs.fields(BackendConfig).timeout.default)
        self.assertEqual(backend.max_connections, 32)
        self.assertEqual(backend.headers, {})

    def section(self, text: str) -> nodes.Section:
        ctx = nodes.Context(env={}, base_dir=".")
        node = nodes.compose(ctx, text)
        assert node is not None
        section = nodes.open_section(ctx, node, "backends[0]", fields.keys(BackendConfig))
        assert section is not None
        return section


@attrs.frozen
class TwoNumbers:
    """Two fields, declared ``a`` then ``b``."""

    a: int = attrs.field(default=1, metadata=fields.read_as(nodes.integer(1)))
    b: int = attrs.field(default=2, metadata=fields.read_as(nodes.integer(1)))


class SectionOfTests(SynchronousTestCase):
    def read(self, first: str | None) -> tuple[TwoNumbers | None, list[str]]:
        """``{a: x, b: y}`` (both wrong, on one line) read by ``section_of``."""
        ctx = nodes.Context(env={}, base_dir=".")
        node = nodes.compose(ctx, "{a: x, b: y}\n")
        assert node is not None
        value = fields.section_of(TwoNumbers, first=first)(ctx, "two", node)
        return value, [path for path, _, _ in ctx.problems]

    def test_fields_are_read_in_declaration_order(self) -> None:
        self.assertEqual(self.read(None), (TwoNumbers(), ["two.a", "two.b"]))

    def test_the_first_field_is_read_before_the_others(self) -> None:
        self.assertEqual(self.read("b"), (TwoNumbers(), ["two.b", "two.a"]))

    def test_the_first_field_keeps_its_value(self) -> None:
        ctx = nodes.Context(env={}, base_dir=".")
        node = nodes.compose(ctx, "{a: 5, b: 7}\n")
        assert node is not None
        self.assertEqual(
            fields.section_of(TwoNumbers, first="b")(ctx, "two", node), TwoNumbers(5, 7)
        )
        self.assertEqual(ctx.problems, [])

    def test_not_a_mapping_is_none(self) -> None:
        ctx = nodes.Context(env={}, base_dir=".")
        node = nodes.compose(ctx, "[1]\n")
        assert node is not None
        self.assertIsNone(fields.section_of(TwoNumbers, first="b")(ctx, "two", node))
        self.assertEqual([path for path, _, _ in ctx.problems], ["two"])
