"""What a client can answer (2025-11-25 client/sampling, client/roots, client/elicitation
"Capabilities")."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.protocol.client_capabilities import declared, missing

URL = {"mode": "url", "url": "https://x.example/", "elicitationId": "e1", "message": "go"}


class MissingTests(SynchronousTestCase):
    def test_sampling_and_roots_need_their_capability(self) -> None:
        self.assertEqual(missing({}, "sampling/createMessage", {}), "sampling")
        self.assertEqual(missing({}, "roots/list", None), "roots")
        both = {"sampling": {}, "roots": {"listChanged": True}}
        self.assertIsNone(missing(both, "sampling/createMessage", {}))
        self.assertIsNone(missing(both, "roots/list", None))

    def test_an_empty_elicitation_capability_is_form_only(self) -> None:
        """client/elicitation "Capabilities": ``{}`` is form mode, for backward compatibility."""
        self.assertIsNone(missing({"elicitation": {}}, "elicitation/create", {"message": "x"}))
        self.assertEqual(missing({"elicitation": {}}, "elicitation/create", URL), "elicitation.url")

    def test_modes_must_be_named(self) -> None:
        url_only = {"elicitation": {"url": {}}}
        self.assertIsNone(missing(url_only, "elicitation/create", URL))
        self.assertEqual(
            missing(url_only, "elicitation/create", {"mode": "form"}), "elicitation.form"
        )
        self.assertEqual(missing({}, "elicitation/create", URL), "elicitation.url")

    def test_other_methods_need_nothing(self) -> None:
        self.assertIsNone(missing({}, "ping", None))

    def test_declared_keeps_what_servers_ask_for(self) -> None:
        offered = {"sampling": {}, "experimental": {"x": {}}, "roots": True, "elicitation": {}}
        self.assertEqual(declared(offered), {"sampling": {}, "elicitation": {}})
        self.assertEqual(declared(None), {})
