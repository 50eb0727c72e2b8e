"""The RESP2 client's parser and encoder (``gateway/redis_client.py``); its connection
is tested through its users (``test_redis_buckets.py``, ``test_ended_sessions.py``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from aigw.config.redis import RedisAddress
from aigw.gateway.redis_client import (
    MAX_NESTING,
    MAX_REPLY_BYTES,
    RECONNECT_DELAY,
    RedisConnection,
    RedisError,
    RESPProtocol,
    RESPReader,
    Skipped,
    encode,
)
from aigw.gateway.store_failures import StoreUnavailable
from tests.unit.fuzz.strategies import FUZZ
from tests.unit.gateway.fake_redis import FakeRedis
from tests.unit.memory import MemoryNetwork, run


class ParserTests(SynchronousTestCase):
    def test_replies_whole_and_in_pieces(self) -> None:
        reply = b"*3\r\n:1\r\n$3\r\nabc\r\n*2\r\n$-1\r\n+OK\r\n*0\r\n*-1\r\n"
        values = [[1, b"abc", [None, "OK"]], [], None]
        self.assertEqual(RESPReader().feed(reply), values)
        for cut in range(1, len(reply)):
            reader = RESPReader()
            self.assertEqual(reader.feed(reply[:cut]) + reader.feed(reply[cut:]), values)
        reader = RESPReader()
        self.assertEqual([v for byte in reply for v in reader.feed(bytes([byte]))], values)
        self.assertEqual(len(reader), 0)

    def test_a_trickled_array_costs_each_item_once(self) -> None:
        """A server sending a long array one item per read: each read parses what came,
        not the whole array again (4 000 items took 21 s of CPU that way)."""
        reader, parsed = RESPReader(), []
        item = reader._item

        def counted(pos: int) -> object:
            parsed.append(pos)
            return item(pos)

        reader._item = counted  # type: ignore[method-assign]
        items = 4000
        self.assertEqual(reader.feed(b"*2\r\n$1\r\n0\r\n*%d\r\n" % items), [])
        for _ in range(items - 1):
            self.assertEqual(reader.feed(b":1\r\n"), [])
        self.assertEqual(reader.feed(b":1\r\n"), [[b"0", [1] * items]])
        self.assertLessEqual(len(parsed), 2 * items + 10)  # an item and a look, per read

    def test_commands_are_arrays_of_bulk_strings(self) -> None:
        self.assertEqual(encode(b"GET", "k", 5), b"*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$1\r\n5\r\n")


#: The bound of the readers below: small, so that hypothesis's notes cross it.
BOUND = 64
#: Replies a subscribed connection gets besides messages (SUBSCRIBE's, PING's).
OTHER_REPLIES = [
    (b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", [b"subscribe", b"ch", 1]),
    (b"*2\r\n$4\r\npong\r\n$0\r\n\r\n", [b"pong", b""]),
]


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut into reads at ``cuts`` (lengths, the rest in a last read)."""
    split, rest = [], data
    for cut in cuts:
        split.append(rest[:cut])
        rest = rest[cut:]
    return [*split, rest]


class SkippedMessageTests(SynchronousTestCase):
    """A subscribed connection's reader (``skip_messages``): a published message too
    long to hold is skipped as it comes, ``Skipped`` in its payload's place; anything
    else past the bound, or not RESP, is still an error."""

    @FUZZ
    @given(
        st.lists(
            st.one_of(
                st.tuples(st.binary(min_size=1, max_size=8), st.binary(max_size=3 * BOUND)),
                st.sampled_from(OTHER_REPLIES),
            ),
            max_size=8,
        ),
        st.lists(st.integers(1, 2 * BOUND), max_size=20),
    )
    def test_any_split_delivers_the_same_notes_and_skips(
        self, sent: list[tuple[bytes, object]], cuts: list[int]
    ) -> None:
        stream, expected = b"", []
        for first, second in sent:
            if isinstance(second, list):  # another reply
                stream += first
                expected.append(second)
                continue
            assert isinstance(second, bytes)
            frame = encode(b"message", first, second)
            stream += frame
            fits = len(frame) <= BOUND
            expected.append([b"message", first, second if fits else Skipped(len(second))])
        reader, got = RESPReader(max_bytes=BOUND, skip_messages=True), []
        for piece in pieces(stream, cuts):
            got += reader.feed(piece)
            self.assertLessEqual(len(reader), BOUND)  # a long payload is never buffered
        self.assertEqual(got, expected)
        self.assertEqual(len(reader), 0)

    def test_a_skipped_payload_is_read_once_as_it_comes(self) -> None:
        """A 1 MiB note trickled 1 KiB per read: no read parses anything twice, and
        nothing of it is held."""
        reader, parsed = RESPReader(skip_messages=True), []
        item = reader._item

        def counted(pos: int) -> object:
            parsed.append(pos)
            return item(pos)

        reader._item = counted  # type: ignore[method-assign]
        frame = encode(b"message", b"aigw:ended", b"x" * 1024 * 1024)
        got, reads = [], range(0, len(frame), 1024)
        for start in reads:
            got += reader.feed(frame[start : start + 1024])
            self.assertLessEqual(len(reader), 64)
        self.assertEqual(got, [[b"message", b"aigw:ended", Skipped(1024 * 1024)]])
        # The four headers, then a look at an empty buffer per read: the payload's bytes
        # are discarded before the parser, never searched for a line's end.
        self.assertLessEqual(len(parsed), len(reads) + 4)

    def test_only_a_messages_payload_is_skipped(self) -> None:
        big = b"x" * BOUND
        refused = {
            "a reader of replies": (False, encode(b"message", b"ch", big)),
            "a long channel": (True, encode(b"message", big, b"x")),
            "a pmessage (aigw subscribes to no pattern)": (
                True,
                encode(b"pmessage", b"p*", b"ch", big),
            ),
            "a reply of two items": (True, encode(b"message", big)),
            "a message in an array": (True, b"*1\r\n" + encode(b"message", b"ch", big)),
            "a long reply": (True, b"$%d\r\n%s\r\n" % (len(big), big)),
            "a payload not ended by CRLF": (True, encode(b"message", b"ch", big)[:-2] + b"\rx"),
            "a payload longer than its length": (
                True,
                b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$%d\r\n%s\r\n" % (BOUND, big + b"x"),
            ),
        }
        for name, (skip, data) in refused.items():
            with self.subTest(name):
                reader = RESPReader(max_bytes=BOUND, skip_messages=skip)
                with self.assertRaises(ValueError):
                    for byte in range(len(data)):
                        reader.feed(data[byte : byte + 1])
                with self.assertRaises(ValueError):
                    RESPReader(max_bytes=BOUND, skip_messages=skip).feed(data)


def connected() -> tuple[RESPProtocol, StringTransport, list[Failure | object]]:
    """A protocol on a transport in memory, one command waiting: what it got."""
    protocol = RESPProtocol()
    transport = StringTransport()
    protocol.makeConnection(transport)
    outcomes: list[Failure | object] = []
    waiting: Deferred[object] = protocol.command(b"PING")
    waiting.addBoth(outcomes.append)
    return protocol, transport, outcomes


#: What a server that is not Redis, or a broken one, may send; each cuts the connection
#: and fails the command waiting with ``StoreUnavailable``, why in its message.
GARBAGE = {
    "a type byte RESP2 lacks": (b"%1\r\n", "not a RESP2 reply"),
    "an HTTP answer": (b"HTTP/1.1 400 Bad Request\r\n", "not a RESP2 reply"),
    "an integer that is none": (b":twelve\r\n", "invalid literal"),
    "a length that is none": (b"$x\r\n", "invalid literal"),
    "a count that is none": (b"*\xff\r\n", "invalid literal"),
    "an integer of 5000 digits": (b":" + b"9" * 5000 + b"\r\n", "digits"),
    "arrays nested too deeply": (b"*1\r\n" * 5000 + b":1\r\n", "nested deeper"),
    "a bulk string longer than the bound": (b"$99999999999\r\n" + b"x" * 70_000, "too large"),
    "a line that never ends": (b"+" + b"x" * (MAX_REPLY_BYTES + 1), "too large"),
    "an array announcing a billion items": (b"*1000000000\r\n" + b":1\r\n" * 20_000, "too large"),
}


class HostileServerTests(SynchronousTestCase):
    """A server speaking broken RESP: the connection is cut, what waits on it fails with
    ``StoreUnavailable``, nothing escapes ``dataReceived`` (no traceback), and what is
    buffered stays within ``MAX_REPLY_BYTES`` and one read."""

    def test_garbage_cuts_the_connection_and_fails_what_waits(self) -> None:
        for name, (garbage, why) in GARBAGE.items():
            with self.subTest(name):
                protocol, transport, outcomes = connected()
                for start in range(0, len(garbage), 65_536):  # as TCP reads it, 64 KiB at most
                    protocol.dataReceived(garbage[start : start + 65_536])
                self.assertTrue(protocol.lost)
                self.assertTrue(transport.disconnecting)
                [outcome] = outcomes
                assert isinstance(outcome, Failure)
                self.assertIsInstance(outcome.value, StoreUnavailable)
                self.assertIn(why, str(outcome.value))

    def test_a_command_given_up_on_cuts_the_connection(self) -> None:
        """A command past its deadline (``addTimeout`` cancels it) while its reply
        trickles in: the connection is cut, the reply's framing abandoned, the command
        cancelled, the one pipelined after it unavailable; what comes later is not read."""
        protocol, transport, outcomes = connected()
        later: list[Failure | object] = []
        protocol.command(b"GET", b"k").addBoth(later.append)
        protocol.dataReceived(b"$1000\r\nabc")  # the PING's reply, trickling
        first = protocol._pending[0]
        first.cancel()
        self.assertTrue(protocol.lost and transport.disconnecting)
        [outcome] = outcomes
        assert isinstance(outcome, Failure)
        self.assertIsInstance(outcome.value, CancelledError)
        [other] = later
        assert isinstance(other, Failure)
        self.assertIsInstance(other.value, StoreUnavailable)
        protocol.dataReceived(b"d" * 997 + b"\r\n+OK\r\n")  # late: dropped, no error
        self.assertEqual(len(protocol._pending), 0)
        with self.assertRaises(StoreUnavailable):
            protocol.command(b"PING")

    def test_nesting_up_to_the_bound_is_read(self) -> None:
        reply = b"*1\r\n" * MAX_NESTING + b":7\r\n"
        value: object = 7
        for _ in range(MAX_NESTING):
            value = [value]
        self.assertEqual(RESPReader().feed(reply), [value])

    def test_a_reply_to_no_command_cuts_the_connection(self) -> None:
        protocol, transport, outcomes = connected()
        protocol.dataReceived(b"+PONG\r\n+PONG\r\n")
        self.assertEqual(outcomes, ["PONG"])
        self.assertTrue(protocol.lost and transport.disconnecting)

    def test_an_error_reply_of_any_bytes_is_a_redis_error(self) -> None:
        protocol, _, outcomes = connected()
        protocol.dataReceived(b"-ERR \xff\xfe\x00 odd\r\n")
        [outcome] = outcomes
        assert isinstance(outcome, Failure)
        self.assertIsInstance(outcome.value, RedisError)
        self.assertFalse(protocol.lost)

    @FUZZ
    @given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=8))
    def test_any_bytes_in_any_pieces_are_replies_or_a_cut(
        self, data: bytes, cuts: list[int]
    ) -> None:
        protocol, transport, outcomes = connected()
        for piece in pieces(data, cuts):
            protocol.dataReceived(piece)  # raises nothing
        self.assertLessEqual(len(protocol._reader), MAX_REPLY_BYTES + 64)
        for outcome in outcomes:
            if isinstance(outcome, Failure):
                self.assertIsInstance(outcome.value, RedisError | StoreUnavailable)
        if protocol.lost:
            self.assertTrue(transport.disconnecting)


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
