"""``aigw doctor`` against a live set-up (issue 13 items 3 and 7).

The real test authorization server (``e2e/as.mjs``), a real upstream (the pyserver)
and a running aigw: the doctor finds nothing wrong; then each broken set-up it
knows, as a variant of that config, is reported on its own line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.certificates import write_private_ca

from .aigw import Gateway, aigw_command, start_gateway
from .harness.authserver import AuthServer
from .harness.processes import LOG_DIR, free_port
from .harness.redis import start_redis
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def gateway(auth_server: AuthServer, pyserver: Upstream) -> Iterator[Gateway]:
    started = start_gateway([("py", pyserver.url)], issuer=auth_server.issuer)
    try:
        yield started
    finally:
        started.stop()


def session_key(gateway: Gateway) -> str:
    text = Path(gateway.config_path).read_text()
    return text.split("secret_file: ", 1)[1].split("}", 1)[0]


async def doctor(config_path: str) -> tuple[int, list[str]]:
    done = await aigw_command("doctor", config_path)
    return done.returncode, [*done.stdout.decode().splitlines(), *done.stderr.decode().splitlines()]


def variant(gateway: Gateway, name: str, old: str, new: str) -> str:
    """The gateway's config with ``old`` replaced by ``new``, beside it."""
    text = Path(gateway.config_path).read_text()
    assert old in text
    path = os.path.join(os.path.dirname(gateway.config_path), name)
    Path(path).write_text(text.replace(old, new))
    return path


def line(lines: list[str], start: str) -> str:
    found = [each for each in lines if each.startswith(start)]
    assert found, f"no line starting {start!r} in:\n" + "\n".join(lines)
    return found[0]


async def test_healthy(gateway: Gateway, auth_server: AuthServer) -> None:
    status, lines = await doctor(gateway.config_path)
    assert status == 0, "\n".join(lines)
    verdicts = [each.split()[0] for each in lines if not each.startswith("  ")]
    assert verdicts == ["ok"] * len(verdicts), "\n".join(lines)
    assert line(lines, "ok    issuer metadata:").endswith(auth_server.issuer)
    assert "revision" in line(lines, "ok    backend py:")
    assert line(lines, "ok    public url:").startswith(
        f"ok    public url: {gateway.base}/.well-known/oauth-protected-resource/mcp"
    )


async def test_issuer_spelled_localhost(gateway: Gateway, auth_server: AuthServer) -> None:
    localhost = auth_server.issuer.replace("127.0.0.1", "localhost")
    path = variant(
        gateway, "localhost.yaml", f"issuer: {auth_server.issuer}", f"issuer: {localhost}"
    )
    status, lines = await doctor(path)
    assert status == 1
    found = line(lines, "FAIL  issuer metadata:")
    assert repr(auth_server.issuer) in found
    assert repr(localhost) in found


async def test_backend_on_a_closed_port(gateway: Gateway, pyserver: Upstream) -> None:
    closed = f"http://127.0.0.1:{free_port()}/mcp"
    status, lines = await doctor(
        variant(gateway, "closed.yaml", f"url: {pyserver.url}", f"url: {closed}")
    )
    assert status == 1
    assert closed in line(lines, "FAIL  backend py:")


async def test_session_key_readable_by_others(gateway: Gateway) -> None:
    key = session_key(gateway)
    open_key = key + ".0644"
    shutil.copyfile(key, open_key)
    os.chmod(open_key, 0o644)
    status, lines = await doctor(variant(gateway, "openkey.yaml", key + "}", open_key + "}"))
    assert status == 1
    assert "mode 0644" in line(lines, "FAIL  session key:")
    assert f"  fix: chmod 600 {open_key}" in lines


async def test_aigw_not_running(gateway: Gateway) -> None:
    port = free_port()
    path = variant(gateway, "stopped.yaml", str(gateway.port), str(port))
    status, lines = await doctor(path)
    assert status == 0, "\n".join(lines)  # a warning fails nothing
    assert f"127.0.0.1:{port}/healthz" in line(lines, "warn  public url:")
    assert "  fix: is aigw running? is public_url the address clients reach it at?" in lines


async def test_config_with_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("listen: 3\n")
    status, lines = await doctor(str(path))
    assert status == 78
    assert any("listen" in each for each in lines)


def with_limits(gateway: Gateway, name: str, limits: str) -> str:
    """The gateway's config with a ``limits`` section, beside it."""
    path = os.path.join(os.path.dirname(gateway.config_path), name)
    Path(path).write_text(Path(gateway.config_path).read_text() + "limits:\n" + limits)
    return path


async def test_limits_store_plain_and_tls(gateway: Gateway) -> None:
    """A Redis the store reaches (plain; TLS with the CA named) is ok; one whose
    certificate another CA signed, or nothing listening, FAILs with what requests get."""
    directory = tempfile.mkdtemp(prefix="aigw-doctor-redis-", dir=LOG_DIR)
    ca, cert, key = write_private_ca(directory)
    other_ca = write_private_ca(tempfile.mkdtemp(prefix="aigw-doctor-other-", dir=LOG_DIR))[0]
    plain, plain_port = start_redis()
    secure, secure_port = start_redis(tls=(ca, cert, key))
    try:
        status, lines = await doctor(
            with_limits(gateway, "redis.yaml", f"  redis_url: redis://127.0.0.1:{plain_port}/0\n")
        )
        assert status == 0, "\n".join(lines)
        assert "accepts the take script" in line(
            lines, f"ok    limits store: redis://127.0.0.1:{plain_port}/0 answers (PING"
        )
        tls = f"  redis_url: rediss://127.0.0.1:{secure_port}/0\n  redis_ca_file: {{}}\n"
        status, lines = await doctor(with_limits(gateway, "rediss.yaml", tls.format(ca)))
        assert status == 0, "\n".join(lines)
        line(lines, f"ok    limits store: rediss://127.0.0.1:{secure_port}/0 answers")
        status, lines = await doctor(with_limits(gateway, "other.yaml", tls.format(other_ca)))
        assert status == 1
        assert "certificate verify failed" in line(lines, "FAIL  limits store: rediss://")
    finally:
        plain.stop()
        secure.stop()
    closed = f"  redis_url: redis://127.0.0.1:{free_port()}/0\n  on_redis_error: closed\n"
    status, lines = await doctor(with_limits(gateway, "closed-redis.yaml", closed))
    assert status == 1
    line(lines, "FAIL  limits store: redis://127.0.0.1:")
    assert any("refused with 503 (on_redis_error: closed)" in each for each in lines), lines


async def test_sessions_store_and_a_user_its_acl_keeps_from_publishing(gateway: Gateway) -> None:
    """``sessions.redis_url``: a Redis taking every command of ended sessions is ok; a
    user whose ACL refuses PUBLISH FAILs naming the command and what DELETE does then."""
    redis, port = start_redis()
    try:
        mute = ["ACL", "SETUSER", "mute", "on", ">pw", "~*", "&*", "+@all", "-publish"]
        acl = await anyio.run_process(["redis-cli", "-p", str(port), *mute], check=True)
        assert acl.stdout.strip() == b"OK", acl
        key = session_key(gateway)

        def sessions(name: str, url: str) -> str:
            return variant(
                gateway,
                name,
                f"{{secret_file: {key}}}",
                f"{{secret_file: {key}, redis_url: '{url}'}}",
            )

        status, lines = await doctor(sessions("ended.yaml", f"redis://127.0.0.1:{port}/0"))
        assert status == 0, "\n".join(lines)
        assert "takes every command of ended sessions" in line(
            lines, f"ok    sessions store: redis://127.0.0.1:{port}/0 answers (PING"
        )
        status, lines = await doctor(sessions("mute.yaml", f"redis://mute:pw@127.0.0.1:{port}/0"))
        assert status == 1
        assert "'publish' command" in line(lines, "FAIL  sessions store: redis://127.0.0.1:")
        assert not any("pw@" in each for each in lines), lines
    finally:
        redis.stop()
