"""A reactor that spawns fake child processes: what aigw writes to them is recorded, and
the test speaks for them (stdout, stderr, exit) through their ProcessProtocol."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure


class FakeProcess:
    """The transport of one spawned child."""

    def __init__(
        self,
        protocol: ProcessProtocol,
        pid: int,
        executable: str,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        path: str | None,
    ) -> None:
        self.protocol = protocol
        self.pid = pid
        self.executable = executable
        self.args = list(args)
        self.env = dict(env or {})
        self.path = path
        self.written = b""
        self.signals: list[str] = []
        self.stdin_closed = False
        self.ended = False

    # IProcessTransport, as much as aigw uses
    def write(self, data: bytes) -> None:
        self.written += data

    def writeSequence(self, data: Sequence[bytes]) -> None:
        self.write(b"".join(data))

    def closeStdin(self) -> None:
        self.stdin_closed = True

    def signalProcess(self, signal: str) -> None:
        if self.ended:
            raise ProcessExitedAlready()
        self.signals.append(signal)

    # the test's side
    def received(self) -> list[Any]:
        """Every message written to the child's stdin, decoded."""
        return [json.loads(line) for line in self.written.split(b"\n") if line]

    def say(self, message: Any) -> None:
        """One message on the child's stdout."""
        self.protocol.childDataReceived(1, json.dumps(message).encode() + b"\n")

    def answer(self, result: Any, index: int = -1) -> None:
        """Answer the request at ``index`` of what was received."""
        request = [m for m in self.received() if "method" in m and "id" in m][index]
        self.say({"jsonrpc": "2.0", "id": request["id"], "result": result})

    def exit(self, code: int = 0, signal: int | None = None) -> None:
        self.ended = True
        if code == 0 and signal is None:
            reason = Failure(ProcessDone(0))
        else:
            reason = Failure(ProcessTerminated(exitCode=code, signal=signal))
        self.protocol.processEnded(reason)


class ProcessReactor(MemoryReactorClock):
    """``MemoryReactorClock`` with ``spawnProcess``: each child is a ``FakeProcess``."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[FakeProcess] = []
        self._pids = itertools.count(1000)

    def spawnProcess(
        self,
        processProtocol: ProcessProtocol,
        executable: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        path: str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool = False,
        childFDs: Mapping[int, object] | None = None,
    ) -> FakeProcess:
        process = FakeProcess(processProtocol, next(self._pids), executable, args, env, path)
        self.spawned.append(process)
        processProtocol.makeConnection(process)  # type: ignore[arg-type]
        return process
