"""A fake RESP2 server in memory (serve it on ``tests.unit.memory.MemoryNetwork``): the
few commands aigw sends to Redis, answered as Redis answers them."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase

from aigw.gateway.redis_buckets import LEASE_SHA, script_id
from aigw.gateway.redis_client import RESPReader, encode
from tests.unit.memory import MemoryNetwork


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class FakeRedisConnection(Protocol):
    def __init__(self, server: FakeRedis) -> None:
        self.server = server
        #: Commands as they come (a batch of lease renewals is tens of KiB).
        self.reader = RESPReader(max_bytes=16 * 1024 * 1024)
        #: Channels this connection SUBSCRIBEd to.
        self.channels: set[bytes] = set()

    def connectionMade(self) -> None:
        self.server.connections.append(self)
        if self.server.down:
            assert self.transport is not None
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Any = None) -> None:
        if self in self.server.connections:
            self.server.connections.remove(self)

    def dataReceived(self, data: bytes) -> None:
        for command in self.reader.feed(data):
            self.server.commands.append(command)
            reply = self.server.answer(self, command)
            if command[0].upper() in self.server.cut_after and self.transport is not None:
                self.server.cut_after.discard(command[0].upper())
                self.transport.abortConnection()  # type: ignore[attr-defined]
                return  # done, and its reply lost with the connection
            if reply is not None and self.transport is not None:
                if self.server.delay:
                    self.server.clock.callLater(self.server.delay, self.transport.write, reply)
                else:
                    self.transport.write(reply)


class FakeRedis(Factory):
    """Knows AUTH, SELECT, EVAL, EVALSHA and SCRIPT LOAD, SET with PX, PTTL, SCAN with MATCH and
    COUNT, PUBLISH, SUBSCRIBE and PING; keys expire on ``clock`` (none given: never).
    The take script's buckets answer ``reply``; its bounds and the lease script act on
    ``leases`` (key -> member -> expiry in ms), as the scripts do in a real Redis
    (tests/e2e/test_shared_limits.py).  ``silent``: nothing is answered; ``down``: every
    new connection is cut at once (``kill`` cuts those open); ``refused``: commands
    answered ``-NOPERM``, as an ACL does; ``cut_after``: the next command of each
    name is done, then its connection cut before the reply (a reply lost)."""

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock
        self.commands: list[list[bytes]] = []
        self.scripts: set[bytes] = set()
        self.reply = b"*2\r\n:0\r\n:0\r\n"
        self.silent = False
        self.down = False
        #: Seconds of ``clock`` each reply takes (a Redis far away).
        self.delay = 0.0
        #: Commands refused as an ACL refuses them (names in capitals).
        self.refused: set[bytes] = set()
        #: The next command of each name done, then its connection cut before the reply.
        self.cut_after: set[bytes] = set()
        self.connections: list[FakeRedisConnection] = []
        #: Channels SUBSCRIBE and PUBLISH are refused on, as an ACL without ``&channel`` does.
        self.refused_channels: set[bytes] = set()
        #: Keys: their value and when they expire (None: never).
        self.keys: dict[bytes, tuple[bytes, float | None]] = {}
        self.leases: dict[bytes, dict[bytes, int]] = {}

    def buildProtocol(self, addr: Any) -> Protocol:
        return FakeRedisConnection(self)

    def kill(self) -> None:
        for connection in list(self.connections):
            assert connection.transport is not None
            connection.transport.abortConnection()  # type: ignore[attr-defined]

    def names(self) -> list[bytes]:
        """The commands received so far, by name."""
        return [command[0].upper() for command in self.commands]

    def live(self) -> dict[bytes, tuple[bytes, float | None]]:
        now = self.clock.seconds() if self.clock is not None else 0.0
        self.keys = {k: v for k, v in self.keys.items() if v[1] is None or v[1] > now}
        return self.keys

    def answer(self, connection: FakeRedisConnection, command: list[bytes]) -> bytes | None:
        if self.silent:
            return None
        name = command[0].upper()
        if name in self.refused:
            text = name.decode().lower()
            return b"-NOPERM User has no permissions to run the '%s' command\r\n" % text.encode()
        if name in (b"EVAL", b"EVALSHA"):
            sha = command[1] if name == b"EVALSHA" else script_id(command[1])
            if sha not in self.scripts and name == b"EVALSHA":
                return b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
            self.scripts.add(sha)
            count = int(command[2])
            keys, argv = command[3 : 3 + count], command[3 + count :]
            return self.renew(keys, argv) if sha == LEASE_SHA else self.take(keys, argv)
        if name in (b"AUTH", b"SELECT"):
            return b"+OK\r\n"
        if name == b"SCRIPT" and command[1].upper() == b"LOAD":
            sha = script_id(command[2])
            self.scripts.add(sha)
            return bulk(sha)
        if name == b"PING":
            return encode(b"pong", b"") if connection.channels else b"+PONG\r\n"
        if name == b"SET" and len(command) == 5 and command[3].upper() == b"PX":
            now = self.clock.seconds() if self.clock is not None else 0.0
            self.keys[command[1]] = (command[2], now + int(command[4]) / 1000)
            return b"+OK\r\n"
        if name == b"SET" and [c.upper() for c in command[3:5]] == [b"NX", b"PX"]:  # once
            if command[1] in self.live():
                return b"$-1\r\n"
            now = self.clock.seconds() if self.clock is not None else 0.0
            self.keys[command[1]] = (command[2], now + int(command[5]) / 1000)
            return b"+OK\r\n"
        if name == b"PTTL":
            found = self.live().get(command[1])
            if found is None:
                return b":-2\r\n"
            if found[1] is None:
                return b":-1\r\n"
            now = self.clock.seconds() if self.clock is not None else 0.0
            return b":%d\r\n" % round((found[1] - now) * 1000)
        if name == b"SCAN":
            return self.scan(command)
        if name in (b"SUBSCRIBE", b"PUBLISH") and command[1] in self.refused_channels:
            return b"-NOPERM No permissions to access a channel\r\n"
        if name == b"SUBSCRIBE":
            connection.channels.add(command[1])
            return b"*3\r\n" + bulk(b"subscribe") + bulk(command[1]) + b":1\r\n"
        if name == b"PUBLISH":
            heard = [c for c in self.connections if command[1] in c.channels]
            for listener in heard:
                assert listener.transport is not None
                listener.transport.write(encode(b"message", command[1], command[2]))
            return b":%d\r\n" % len(heard)
        return b"-ERR unknown command\r\n"

    def scan(self, command: list[bytes]) -> bytes:
        """``SCAN cursor MATCH pattern COUNT n``: the cursor is a position in the keys."""
        options = dict(zip(command[2::2], command[3::2], strict=True))
        start, count = int(command[1]), int(options.get(b"COUNT", b"10"))
        keys = sorted(self.live())[start : start + count]
        following = start + count if start + count < len(self.keys) else 0
        pattern = options.get(b"MATCH", b"*").decode()
        matched = [key for key in keys if fnmatchcase(key.decode(), pattern)]
        return b"*2\r\n" + bulk(b"%d" % following) + encode(*matched)

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000) if self.clock is not None else 0

    def take(self, keys: list[bytes], argv: list[bytes]) -> bytes:
        buckets = int(argv[0])
        if buckets and self.reply != b"*2\r\n:0\r\n:0\r\n":
            return self.reply
        member, ttl, now = argv[1], int(argv[2]), self.now_ms()
        bounds = [int(bound) for bound in argv[3 + 2 * buckets :]]
        for index, (key, bound) in enumerate(zip(keys[buckets:], bounds, strict=True)):
            held = self.leases.setdefault(key, {})
            for expired in [m for m, expiry in held.items() if expiry <= now]:
                del held[expired]
            if len(held) >= bound:
                return b"*2\r\n:%d\r\n:0\r\n" % (buckets + index + 1)
        for key in keys[buckets:]:
            self.leases[key][member] = now + ttl
        return b"*2\r\n:0\r\n:0\r\n"

    def renew(self, keys: list[bytes], argv: list[bytes]) -> bytes:
        ttl = int(argv[0])
        for key, member in zip(keys, argv[1:], strict=True):
            if ttl:
                self.leases.setdefault(key, {})[member] = self.now_ms() + ttl
            else:
                self.leases.get(key, {}).pop(member, None)
        return b":%d\r\n" % len(keys)

    def held(self) -> int:
        """Leases not expired, in every key."""
        now = self.now_ms()
        return sum(expiry > now for held in self.leases.values() for expiry in held.values())

    def sent(self, sha: bytes) -> int:
        """Script calls by ``EVALSHA`` with this id."""
        return sum(1 for c in self.commands if c[0] == b"EVALSHA" and c[1] == sha)


class FakeRedisTestCase(SynchronousTestCase):
    """A memory network with a ``FakeRedis`` listening on it at ``port``."""

    def setUp(self) -> None:
        self.network = MemoryNetwork()
        self.reactor = self.network.reactor
        self.redis = FakeRedis(self.reactor)
        self.port = self.network.serve(self.redis)
