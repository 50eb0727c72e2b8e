"""The soak's pure parts (tests/soak/measure.py): settings, answers, the count, the verdict.

The soak itself runs by ``make soak``; ``tests/e2e/test_soak.py`` runs it briefly.
"""

from __future__ import annotations

import json
import os

from twisted.trial.unittest import SynchronousTestCase

from tests.soak.measure import (
    RSS_TOLERANCE_PCT,
    SAMPLES,
    Figures,
    Settings,
    Tally,
    fd_kind,
    open_fds,
    response_problem,
    rss_kib,
    sse_messages,
    status_kib,
    status_problem,
)

JSON = "application/json"
SSE = "text/event-stream"


def answer(request_id: int, **member: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, **member}).encode()


class SettingsTests(SynchronousTestCase):
    def test_defaults_are_the_issue_s(self) -> None:
        settings = Settings.from_environ({})
        self.assertEqual((settings.seconds, settings.clients), (60.0, 50))
        self.assertEqual(settings.warmup, 10.0)

    def test_variables_are_read(self) -> None:
        settings = Settings.from_environ(
            {"SOAK_SECONDS": "120", "SOAK_CLIENTS": "5", "SOAK_WARMUP": "20", "SOAK_SETTLE": "3"}
        )
        self.assertEqual(settings, Settings(120.0, 5, 20.0, 3.0))

    def test_warm_up_is_at_most_a_third_of_a_short_run(self) -> None:
        self.assertEqual(Settings.from_environ({"SOAK_SECONDS": "6"}).warmup, 2.0)

    def test_bad_values_name_the_variable(self) -> None:
        for environ, said in [
            ({"SOAK_CLIENTS": "2.5"}, "SOAK_CLIENTS='2.5': not a positive integer"),
            ({"SOAK_SECONDS": "soon"}, "SOAK_SECONDS='soon': not a positive number"),
            ({"SOAK_SECONDS": "0"}, "SOAK_SECONDS='0': must be greater than 0"),
            ({"SOAK_CLIENTS": "-3"}, "SOAK_CLIENTS='-3': must be greater than 0"),
        ]:
            with self.assertRaises(ValueError) as raised:
                Settings.from_environ(environ)
            self.assertIn(said, str(raised.exception))


class AnswerTests(SynchronousTestCase):
    def test_json_result_of_the_request_is_fine(self) -> None:
        self.assertIsNone(response_problem(200, JSON, answer(3, result={"tools": []}), 3))

    def test_sse_answer_after_progress_is_fine(self) -> None:
        progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}
        body = (
            b": aigw\n\n"
            + b"event: message\ndata: "
            + json.dumps(progress).encode()
            + b"\n\n"
            + b"data: "
            + answer(7, result={"content": []})
            + b"\r\n\r\n"
        )
        self.assertIsNone(response_problem(200, SSE + "; charset=utf-8", body, 7, tool_call=True))

    def test_each_wrong_answer_is_a_problem_with_a_sample(self) -> None:
        cases = [
            (503, JSON, answer(1, result={}), "HTTP 503"),
            (200, JSON, b"<html>", "not JSON"),
            (200, JSON, answer(2, result={}), "no JSON-RPC response with id 1"),
            (200, JSON, answer(1, error={"code": -32603, "message": "x"}), "JSON-RPC error"),
            (200, JSON, answer(1, result=[]), "no result object"),
            (200, SSE, b"data: " + answer(2, result={}) + b"\n\n", "no JSON-RPC response"),
        ]
        for status, content_type, body, said in cases:
            problem = response_problem(status, content_type, body, 1)
            self.assertIsNotNone(problem)
            assert problem is not None
            self.assertIn(said, problem)

    def test_tool_error_fails_a_call_only(self) -> None:
        body = answer(1, result={"content": [], "isError": True})
        self.assertIsNone(response_problem(200, JSON, body, 1))
        self.assertIn("tool error", response_problem(200, JSON, body, 1, tool_call=True) or "")

    def test_a_server_request_with_the_same_id_is_not_the_answer(self) -> None:
        body = b"data: " + answer(1, method="sampling/createMessage", params={}) + b"\n\n"
        self.assertIn("no JSON-RPC response", response_problem(200, SSE, body, 1) or "")

    def test_sse_messages_joins_data_lines_and_skips_comments(self) -> None:
        body = b': hello\n\ndata: {"a":\ndata: 1}\n\nid: 4\n\ndata: plain'
        self.assertEqual(sse_messages(body), [{"a": 1}, "plain"])

    def test_status_problem(self) -> None:
        self.assertIsNone(status_problem(204, (200, 204), b""))
        self.assertEqual(status_problem(404, (204,), b"gone"), "HTTP 404: gone")


class TallyTests(SynchronousTestCase):
    def test_counts_by_kind_and_keeps_the_first_samples(self) -> None:
        tally = Tally()
        tally.record("tools/list", None)
        for n in range(SAMPLES + 2):
            tally.record("tools/call", f"bad {n}")
        self.assertEqual((tally.requests, tally.failures), (SAMPLES + 3, SAMPLES + 2))
        self.assertEqual(tally.samples[0], "tools/call: bad 0")
        self.assertEqual(len(tally.samples), SAMPLES)

    def test_a_later_failure_of_a_counted_request_is_not_counted_twice(self) -> None:
        tally = Tally()
        tally.record("GET stream", None)
        tally.fail("GET stream", "broke")
        self.assertEqual((tally.requests, tally.failures), (1, 1))


class ProcessTests(SynchronousTestCase):
    def test_status_kib(self) -> None:
        text = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"
        self.assertEqual(status_kib(text, "VmRSS"), 1024)
        self.assertEqual(status_kib(text, "VmSwap"), 0)

    def test_this_process(self) -> None:
        self.assertGreater(rss_kib(os.getpid()), 0)
        before = open_fds(os.getpid())
        reader, writer = os.pipe()
        self.addCleanup(os.close, writer)
        self.addCleanup(os.close, reader)
        self.assertEqual(open_fds(os.getpid()), before + 2)

    def test_fd_kind_drops_inodes(self) -> None:
        self.assertEqual(fd_kind("socket:[123]"), "socket")
        self.assertEqual(fd_kind("pipe:[9]"), "pipe")
        self.assertEqual(fd_kind("/var/log/aigw.log"), "/var/log/aigw.log")


class FiguresTests(SynchronousTestCase):
    def test_closing_line_is_the_contract(self) -> None:
        figures = Figures(1200, 0, 60_000, 61_200, 13, 13)
        self.assertEqual(
            figures.closing_line(), "soak: requests=1200 failed=0 rss_growth_pct=2.0 fds_delta=0"
        )
        self.assertEqual(figures.unmet(), [])

    def test_shrinking_and_fewer_fds_pass(self) -> None:
        figures = Figures(10, 0, 60_000, 59_000, 13, 10)
        self.assertLess(figures.rss_growth_pct, 0)
        self.assertEqual(figures.fds_delta, -3)
        self.assertEqual(figures.unmet(), [])

    def test_each_criterion(self) -> None:
        limit = 100_000 * (1 + RSS_TOLERANCE_PCT / 100)
        self.assertEqual(Figures(10, 0, 100_000, int(limit), 13, 13).unmet(), [])
        unmet = Figures(10, 2, 100_000, int(limit) + 1, 13, 15).unmet()
        self.assertEqual(len(unmet), 3)
        self.assertIn("2 failed requests", unmet[0])
        self.assertIn("RSS grew 5.0%", unmet[1])
        self.assertIn("2 file descriptors more", unmet[2])

    def test_no_request_is_no_soak(self) -> None:
        self.assertEqual(Figures(0, 0, 1, 1, 1, 1).unmet(), ["no request was sent"])
