"""``limits``: rules, rates, the Redis URL, and problems named by key path and line."""

from __future__ import annotations

from aigw.config import parse_config
from aigw.config.limits import Rate
from aigw.config.redis import RedisAddress
from tests.unit.config.helpers import MINIMAL, ConfigTestCase, example_block

LIMITS = """\
limits:
  redis_url: redis://:pw@127.0.0.1:6380/2
  on_redis_error: closed
  redis_timeout: 200ms
  lease_ttl: 10s
  rules:
    - {per: sub, rate: 10/s, burst: 20}
    - {per: client, rate: 50/m}
    - {per: tool, match: "kiwi__*", rate: 100/h}
    - {per: sub, in_flight: 8}
"""


class LimitsConfigTests(ConfigTestCase):
    def test_the_documented_example_reads(self) -> None:
        limits = parse_config(MINIMAL + LIMITS, env={}).limits
        self.assertEqual(limits.redis_url, RedisAddress("127.0.0.1", 6380, 2, None, "pw"))
        self.assertEqual((limits.on_redis_error, limits.redis_timeout), ("closed", 0.2))
        self.assertEqual(limits.lease_ttl, 10.0)
        sub, client, tool, flight = limits.rules
        self.assertEqual((sub.rate, sub.capacity), (Rate(10, 1.0), 20))
        self.assertEqual((client.rate, client.capacity), (Rate(50, 60.0), 50))
        self.assertEqual((tool.per, tool.match, str(tool.rate)), ("tool", "kiwi__*", "100/h"))
        self.assertEqual((flight.per, flight.in_flight, flight.rate), ("sub", 8, None))

    def test_absent_means_no_limits_and_local_buckets(self) -> None:
        limits = parse_config(MINIMAL, env={}).limits
        self.assertEqual(
            (limits.rules, limits.redis_url, limits.on_redis_error), ((), None, "open")
        )
        self.assertEqual(limits.lease_ttl, 30.0)

    def test_the_example_files_block_reads(self) -> None:
        """etc/aigw/aigw.yaml's commented ``limits`` block, uncommented, loads."""
        limits = parse_config(MINIMAL + example_block("# limits:"), env={}).limits
        self.assertEqual((limits.redis_timeout, limits.lease_ttl), (0.05, 30.0))
        self.assertEqual(limits.rules[-1].in_flight, 8)

    def test_a_lease_ttl_must_be_a_positive_duration(self) -> None:
        self.assertProblem(
            MINIMAL + "limits:\n  lease_ttl: 0s\n", "limits.lease_ttl", 9, "more than 0"
        )

    def test_a_lease_outlives_two_redis_timeouts(self) -> None:
        text = MINIMAL + "limits:\n  redis_timeout: 3s\n  lease_ttl: 5s\n"
        self.assertProblem(text, "limits.lease_ttl", 10, "5 s < 2 x 3 s")
        # Unwritten, the default (30 s) is what falls short; the section's line says so.
        self.assertProblem(
            MINIMAL + "limits:\n  redis_timeout: 16s\n", "limits.lease_ttl", 9, "at least 2"
        )
        limits = parse_config(MINIMAL + "limits:\n  redis_timeout: 15s\n", env={}).limits
        self.assertEqual((limits.redis_timeout, limits.lease_ttl), (15.0, 30.0))

    def test_a_redis_timeout_past_a_minute_is_named(self) -> None:
        # As sessions.redis_timeout: a take bounded that loosely holds its request
        # rather than failing it (config/redis.py, REDIS_TIMEOUT_MAX).
        text = MINIMAL + "limits:\n  redis_timeout: 2m\n  lease_ttl: 5m\n"
        self.assertProblem(text, "limits.redis_timeout", 9, "at most 60 s")

    def test_a_bad_rate_is_named_with_its_line(self) -> None:
        self.assertProblem(
            MINIMAL + "limits:\n  rules:\n    - {per: sub, rate: 10/day}\n",
            "limits.rules[0].rate",
            10,
            "10/s",
        )

    def test_rate_and_in_flight_together_or_neither_are_refused(self) -> None:
        for rule in ("{per: sub, rate: 1/s, in_flight: 2}", "{per: sub}"):
            self.assertProblem(
                MINIMAL + f"limits:\n  rules:\n    - {rule}\n", "limits.rules[0]", 10, "either"
            )

    def test_match_only_for_backend_and_tool_and_burst_only_with_rate(self) -> None:
        self.assertProblem(
            MINIMAL + "limits:\n  rules:\n    - {per: sub, match: a*, rate: 1/s}\n",
            "limits.rules[0]",
            10,
            "match",
        )
        self.assertProblem(
            MINIMAL + "limits:\n  rules:\n    - {per: sub, in_flight: 2, burst: 3}\n",
            "limits.rules[0]",
            10,
            "burst",
        )

    def test_rediss_is_tls_with_the_system_roots_or_a_ca_file(self) -> None:
        limits = parse_config(MINIMAL + "limits:\n  redis_url: rediss://r.example:6390\n", env={})
        address = limits.limits.redis_url
        assert address is not None
        self.assertEqual((address.host, address.port, address.tls), ("r.example", 6390, True))
        self.assertIsNone(limits.limits.redis_ca_file)
        ca = self.directory() / "redis-ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        text = MINIMAL + f"limits:\n  redis_url: rediss://127.0.0.1\n  redis_ca_file: {ca}\n"
        self.assertEqual(parse_config(text, env={}).limits.redis_ca_file, str(ca.resolve()))
        plain = parse_config(MINIMAL + "limits:\n  redis_url: redis://127.0.0.1\n", env={})
        self.assertFalse(plain.limits.redis_url and plain.limits.redis_url.tls)

    def test_a_ca_file_goes_with_rediss_and_must_exist(self) -> None:
        ca = self.directory() / "redis-ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        self.assertProblem(
            MINIMAL + f"limits:\n  redis_url: redis://127.0.0.1\n  redis_ca_file: {ca}\n",
            "limits.redis_ca_file",
            10,
            "rediss://",
        )
        self.assertProblem(
            MINIMAL + f"limits:\n  redis_ca_file: {ca}\n", "limits.redis_ca_file", 9, "rediss://"
        )
        self.assertProblem(
            MINIMAL
            + "limits:\n  redis_url: rediss://127.0.0.1\n  redis_ca_file: /nonexistent.pem\n",
            "limits.redis_ca_file",
            10,
        )

    def test_unknown_per_and_bad_redis_url(self) -> None:
        self.assertProblem(
            MINIMAL + "limits:\n  rules:\n    - {per: user, rate: 1/s}\n",
            "limits.rules[0].per",
            10,
            "sub",
        )
        self.assertProblem(
            MINIMAL + "limits:\n  redis_url: http://127.0.0.1:6379\n",
            "limits.redis_url",
            9,
            "redis[s]://",
        )
        self.assertProblem(
            MINIMAL + "limits:\n  on_redis_error: maybe\n", "limits.on_redis_error", 9, "open"
        )
