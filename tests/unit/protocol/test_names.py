"""Exposed names and URIs (MCP 2025-11-25 server/tools "Tool Names", server/resources)."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aigw.config import ToolSelector
from aigw.gateway.selectors import ToolFilter
from aigw.protocol.names import (
    EXPOSED_NAME_PATTERN,
    NameTable,
    expose_name,
    expose_uri,
    resolve_uri,
    rewrite_prompt_result,
    rewrite_read_result,
    rewrite_resource_links,
    split_name,
)

backends = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,31}\Z").filter(lambda b: "__" not in b)
upstream_names = st.text(min_size=1, max_size=100)
uris = st.text(min_size=1, max_size=60)


class ExposeNameTests(SynchronousTestCase):
    def test_plain_name_is_backend_separator_name(self) -> None:
        self.assertEqual(expose_name("github", "search_issues"), "github__search_issues")

    def test_plain_name_splits_back(self) -> None:
        self.assertEqual(split_name("github__search_issues"), ("github", "search_issues"))

    def test_split_is_at_the_first_separator(self) -> None:
        self.assertEqual(split_name("a__b__c"), ("a", "b__c"))
        self.assertEqual(split_name("gh___private"), ("gh", "_private"))

    def test_split_needs_both_sides(self) -> None:
        for exposed in ("plain", "__x", "x__", "__"):
            self.assertIsNone(split_name(exposed), exposed)

    def test_dot_is_mapped_with_a_hash_suffix(self) -> None:
        """server/tools allows '.', but several model APIs refuse it: it becomes '_' + hash."""
        exposed = expose_name("gh", "admin.tools.list")
        assert exposed is not None
        self.assertRegex(exposed, r"^gh__admin_tools_list_[0-9a-f]{8}$")

    def test_mapping_is_deterministic(self) -> None:
        self.assertEqual(expose_name("gh", "a.b"), expose_name("gh", "a.b"))

    def test_names_that_clean_to_the_same_text_stay_distinct(self) -> None:
        self.assertNotEqual(expose_name("gh", "a.b"), expose_name("gh", "a/b"))

    def test_long_names_are_cut_to_64_with_a_hash(self) -> None:
        first = expose_name("backend", "x" * 100 + "1")
        second = expose_name("backend", "x" * 100 + "2")
        assert first is not None
        assert second is not None
        self.assertEqual(len(first), 64)
        self.assertNotEqual(first, second)

    def test_name_exactly_filling_64_is_kept(self) -> None:
        name = "y" * (64 - len("b__"))
        self.assertEqual(expose_name("b", name), "b__" + name)

    def test_empty_name_cannot_be_exposed(self) -> None:
        self.assertIsNone(expose_name("b", ""))

    def test_invalid_backend_cannot_prefix(self) -> None:
        self.assertIsNone(expose_name("bad name", "t"))

    @given(backends, upstream_names)
    def test_exposed_names_always_match_the_strict_pattern(self, backend: str, name: str) -> None:
        exposed = expose_name(backend, name)
        assert exposed is not None
        self.assertTrue(EXPOSED_NAME_PATTERN.fullmatch(exposed), exposed)
        self.assertTrue(exposed.startswith(backend + "__"))


def table_of(backend: str, names: list[str]) -> NameTable:
    table = NameTable()
    table.add(backend, names)
    return table


class NameTableTests(SynchronousTestCase):
    def test_resolves_plain_and_mapped_names(self) -> None:
        table = table_of("gh", ["search", "admin.list"])
        mapped = expose_name("gh", "admin.list")
        assert mapped is not None
        self.assertEqual(table.resolve("gh__search"), ("gh", "search"))
        self.assertEqual(table.resolve(mapped), ("gh", "admin.list"))
        self.assertEqual(table.expose("gh", "admin.list"), mapped)

    def test_unknown_names_do_not_resolve(self) -> None:
        self.assertIsNone(table_of("gh", ["a"]).resolve("gh__b"))

    def test_backends_whose_names_collide_both_route(self) -> None:
        """'gh' + '_x' and 'gh_' + 'x' would both be 'gh___x': the second is mapped."""
        table = NameTable()
        table.add("gh", ["_x"])
        self.assertEqual(table.add("gh_", ["x"]), [])
        self.assertEqual(table.resolve("gh___x"), ("gh", "_x"))
        other = table.expose("gh_", "x")
        assert other is not None
        self.assertEqual(table.resolve(other), ("gh_", "x"))

    def test_plain_name_keeps_its_form_over_a_colliding_mapped_one(self) -> None:
        mapped = expose_name("b", "a.b")
        assert mapped is not None
        taken = mapped.removeprefix("b__")
        table = table_of("b", ["a.b", taken])
        self.assertEqual(table.resolve(mapped), ("b", taken))
        self.assertNotEqual(table.expose("b", "a.b"), mapped)

    def test_names_that_cannot_be_exposed_are_returned(self) -> None:
        self.assertEqual(NameTable().add("b", ["", "ok"]), [""])

    @given(st.lists(st.tuples(backends, upstream_names), max_size=30))
    def test_every_recorded_name_round_trips(self, entries: list[tuple[str, str]]) -> None:
        table = NameTable()
        for backend, name in entries:
            table.add(backend, [name])
        seen: dict[str, tuple[str, str]] = {}
        for backend, name in entries:
            exposed = table.expose(backend, name)
            assert exposed is not None
            self.assertTrue(EXPOSED_NAME_PATTERN.fullmatch(exposed))
            self.assertEqual(table.resolve(exposed), (backend, name))
            self.assertEqual(seen.setdefault(exposed, (backend, name)), (backend, name))


class ToolFilterTests(SynchronousTestCase):
    def test_empty_selector_allows_everything(self) -> None:
        self.assertTrue(ToolFilter(ToolSelector()).allows("anything"))

    def test_include_lists_the_only_allowed_tools(self) -> None:
        tools = ToolFilter(ToolSelector(include=("a",), include_regex=(re.compile("b.*"),)))
        self.assertEqual([tools.allows(n) for n in ("a", "bee", "c")], [True, True, False])

    def test_exclude_wins_over_include(self) -> None:
        tools = ToolFilter(ToolSelector(include=("a",), exclude=("a",)))
        self.assertFalse(tools.allows("a"))
        tools = ToolFilter(
            ToolSelector(include_regex=(re.compile(".*"),), exclude_regex=(re.compile("x.*"),))
        )
        self.assertEqual([tools.allows(n) for n in ("y", "xy")], [True, False])

    def test_regexes_must_match_the_whole_name(self) -> None:
        tools = ToolFilter(ToolSelector(include_regex=(re.compile("get"),)))
        self.assertFalse(tools.allows("get_user"))
        self.assertTrue(tools.allows("get"))


def expand(template: str, values: dict[str, str]) -> str:
    """RFC 6570 level 1 (simple string expansion): {var} percent-encodes all but unreserved."""
    return re.sub(
        r"\{(\w+)\}", lambda m: urllib.parse.quote(values[m.group(1)], safe="-._~"), template
    )


class UriTests(SynchronousTestCase):
    def test_exposed_uri_is_scheme_backend_then_the_original(self) -> None:
        self.assertEqual(expose_uri("code", "file:///src/main.rs"), "aigw:code/file:///src/main.rs")

    def test_exposed_uri_has_an_rfc3986_scheme(self) -> None:
        """server/resources "Custom URI Schemes" MUST follow RFC 3986 (§3.1 scheme syntax)."""
        exposed = expose_uri("a_b-c", "x:y")
        self.assertRegex(exposed, r"^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9_-]+/")

    def test_resolve_gives_back_backend_and_original(self) -> None:
        self.assertEqual(
            resolve_uri("aigw:code/file:///a/../b?q=1#f"), ("code", "file:///a/../b?q=1#f")
        )

    def test_scheme_is_case_insensitive(self) -> None:
        """RFC 3986 §3.1: schemes are case-insensitive."""
        self.assertEqual(resolve_uri("AIGW:code/x:y"), ("code", "x:y"))

    def test_nested_gateways_resolve_one_level(self) -> None:
        exposed = expose_uri("outer", expose_uri("inner", "file:///x"))
        self.assertEqual(resolve_uri(exposed), ("outer", "aigw:inner/file:///x"))

    def test_foreign_or_broken_uris_do_not_resolve(self) -> None:
        for uri in (
            "file:///x",
            "aigw:",
            "aigw:code",
            "aigw:code/",
            "aigw:/x",
            "aigw:a b/x",
            "aig",
        ):
            self.assertIsNone(resolve_uri(uri), uri)

    @given(backends, uris)
    def test_every_uri_round_trips(self, backend: str, uri: str) -> None:
        self.assertEqual(resolve_uri(expose_uri(backend, uri)), (backend, uri))

    @given(
        backends,
        st.sampled_from(["file:///{path}", "db://{table}/rows/{id}", "{scheme}:x", "s:{a}{b}"]),
        st.dictionaries(
            st.sampled_from(["path", "table", "id", "scheme", "a", "b"]), st.text(max_size=10)
        ),
    )
    def test_expanding_an_exposed_template_resolves_to_the_upstream_expansion(
        self, backend: str, template: str, values: dict[str, str]
    ) -> None:
        values = {k: values.get(k, "v") for k in ("path", "table", "id", "scheme", "a", "b")}
        exposed = expose_uri(backend, template)
        resolved = resolve_uri(expand(exposed, values))
        upstream = expand(template, values)
        self.assertEqual(resolved, (backend, upstream) if upstream else None)

    def test_url_parsers_keep_the_exposed_uri_as_it_is(self) -> None:
        """A WHATWG parser (pydantic's AnyUrl, used by MCP SDKs) must not rewrite it."""
        try:
            from pydantic import AnyUrl, TypeAdapter
        except ImportError:  # pragma: no cover - pydantic comes with the mcp test extra
            self.skipTest("pydantic is not installed")
        exposed = expose_uri("Code_1", "file:///a/../{b}%20c?q=1#f")
        self.assertEqual(str(TypeAdapter(AnyUrl).validate_python(exposed)), exposed)


class RewriteTests(SynchronousTestCase):
    def test_resource_links_in_tool_results_are_exposed(self) -> None:
        """server/tools "Resource Links" and "Embedded Resources"."""
        result: dict[str, Any] = {
            "content": [
                {"type": "text", "text": "t"},
                {"type": "resource_link", "uri": "file:///a", "name": "a"},
                {"type": "resource", "resource": {"uri": "file:///b", "text": "b"}},
            ],
            "isError": False,
        }
        rewritten = rewrite_resource_links("code", result)
        self.assertEqual(
            rewritten["content"],
            [
                {"type": "text", "text": "t"},
                {"type": "resource_link", "uri": "aigw:code/file:///a", "name": "a"},
                {"type": "resource", "resource": {"uri": "aigw:code/file:///b", "text": "b"}},
            ],
        )
        self.assertIs(rewritten["content"][0], result["content"][0])

    def test_the_upstream_result_is_not_modified(self) -> None:
        block = {"type": "resource_link", "uri": "file:///a"}
        result = {"content": [block]}
        rewrite_resource_links("code", result)
        self.assertEqual(result, {"content": [{"type": "resource_link", "uri": "file:///a"}]})

    def test_results_without_links_are_returned_as_they_are(self) -> None:
        result = {"content": [{"type": "text", "text": "t"}, "junk", {"type": "resource"}]}
        self.assertIs(rewrite_resource_links("code", result), result)
        odd = {"content": "x"}
        self.assertIs(rewrite_resource_links("code", odd), odd)

    def test_prompt_messages_links_are_exposed(self) -> None:
        """server/prompts: a message's content may be a resource link or embedded resource."""
        result = {
            "messages": [{"role": "user", "content": {"type": "resource_link", "uri": "u:1"}}]
        }
        rewritten = rewrite_prompt_result("p", result)
        self.assertEqual(rewritten["messages"][0]["content"]["uri"], "aigw:p/u:1")

    def test_read_contents_carry_the_exposed_uri(self) -> None:
        """server/resources "Reading Resources": contents[].uri."""
        result = {"contents": [{"uri": "u:1", "text": "x"}, 5]}
        self.assertEqual(
            rewrite_read_result("r", result)["contents"], [{"uri": "aigw:r/u:1", "text": "x"}, 5]
        )
