"""aigw's answers, for the client, to backend requests no client can take: one shape,
``<method>: <why>`` and ``data.reason`` (``protocol/refusals.py``)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.protocol import jsonrpc
from aigw.protocol.refusals import capability_refusal, refusal


class RefusalTests(SynchronousTestCase):
    def test_a_refusal_is_method_not_found_with_its_reason(self) -> None:
        answer = jsonrpc.to_dict(refusal(4, "roots/list", "no client", "no_single_call"))
        self.assertEqual(
            answer,
            {
                "jsonrpc": "2.0",
                "id": 4,
                "error": {
                    "code": jsonrpc.METHOD_NOT_FOUND,
                    "message": "roots/list: no client",
                    "data": {"reason": "no_single_call"},
                },
            },
        )

    def test_other_data_goes_beside_the_reason(self) -> None:
        error = refusal("a", "roots/list", "why", "r", jsonrpc.INVALID_PARAMS, extra=1).error
        self.assertEqual(
            (error.code, error.data), (jsonrpc.INVALID_PARAMS, {"reason": "r", "extra": 1})
        )

    def test_a_missing_capability_is_method_not_found_a_missing_mode_a_bad_parameter(self) -> None:
        whole = capability_refusal(1, "sampling/createMessage", "sampling").error
        mode = capability_refusal(2, "elicitation/create", "elicitation.url").error
        self.assertEqual(
            [(e.code, e.data) for e in (whole, mode)],
            [
                (
                    jsonrpc.METHOD_NOT_FOUND,
                    {"reason": "client_capability", "capability": "sampling"},
                ),
                (
                    jsonrpc.INVALID_PARAMS,
                    {"reason": "client_capability", "capability": "elicitation.url"},
                ),
            ],
        )
        self.assertEqual(
            mode.message, "elicitation/create: the client did not declare elicitation.url"
        )
