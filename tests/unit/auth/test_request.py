"""Where tokens may come from (RFC 6750 §2), challenges (§3) and RFC 9728 metadata."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from aigw.auth.bearer import extract_bearer, refuse_query_token
from aigw.auth.challenge import bearer_challenge
from aigw.auth.errors import TokenRejected
from aigw.auth.metadata import metadata_paths, metadata_url, protected_resource_metadata
from aigw.config import BackendConfig
from tests.unit.auth.helpers import ISSUER, auth_config, gateway_config

#: RFC 6750 §2.1, credentials = "Bearer" 1*SP b64token (the scheme case-insensitive,
#: RFC 9110 §11.1): the oracle for extract_bearer.
B64TOKEN_CREDENTIALS = re.compile(rb"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *")
META = "https://gw.example/.well-known/oauth-protected-resource/mcp"


class BearerTests(SynchronousTestCase):
    def reason(self, *headers: bytes) -> str:
        with self.assertRaises(TokenRejected) as caught:
            extract_bearer(list(headers))
        return caught.exception.reason

    def test_bearer_token(self) -> None:
        """RFC 6750 §2.1: ``Bearer`` 1*SP b64token."""
        self.assertEqual(extract_bearer([b"Bearer abc.DEF-_~+/=="]), "abc.DEF-_~+/==")

    def test_scheme_is_case_insensitive(self) -> None:
        """RFC 9110 §11.1: auth-scheme names are case-insensitive."""
        self.assertEqual(extract_bearer([b"bEaReR  tok"]), "tok")

    def test_missing(self) -> None:
        """RFC 6750 §3.1: no credentials → no error code; reason ``missing``."""
        self.assertEqual(self.reason(), "missing")

    def test_other_scheme_counts_as_missing(self) -> None:
        """RFC 6750 §3.1: an unsupported authentication method is treated as none."""
        self.assertEqual(self.reason(b"Basic dXNlcjpwYXNz"), "missing")

    def test_several_headers(self) -> None:
        """RFC 6750 §3.1 invalid_request: more than one credential."""
        self.assertEqual(self.reason(b"Bearer a", b"Bearer b"), "malformed")

    def test_not_b64token(self) -> None:
        """RFC 6750 §2.1: the credentials must be a b64token."""
        self.assertEqual(self.reason(b"Bearer"), "malformed")
        self.assertEqual(self.reason(b"Bearer a b"), "malformed")
        self.assertEqual(self.reason(b"Bearer a,b"), "malformed")
        self.assertEqual(self.reason(b'Bearer "tok"'), "malformed")
        self.assertEqual(self.reason("Bearer tök".encode()), "malformed")
        self.assertEqual(self.reason(b"\x00garbage"), "malformed")
        self.assertEqual(self.reason(b"Bearer =="), "malformed")
        self.assertEqual(self.reason(b"Bearer a=b"), "malformed")
        self.assertEqual(self.reason(b"Bearer \ta"), "malformed")
        self.assertEqual(extract_bearer([b"Bearer   a==  "]), "a==")

    def same_as_the_grammar(self, value: bytes) -> None:
        """Accepted, and as what, exactly as RFC 6750 §2.1's grammar written as a
        regular expression accepts; whatever it refuses is refused."""
        expected = B64TOKEN_CREDENTIALS.fullmatch(value.strip(b" \t"))
        try:
            token: str | None = extract_bearer([value])
        except TokenRejected:
            token = None
        self.assertEqual(token, None if expected is None else expected.group(1).decode())

    @given(st.binary(max_size=12))
    def test_b64token_is_rfc_6750s(self, tail: bytes) -> None:
        self.same_as_the_grammar(b"Bearer" + tail)

    @given(st.text(alphabet='Bearb =+/.-_~\t,"é', max_size=12))
    def test_b64token_among_likely_bytes(self, text: str) -> None:
        """The same, with the bytes a b64token and its neighbours are made of."""
        self.same_as_the_grammar(("Bearer " + text).encode())

    def test_query_token_refused(self) -> None:
        """MCP Authorization "Token Requirements": tokens MUST NOT be in the query string."""
        with self.assertRaises(TokenRejected) as caught:
            refuse_query_token({b"access_token": [b"tok"]})
        self.assertEqual(caught.exception.reason, "malformed")
        refuse_query_token({b"other": [b"x"]})


class ChallengeTests(SynchronousTestCase):
    def test_no_credentials(self) -> None:
        """RFC 6750 §3.1 + MCP: resource_metadata and scope, and no error code."""
        self.assertEqual(
            bearer_challenge(META, ("mcp:read", "mcp:write")),
            f'Bearer resource_metadata="{META}", scope="mcp:read mcp:write"',
        )

    def test_no_scope(self) -> None:
        self.assertEqual(bearer_challenge(META), f'Bearer resource_metadata="{META}"')

    def test_invalid_token(self) -> None:
        self.assertEqual(
            bearer_challenge(META, (), "invalid_token", "the token has expired"),
            f'Bearer resource_metadata="{META}", error="invalid_token", '
            'error_description="the token has expired"',
        )

    def test_insufficient_scope(self) -> None:
        """MCP "Scope challenge handling": 403 names the scopes the operation needs."""
        self.assertEqual(
            bearer_challenge(META, ("a", "b", "a"), "insufficient_scope", "more please"),
            f'Bearer resource_metadata="{META}", scope="a b", error="insufficient_scope", '
            'error_description="more please"',
        )

    def test_no_header_injection(self) -> None:
        """RFC 6750 §3: description characters exclude '"', '\\' and controls."""
        value = bearer_challenge(
            META, ('x" evil="1',), "invalid_token", 'bad"\r\nSet-Cookie: a=b\\ é'
        )
        self.assertNotIn("\r", value)
        self.assertNotIn("\n", value)
        self.assertNotIn("\\", value)
        self.assertEqual(value.count('"'), 8)
        self.assertIn('error_description="bad???Set-Cookie: a=b? ?"', value)

    def test_long_description_truncated(self) -> None:
        value = bearer_challenge(META, (), "invalid_token", "x" * 1000)
        self.assertLess(len(value), 400)


class MetadataTests(SynchronousTestCase):
    def test_document(self) -> None:
        """RFC 9728 §2: resource, authorization_servers, bearer methods, scopes, names."""
        config = gateway_config(
            auth_config(
                scopes_supported=("mcp:read", "mcp:write"),
                resource_name="Files gateway",
                resource_documentation="https://docs.example/gw",
            )
        )
        self.assertEqual(
            protected_resource_metadata(config),
            {
                "resource": "https://gw.example/mcp",
                "authorization_servers": [ISSUER],
                "bearer_methods_supported": ["header"],
                "scopes_supported": ["mcp:read", "mcp:write"],
                "resource_name": "Files gateway",
                "resource_documentation": "https://docs.example/gw",
            },
        )

    def test_minimal_document(self) -> None:
        doc = protected_resource_metadata(gateway_config(auth_config()))
        self.assertEqual(
            set(doc), {"resource", "authorization_servers", "bearer_methods_supported"}
        )

    def test_scopes_derived_from_required(self) -> None:
        """Without scopes_supported, the scopes requests need are advertised."""
        config = gateway_config(
            auth_config(required_scopes=("mcp",)),
            backends=(
                BackendConfig(name="a", url="http://a/mcp", required_scopes=("files", "mcp")),
            ),
        )
        self.assertEqual(protected_resource_metadata(config)["scopes_supported"], ["mcp", "files"])

    def test_paths_and_url(self) -> None:
        """RFC 9728 §3.1: path-inserted well-known URL first, root as fallback."""
        config = gateway_config(auth_config())
        self.assertEqual(
            metadata_paths(config),
            ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"),
        )
        self.assertEqual(metadata_url(config), META)

    def test_public_url_with_path(self) -> None:
        config = gateway_config(auth_config(), public_url="https://h.example:8443/gw/")
        self.assertEqual(
            metadata_url(config),
            "https://h.example:8443/.well-known/oauth-protected-resource/gw/mcp",
        )

    def test_root_resource(self) -> None:
        config = gateway_config(auth_config(), mcp_path="/")
        self.assertEqual(metadata_paths(config), ("/.well-known/oauth-protected-resource",))

    def test_auth_none(self) -> None:
        with self.assertRaises(ValueError):
            protected_resource_metadata(gateway_config(None))
