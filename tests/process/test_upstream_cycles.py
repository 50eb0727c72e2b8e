"""A closed upstream connection is freed by reference counting, with the real reactor.

``make soak`` found most of the process's cyclic garbage to be closed upstream
connections (one is opened and closed per held stream): Twisted's
``connectProtocol`` made a class per connection, a class is a cycle, and the whole
connection (parser, buffers, transport) waited with it for a full collection while
the heap grew (docs/performance.md, "Soak").  Twisted's own connector and transport
still hold each other; aigw's objects must not hang off them.  Run in a child
process because the unit tests never touch the global reactor (tests/unit/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = r"""
import gc, json
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import globalLogBeginner
from aigw.upstream.connection import ConnectionPool, Target

factory_logs = []  # the connections' factories Twisted logged (their names, not them)
def observe(event):
    if event.get("factory") is not None:
        factory_logs.append(type(event["factory"]).__qualname__)
globalLogBeginner.beginLoggingTo([observe], redirectStandardIO=False)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"

class Upstream(Protocol):
    def dataReceived(self, data):
        if b" /close " in data:  # answers and closes
            self.transport.write(OK + b"Connection: close\r\n\r\nok")
            self.transport.loseConnection()
        elif b" /idle " in data:  # keeps the connection, then closes it while idle
            self.transport.write(OK + b"\r\nok")
            reactor.callLater(0.02, self.transport.loseConnection)
        else:  # a stream the client stops reading
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")

class Body(Protocol):
    def __init__(self, done):
        self.done = done
    def connectionLost(self, reason):
        self.done.callback(None)

async def exchange(path):
    port = listening.getHost().port
    target = Target(f"http://127.0.0.1:{port}{path}", reactor, 5)
    pool = ConnectionPool(target, 4, reactor, keep_alive=4.0)
    response = await pool.request(target.head(b"GET", [], None), None, 5)
    done = defer.Deferred()
    response.deliverBody(Body(done))
    if path == "/stream":
        await task.deferLater(reactor, 0.02, lambda: None)
        response.stopProducing()
    await done
    await task.deferLater(reactor, 0.05, lambda: None)

async def main():
    await exchange("/close")  # what a first connection builds once
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    for path in ("/close", "/idle", "/stream") * 5:
        await exchange(path)
    gc.collect()
    # Twisted's transport and connector hold each other: the transport (a tcp.Client,
    # of aigw's subclass when its writes are batched) and the factory of each attempt,
    # emptied by buildProtocol, stay in that cycle; nothing else of aigw may.
    twisted_cycle = {"_OneConnection", "BatchedClient"}
    held = [o._connection for o in gc.garbage if type(o).__name__ == "_OneConnection"]
    found = sorted({type(o).__module__ + "." + type(o).__qualname__ for o in gc.garbage
                    if (type(o).__module__.startswith("aigw.") or isinstance(o, type))
                    and type(o).__name__ not in twisted_cycle})
    found += [repr(connection) for connection in held if connection is not None]
    print(json.dumps({"garbage": found, "factory_logs": factory_logs[:3]}))

server = Factory.forProtocol(Upstream)
server.noisy = False
listening = reactor.listenTCP(0, server, interface="127.0.0.1")
def start():
    done = defer.ensureDeferred(main())
    done.addErrback(lambda failure: print(json.dumps({"error": failure.getTraceback()})))
    done.addBoth(lambda _: reactor.stop())
reactor.callWhenRunning(start)
reactor.run()
"""


def test_closed_upstream_connections_leave_no_aigw_object_to_the_cyclic_collector() -> None:
    out = subprocess.check_output([sys.executable, "-c", PROGRAM], text=True, timeout=60, cwd=ROOT)
    seen = json.loads(out.strip().splitlines()[-1])
    assert "error" not in seen, seen.get("error")
    assert seen["garbage"] == []
    # Nor a "Starting factory"/"Stopping factory" line per connection (Factory.noisy).
    assert seen["factory_logs"] == []
