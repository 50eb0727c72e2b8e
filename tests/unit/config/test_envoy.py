"""The Envoy AI Gateway's standalone format: converted, loaded, and each field aigw cannot
honour refused by name and line."""

from __future__ import annotations

from pathlib import Path

import attrs

from aigw.config import ConfigError, envoy, load_config, parse_config
from aigw.config import nodes as cp
from aigw.config.envoy.documents import Translator
from tests.unit.config.helpers import ConfigTestCase, problems

FIXTURES = Path(__file__).parent / "fixtures" / "envoy"
ENV = {"CONTEXT7_API_KEY": "c7-key"}

# Lines 1..30; tests append to the backendRef (6 spaces) or the route's spec (2 spaces).
BASE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  listeners:
    - name: http
      protocol: HTTP
      port: 8000
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: one
spec:
  endpoints:
    - ip:
        address: 127.0.0.1
        port: 3001
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: MCPRoute
metadata:
  name: r
spec:
  parentRefs: [{name: gw}]
  backendRefs:
    - name: one
      kind: Backend
      group: gateway.envoyproxy.io
"""
# Lines 31..35.
OAUTH = """\
  securityPolicy:
    oauth:
      issuer: https://as.example
      protectedResourceMetadata:
        resource: http://127.0.0.1:8000/mcp
"""
ROUTE = "MCPRoute/r.spec"
REF = f"{ROUTE}.backendRefs[0]"
POLICY = f"{ROUTE}.securityPolicy"


def lines(*given: str) -> str:
    return "".join(f"{line}\n" for line in given)


class GoldenTests(ConfigTestCase):
    def test_each_fixture_converts_to_its_golden_native_yaml(self) -> None:
        for name in ("keycloak", "open"):
            with self.subTest(name=name):
                text = (FIXTURES / f"{name}.yaml").read_text()
                converted = envoy.convert(text, f"{name}.yaml", str(FIXTURES), ENV)
                self.assertEqual(converted, (FIXTURES / f"{name}.native.yaml").read_text())

    def test_the_envoy_file_and_its_native_yaml_load_to_the_same_config(self) -> None:
        for name in ("keycloak", "open"):
            with self.subTest(name=name):
                direct = load_config(str(FIXTURES / f"{name}.yaml"), env=ENV)
                native = load_config(str(FIXTURES / f"{name}.native.yaml"), env=ENV)
                self.assertEqual(direct, attrs.evolve(native, source=direct.source))

    def test_the_demo_shape_maps_as_envoy_means_it(self) -> None:
        config = load_config(str(FIXTURES / "keycloak.yaml"), env=ENV)
        self.assertEqual(config.listen, ("tcp:1975:interface=127.0.0.1",))
        self.assertEqual(config.resource_url, "http://127.0.0.1:1975/mcp")
        assert config.auth is not None
        self.assertEqual(config.auth.issuer, "http://localhost:8080/realms/master")
        self.assertEqual(
            config.auth.jwks_uri,
            "http://localhost:8080/realms/master/protocol/openid-connect/certs",
        )
        self.assertEqual(config.auth.jwks_refresh_interval, 600.0)
        self.assertEqual(config.auth.scopes_supported, ("openid", "mcp:tools"))
        kiwi, context7, docs = config.backends
        self.assertEqual(kiwi.url, "https://mcp.kiwi.com/")
        self.assertTrue(kiwi.tools.include_regex[0].fullmatch("research-flights"))
        self.assertEqual(context7.headers, {"CONTEXT7_API_KEY": "c7-key"})
        self.assertEqual(docs.url, "http://127.0.0.1:3001/api/mcp")
        self.assertEqual(docs.headers, {"Authorization": "Bearer docs-key-123"})
        for backend in config.backends:
            assert backend.auth is not None
            self.assertEqual(backend.auth.claims_to_headers, {"sub": "X-User"})
        self.assertEqual(config.access.default, "deny")
        rules = config.access.rules
        self.assertEqual(
            [(r.effect, r.scopes, dict(r.claims), r.backends, r.tools) for r in rules],
            [
                ("allow", ("mcp:tools",), {}, ("kiwi",), ("search-flight",)),
                (
                    "allow",
                    ("mcp:tools",),
                    {},
                    ("context7",),
                    ("resolve-library-id", "get-library-docs"),
                ),
                ("allow", ("mcp:tools",), {"groups": "writers"}, ("docs",), ("read-page",)),
                ("allow", ("mcp:tools",), {"groups": "editors"}, ("docs",), ("read-page",)),
                ("deny", (), {"tenant": "blocked"}, (), ()),
            ],
        )

    def test_documents_of_comments_only_are_no_resources(self) -> None:
        text = "---\n# Backends\n---\n" + BASE.replace("---\n", "---\n# a comment\n---\n", 1)
        self.assertEqual(parse_config(text, env={}).backends[0].name, "one")

    def test_every_problem_is_reported_at_once(self) -> None:
        text = BASE + lines(
            "      forwardHeaders: [{name: X-Token}]",
            "---",
            "apiVersion: v1",
            "kind: ConfigMap",
            "metadata: {name: c}",
        )
        found = [(p.path, p.line) for p in problems(text)]
        self.assertEqual(found, [(f"{REF}.forwardHeaders", 31), ("(document 4).kind", 34)])

    def test_a_native_config_is_not_taken_for_the_envoy_format(self) -> None:
        self.assertFalse(envoy.is_envoy("listen: tcp:1975\nauth: none\n"))
        self.assertTrue(envoy.is_envoy(BASE))
        self.assertFalse(envoy.is_envoy("a: [\n"))


class MappingTests(ConfigTestCase):
    def test_the_route_without_oauth_runs_with_auth_none(self) -> None:
        config = parse_config(BASE, env={})
        self.assertIsNone(config.auth)
        self.assertEqual(config.public_url, "http://127.0.0.1:8000")
        self.assertEqual(config.backends[0].url, "http://127.0.0.1:3001/mcp")

    def test_the_resource_gives_public_url_and_the_route_path_mcp_path(self) -> None:
        text = BASE.replace("  parentRefs:", "  path: /v1/mcp\n  parentRefs:") + OAUTH.replace(
            "http://127.0.0.1:8000/mcp", "https://mcp.example/v1/mcp"
        )
        config = parse_config(text, env={})
        self.assertEqual((config.public_url, config.mcp_path), ("https://mcp.example", "/v1/mcp"))
        assert config.auth is not None
        self.assertEqual(config.auth.audiences, ("https://mcp.example/v1/mcp",))

    def test_an_api_key_header_other_than_authorization_carries_the_key_as_it_is(self) -> None:
        text = BASE + lines(
            "      securityPolicy:",
            "        apiKey:",
            "          inline: k-1",
            "          header: X-Api-Key",
        )
        self.assertEqual(parse_config(text, env={}).backends[0].headers, {"X-Api-Key": "k-1"})

    def test_a_secret_from_an_unset_variable_stops_aigw_at_its_annotation(self) -> None:
        text = BASE + lines(
            "      securityPolicy:",
            "        apiKey:",
            "          secretRef: {name: key}",
            "---",
            "apiVersion: v1",
            "kind: Secret",
            "metadata:",
            "  name: key",
            "  annotations:",
            "    substitution.aigw.run/env/apiKey: THE_KEY",
            "stringData: {apiKey: placeholder}",
        )
        self.assertEqual(
            parse_config(text, env={"THE_KEY": "k"}).backends[0].headers,
            {"Authorization": "Bearer k"},
        )
        found = self.only_problem(text)
        self.assertEqual(found.line, 40)
        self.assertIn("environment variable THE_KEY is not set", found.message)

    def test_a_tool_name_with_glob_characters_is_matched_as_written(self) -> None:
        text = (
            BASE
            + OAUTH
            + lines(
                "    authorization:",
                "      rules:",
                "        - target:",
                "            tools: [{backend: one, tool: 'what?[x]*'}]",
            )
        )
        (rule,) = parse_config(text, env={}).access.rules
        self.assertEqual(rule.tools, ("what[?][[]x][*]",))
        self.assertEqual(rule.backends, ("one",))

    def test_native_problems_are_said_in_the_envoy_files_terms(self) -> None:
        text = BASE.replace("name: one", "name: one.two").replace(
            "  backendRefs:", "  backendRefs:"
        )
        found = self.only_problem(text)
        self.assertEqual((found.path, found.line), (f"{REF}.name", 28), found)
        text = BASE + OAUTH.replace("https://as.example", "ftp://as.example")
        self.assertProblem(text, f"{POLICY}.oauth.issuer", 33, "http")


class RefusedTests(ConfigTestCase):
    """Each field aigw cannot honour is an error naming it, at its line."""

    def assertRefused(self, text: str, path: str, line: int, fragment: str = "") -> None:
        self.assertProblem(text, path, line, fragment)

    def test_forward_headers(self) -> None:
        text = BASE + lines("      forwardHeaders:", "        - name: X-Token")
        self.assertRefused(text, f"{REF}.forwardHeaders", 31, "never forwards")

    def test_an_api_key_in_the_query_string(self) -> None:
        text = BASE + lines(
            "      securityPolicy:",
            "        apiKey:",
            "          inline: k",
            "          queryParam: key",
        )
        self.assertRefused(text, f"{REF}.securityPolicy.apiKey.queryParam", 34, "headers only")

    def test_cel_in_an_authorization_rule(self) -> None:
        text = (
            BASE
            + OAUTH
            + lines(
                "    authorization:",
                "      rules:",
                "        - cel: request.mcp.tool == 'x'",
            )
        )
        self.assertRefused(text, f"{POLICY}.authorization.rules[0].cel", 38, "CEL")

    def test_ext_auth_and_api_key_auth(self) -> None:
        text = BASE + lines("  securityPolicy:", "    extAuth: {}")
        self.assertRefused(text, f"{POLICY}.extAuth", 32, "external authorization")
        text = BASE + lines("  securityPolicy:", "    apiKeyAuth: {}")
        self.assertRefused(text, f"{POLICY}.apiKeyAuth", 32, "OAuth")

    def test_header_matches_hostnames_and_the_backend_selector(self) -> None:
        for key, fragment in (
            ("headers", "headers"),
            ("hostnames", "host name"),
            ("backendSelector", "CEL"),
        ):
            with self.subTest(key=key):
                self.assertRefused(BASE + f"  {key}: []\n", f"{ROUTE}.{key}", 31, fragment)

    def test_local_jwks(self) -> None:
        text = (
            BASE
            + OAUTH
            + lines(
                "      jwks:", "        localJWKS:", "          type: Inline", "          inline: x"
            )
        )
        self.assertRefused(text, f"{POLICY}.oauth.jwks.localJWKS", 37, "remoteJWKS")

    def test_a_nested_claim(self) -> None:
        text = (
            BASE
            + OAUTH
            + lines(
                "    authorization:",
                "      rules:",
                "        - source:",
                "            jwt:",
                "              claims:",
                "                - name: org.team",
                "                  values: [a]",
            )
        )
        path = f"{POLICY}.authorization.rules[0].source.jwt.claims[0].name"
        self.assertRefused(text, path, 41, "top-level claims")

    def test_a_jwt_source_without_oauth(self) -> None:
        text = BASE + lines(
            "  securityPolicy:",
            "    authorization:",
            "      rules:",
            "        - source:",
            "            jwt: {scopes: [a]}",
        )
        path = f"{POLICY}.authorization.rules[0].source.jwt"
        self.assertRefused(text, path, 35, "needs securityPolicy.oauth")

    def test_a_target_backend_that_is_not_on_the_route(self) -> None:
        text = (
            BASE
            + OAUTH
            + lines(
                "    authorization:",
                "      rules:",
                "        - target:",
                "            tools:",
                "              - backend: two",
                "                tool: x",
            )
        )
        path = f"{POLICY}.authorization.rules[0].target.tools[0].backend"
        self.assertRefused(text, path, 40, "not one of the route's backendRefs")

    def test_an_unknown_field_and_an_unknown_kind(self) -> None:
        self.assertRefused(BASE + "      weight: 2\n", f"{REF}.weight", 31, "unknown key")
        text = BASE + lines("---", "apiVersion: v1", "kind: ConfigMap", "metadata: {name: c}")
        self.assertRefused(text, "(document 4).kind", 33, "not supported")

    def test_a_tls_listener_and_a_second_endpoint(self) -> None:
        text = BASE.replace("      port: 8000\n", "      port: 8000\n      tls: {}\n")
        self.assertRefused(text, "Gateway/gw.spec.listeners[0].tls", 10, "TLS")
        text = BASE.replace(
            "        port: 3001\n", "        port: 3001\n    - ip: {address: 10.0.0.1, port: 1}\n"
        )
        self.assertRefused(text, "Backend/one.spec.endpoints[1]", 20, "one endpoint")

    def test_a_ca_bundle_reference(self) -> None:
        text = BASE + lines(
            "---",
            "apiVersion: gateway.networking.k8s.io/v1alpha3",
            "kind: BackendTLSPolicy",
            "metadata: {name: t}",
            "spec:",
            "  targetRefs: [{group: gateway.envoyproxy.io, kind: Backend, name: one}]",
            "  validation:",
            "    caCertificateRefs: [{kind: ConfigMap, name: ca}]",
        )
        path = "BackendTLSPolicy/t.spec.validation.caCertificateRefs"
        self.assertRefused(text, path, 38, "ca_file")

    def test_a_resource_that_is_not_the_routes_url(self) -> None:
        text = BASE + OAUTH.replace("8000/mcp", "8000/other")
        path = f"{POLICY}.oauth.protectedResourceMetadata.resource"
        self.assertRefused(text, path, 35, "ending with its path '/mcp'")

    def test_a_missing_backend_and_a_missing_secret(self) -> None:
        text = BASE.replace("name: one\n      kind", "name: two\n      kind")
        self.assertRefused(text, f"{REF}.name", 28, "no Backend named 'two'")
        text = BASE + lines(
            "      securityPolicy:",
            "        apiKey:",
            "          secretRef: {name: key}",
        )
        self.assertRefused(text, f"{REF}.securityPolicy.apiKey.secretRef.name", 33, "no Secret")

    def test_a_secret_that_is_not_base64(self) -> None:
        text = BASE + lines(
            "      securityPolicy:",
            "        apiKey:",
            "          secretRef: {name: key}",
            "---",
            "apiVersion: v1",
            "kind: Secret",
            "metadata: {name: key}",
            "data: {apiKey: '%%%'}",
        )
        self.assertRefused(text, "Secret/key.data.apiKey", 38, "base64")

    def test_the_file_without_a_route(self) -> None:
        text = BASE.split("---\napiVersion: aigateway")[0]
        found = self.only_problem(text)
        self.assertEqual(found.path, "MCPRoute")
        self.assertIn("no MCPRoute", found.message)

    def test_convert_refuses_a_native_file(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            envoy.convert("listen: x\n", "aigw.yaml", ".", {})
        self.assertIn("not an Envoy AI Gateway file", str(caught.exception))


class CarryTests(ConfigTestCase):
    """``Translator.carry``: an Envoy key taken over as a native one, with where it came
    from (what a problem of the native key is said against)."""

    def section(self, text: str) -> tuple[Translator, cp.Section]:
        t = Translator(cp.Context(env={}, base_dir="."))
        node = cp.compose(t.ctx, text)
        assert node is not None
        section = cp.open_section(t.ctx, node, "spec.oauth", ("issuer", "audiences"))
        assert section is not None
        return t, section

    def test_a_given_key_is_carried_with_its_origin(self) -> None:
        t, oauth = self.section("issuer: https://as.example\n")
        pairs: list[tuple[str, cp.Node]] = []
        self.assertTrue(t.carry(oauth, "issuer", "auth.issuer", pairs))
        self.assertEqual(
            [(key, node.value) for key, node in pairs], [("issuer", "https://as.example")]
        )
        self.assertEqual(t.paths, {"auth.issuer": "spec.oauth.issuer"})

    def test_a_missing_key_is_not(self) -> None:
        t, oauth = self.section("issuer: https://as.example\n")
        pairs: list[tuple[str, cp.Node]] = []
        self.assertFalse(t.carry(oauth, "audiences", "auth.audiences", pairs))
        self.assertEqual((pairs, t.paths), ([], {}))
