"""The RESP2 client's parser and encoder (``gateway/redis_client.py``); its connection
is tested through its users (``test_redis_buckets.py``, ``test_ended_sessions.py``)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from aigw.config.redis import RedisAddress
from aigw.gateway.redis_client import (
    RECONNECT_DELAY,
    RedisConnection,
    _Incomplete,
    _parse,
    encode,
)
from aigw.gateway.store_failures import StoreUnavailable
from tests.unit.gateway.fake_redis import FakeRedis
from tests.unit.memory import MemoryNetwork, run


class ParserTests(SynchronousTestCase):
    def test_replies_whole_and_in_pieces(self) -> None:
        reply = b"*3\r\n:1\r\n$3\r\nabc\r\n*2\r\n$-1\r\n+OK\r\n"
        self.assertEqual(_parse(bytearray(reply), 0), ([1, b"abc", [None, "OK"]], len(reply)))
        for cut in range(1, len(reply)):
            self.assertIsInstance(_parse(bytearray(reply[:cut]), 0), _Incomplete)

    def test_commands_are_arrays_of_bulk_strings(self) -> None:
        self.assertEqual(encode(b"GET", "k", 5), b"*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$1\r\n5\r\n")


class RedisConnectionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.network = MemoryNetwork()
        self.reactor = self.network.reactor
        self.redis = FakeRedis()
        self.address = RedisAddress("127.0.0.1", self.network.serve(self.redis), password="pw")

    @run
    async def test_an_auth_never_answered_is_a_failed_connection_not_a_hang(self) -> None:
        """Connecting is bounded by max(1 s, timeout), AUTH and SELECT included; the
        connection is cut, and a later attempt (after RECONNECT_DELAY) starts afresh."""
        connection = RedisConnection(self.address, self.reactor, 0.05)
        self.addCleanup(lambda: self.network.run(connection.close()))
        self.redis.silent = True
        started = self.reactor.seconds()
        with self.assertRaises(StoreUnavailable):
            await connection.connection()
        self.assertAlmostEqual(self.reactor.seconds() - started, 1.0)
        await self.network.settle()
        self.assertEqual(self.network.open_connections(self.address.port), 0)
        self.redis.silent = False
        await self.network.sleep(RECONNECT_DELAY)
        protocol = await connection.connection()
        self.assertEqual(await protocol.command(b"PING"), "PONG")
        self.assertEqual(self.redis.names(), [b"AUTH", b"AUTH", b"PING"])
