"""``sessions.redis_url`` and ``sessions.redis_ca_file``: read and checked as the
``limits`` twins are (``config/redis.py``), problems named by key path and line."""

from __future__ import annotations

import attrs

from aigw.config import SessionsConfig, parse_config
from aigw.config.redis import RedisAddress
from tests.unit.config.helpers import MINIMAL, ConfigTestCase, example_block


class SessionsRedisTests(ConfigTestCase):
    def test_absent_means_ended_ids_stay_in_their_process(self) -> None:
        sessions = parse_config(MINIMAL, env={}).sessions
        self.assertEqual((sessions.redis_url, sessions.redis_ca_file), (None, None))

    def test_the_url_reads_like_the_limits_one(self) -> None:
        text = MINIMAL + "sessions:\n  redis_url: redis://u:p%40ss@10.0.0.9:6380/3\n"
        address = parse_config(text, env={}).sessions.redis_url
        self.assertEqual(address, RedisAddress("10.0.0.9", 6380, 3, "u", "p@ss"))
        self.assertEqual(str(address), "redis://10.0.0.9:6380/3")  # no credentials

    def test_rediss_with_a_ca_file(self) -> None:
        ca = self.directory() / "redis-ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        text = MINIMAL + f"sessions:\n  redis_url: rediss://r.example\n  redis_ca_file: {ca}\n"
        sessions = parse_config(text, env={}).sessions
        assert sessions.redis_url is not None
        self.assertTrue(sessions.redis_url.tls)
        self.assertEqual(sessions.redis_ca_file, str(ca.resolve()))

    def test_a_ca_file_goes_with_rediss_and_a_bad_url_is_named(self) -> None:
        ca = self.directory() / "redis-ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        self.assertProblem(
            MINIMAL + f"sessions:\n  redis_url: redis://127.0.0.1\n  redis_ca_file: {ca}\n",
            "sessions.redis_ca_file",
            10,
            "rediss://",
        )
        self.assertProblem(
            MINIMAL + "sessions:\n  redis_url: redis://127.0.0.1:x/0\n",
            "sessions.redis_url",
            9,
            "redis[s]://",
        )

    def test_redis_timeout_reads_as_a_duration_five_seconds_by_default(self) -> None:
        text = MINIMAL + "sessions:\n  redis_url: redis://127.0.0.1\n  redis_timeout: 750ms\n"
        self.assertEqual(parse_config(text, env={}).sessions.redis_timeout, 0.75)
        self.assertEqual(parse_config(MINIMAL, env={}).sessions.redis_timeout, 5.0)
        # Without redis_url it is read and unused, as limits.redis_timeout is.
        alone = MINIMAL + "sessions:\n  redis_timeout: 2s\n"
        self.assertEqual(parse_config(alone, env={}).sessions.redis_timeout, 2.0)

    def test_a_redis_timeout_of_zero_or_past_a_minute_is_named(self) -> None:
        for value, problem in (
            ("0s", "more than 0"),
            ("-1", "more than 0"),
            ("2m", "at most 60 s"),
        ):
            with self.subTest(value=value):
                self.assertProblem(
                    MINIMAL + f"sessions:\n  redis_url: redis://r\n  redis_timeout: {value}\n",
                    "sessions.redis_timeout",
                    10,
                    problem,
                )
        self.assertProblem(
            MINIMAL + "sessions:\n  redis_timeout: soon\n",
            "sessions.redis_timeout",
            9,
            "expected a duration",
        )

    def test_the_examples_commented_sessions_block_reads_with_the_defaults(self) -> None:
        """etc/aigw/aigw.yaml: the sessions block, uncommented (its key file made),
        states the defaults."""
        key = self.directory() / "session.key"
        key.write_bytes(b"s" * 32)
        key.chmod(0o600)
        block = example_block("# sessions:").replace("/etc/aigw/session.key", str(key))
        sessions = parse_config(MINIMAL + block + "\n", env={}).sessions
        self.assertEqual(sessions.redis_url, RedisAddress("127.0.0.1", 6379, 0))
        defaults = SessionsConfig()
        self.assertEqual(
            attrs.evolve(sessions, secret=None, redis_url=None, peer_url=None), defaults
        )
