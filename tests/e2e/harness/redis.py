"""A real ``redis-server`` on loopback, for the tests of limits shared through Redis:
plain, or TLS only (``rediss://``) with a certificate a private CA signed."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest

from .processes import Process, free_port, start_process


def start_redis(
    tls: tuple[str, str, str] | None = None, port: int | None = None
) -> tuple[Process, int]:
    """``redis-server`` answering PING on a free port (or ``port``: one started again
    where its clients know it), nothing saved; with ``tls`` (the CA file, the server's
    certificate and key files) it speaks TLS only and asks clients for no certificate.
    The process (the caller stops it) and the port."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    port = port or free_port()
    argv = [server, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    if tls is None:
        argv += ["--port", str(port)]
    else:
        ca, cert, key = tls
        argv += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", cert]
        argv += ["--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]
    process = start_process(
        argv, ready_line_regex=r"[Rr]eady to accept connections", timeout=20, name="redis-server"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
            if tls is None:
                plain.sendall(b"PING\r\n")
                assert plain.recv(16).startswith(b"+PONG")
            else:
                context = ssl.create_default_context(cafile=tls[0])
                with context.wrap_socket(plain, server_hostname="127.0.0.1") as secure:
                    secure.sendall(b"PING\r\n")
                    assert secure.recv(16).startswith(b"+PONG")
    except BaseException:
        process.stop()
        raise
    return process, port


def evaluate(port: int, script: bytes, keys: list[str], *argv: str, db: int = 0) -> list[str]:
    """A script run by ``redis-cli`` (in database ``db``): its reply, one value a line."""
    command = ["redis-cli", "-p", str(port), "-n", str(db), "EVAL", script.decode(), str(len(keys))]
    done = subprocess.run([*command, *keys, *argv], capture_output=True, check=True, timeout=10)
    return done.stdout.decode().split()


#: Leases under every bound whose key matches ARGV[1] that have not expired, by Redis's clock.
LIVE_LEASES = b"""\
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = 0
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  live = live + redis.call('ZCOUNT', key, '(' .. now, '+inf')
end
return live
"""


def live_leases(port: int, keys: str = "aigw:rl:*", db: int = 1) -> int:
    """Live leases under the in-flight bounds (or those whose keys match ``keys``) in
    database ``db`` (the one the tests give ``limits.redis_url``)."""
    return int(evaluate(port, LIVE_LEASES, [], keys, db=db)[0])
