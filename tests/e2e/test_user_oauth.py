"""Per-user OAuth to a backend that does OAuth itself (``auth.user_oauth``), end to end.

Authorization server: oidc-provider (``e2e/as.mjs``), for aigw's own users and for the
backend (a resource of its own: tokens with ``aud`` = the backend's URL).  Backend: the
``mcp`` SDK server with its own resource-server auth (``pyserver --auth-issuer``: 401
with ``resource_metadata``, JWTs checked against the AS's keys).  Client: the official
MCP Python SDK, declaring URL-mode elicitation.  The call answers -32042 (MCP 2025-11-25
client/elicitation, "URL Elicitation Required Error"); the test opens the URL headlessly
(aigw's start endpoint, the AS's login for aigw itself (OpenID Connect), aigw's login
callback, the AS's login for the backend, aigw's callback), and the retried call reaches
the backend with the user's own token there.  A second user gets their own; the user's
token at aigw is never among what the backend receives.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio
import httpx2
import jwt
import mcp_types as types
import pytest
from mcp import MCPError, UrlElicitationRequiredError

from tests.certificates import write_private_ca, write_self_signed

from .aigw import Backend, Gateway, aigw_command, reload_with, start_gateway, write_session_key
from .harness.authserver import AuthServer, start_auth_server
from .harness.login import authorize
from .harness.oauth_client import MemoryTokenStorage, connect
from .harness.processes import LOG_DIR, Process, free_port, until
from .harness.redis import start_redis
from .harness.results import text_of
from .harness.routing import StreamsTo
from .harness.upstreams import Upstream, start_pyserver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def protected(auth_server: AuthServer) -> Iterator[Upstream]:
    """The SDK server as an OAuth protected resource of its own."""
    upstream = start_pyserver(auth_issuer=auth_server.issuer)
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture(scope="module")
def gateway(auth_server: AuthServer, protected: Upstream, pyserver: Upstream) -> Iterator[Gateway]:
    state = tempfile.mkdtemp(prefix="aigw-user-oauth-state-", dir=LOG_DIR)
    started = start_gateway(
        [("crm", protected.url, "auth:\n  user_oauth: {}\n"), ("plain", pyserver.url)],
        issuer=auth_server.issuer,
        extra=f"state_dir: {state}\n",
    )
    try:
        yield started
    finally:
        started.stop()


async def ignore_elicitation(context: Any, params: Any) -> types.ElicitResult:
    """Declares URL-mode elicitation (the SDK does when given a callback)."""
    return types.ElicitResult(action="decline")


def served_by(url: str, base: str | None) -> str:
    """``url`` of one of aigw's pages, asked of the aigw process at ``base`` instead (what
    a balancer without stickiness may do with each request); unchanged without one."""
    if base is None:
        return url
    parts = urlsplit(url)
    return base + parts.path + (f"?{parts.query}" if parts.query else "")


async def sign_in(url: str, user: str, base: str | None = None) -> httpx2.Response:
    """Open the elicitation URL as ``user``'s browser would: aigw's start page redirects
    to aigw's own authorization server (OpenID Connect, ``scope=openid``), whose login
    sends back to aigw's login callback; its answer is returned.  ``base``: the aigw
    process that serves every one of aigw's pages (default: the one the URLs name)."""
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
        start = await http.get(served_by(url, base))
    assert start.status_code == 302, start.text
    location = start.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert query["scope"] == ["openid"]
    assert query["nonce"]
    redirect_uri = query["redirect_uri"][0]
    assert redirect_uri.endswith("/oauth/upstream/login")
    response = await authorize(location, user, redirect_uri=redirect_uri)
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
        return await http.get(served_by(urljoin(url, response.redirect), base))


async def follow(url: str, user: str, ca_file: str | None = None, base: str | None = None) -> str:
    """Signed in as the link's user, on to the backend's authorization server (the AS's
    login again; ``ca_file``: the CA the browser trusts it with), then aigw's callback,
    whose page is returned.  ``base``: the aigw process serving aigw's pages."""
    login = await sign_in(url, user, base)
    assert login.status_code == 302, login.text
    location = login.headers["location"]
    redirect_uri = parse_qs(urlsplit(location).query)["redirect_uri"][0]
    assert redirect_uri.endswith("/oauth/upstream/callback")
    response = await authorize(location, user, redirect_uri=redirect_uri, ca_file=ca_file)
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
        page = await http.get(served_by(urljoin(url, response.redirect), base))
    assert page.status_code == 200, page.text
    return page.text


async def call_whoami(
    gateway: Gateway, user: str, storage: MemoryTokenStorage
) -> dict[str, Any] | MCPError:
    """The headers the backend received, or the error the call was answered with."""
    async with connect(
        gateway.url,
        user,
        storage=storage,
        mode="legacy",
        elicitation_callback=ignore_elicitation,
    ) as client:
        try:
            result = await client.call_tool("crm__whoami-headers", {})
        except MCPError as error:
            return error
    headers: dict[str, Any] = json.loads(text_of(result))
    return headers


async def whoami(gateway: Gateway, user: str, storage: MemoryTokenStorage) -> dict[str, Any]:
    answer = await call_whoami(gateway, user, storage)
    assert not isinstance(answer, MCPError), answer
    return answer


async def elicited(gateway: Gateway, user: str, storage: MemoryTokenStorage) -> str:
    """The call fails with -32042; the URL it names (read with the SDK's own model)."""
    error = await call_whoami(gateway, user, storage)
    assert isinstance(error, MCPError), error
    assert error.code == types.URL_ELICITATION_REQUIRED
    (elicitation,) = UrlElicitationRequiredError.from_error(error.error).elicitations
    assert elicitation.mode == "url"
    assert elicitation.elicitation_id
    assert elicitation.url.startswith(gateway.base + "/oauth/upstream/start?link=")
    return elicitation.url


def claims(headers: dict[str, Any]) -> dict[str, Any]:
    scheme, _, token = headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def test_url_elicitation_then_each_user_has_their_own_token(
    gateway: Gateway, protected: Upstream
) -> None:
    alice, bob = MemoryTokenStorage(), MemoryTokenStorage()
    url = await elicited(gateway, "alice", alice)
    assert "You can close this page" in await follow(url, "alice")
    seen = await whoami(gateway, "alice", alice)
    assert claims(seen)["sub"] == "alice"
    assert claims(seen)["aud"] == protected.url
    assert alice.tokens is not None
    assert alice.tokens.access_token not in json.dumps(seen)
    # Stored sealed: the backend's token is nowhere in state_dir in clear.
    assert_not_in_state_dir(gateway, seen["authorization"].partition(" ")[2].encode())
    # The link was for one use.
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
        again = await http.get(url)
    assert again.status_code == 400
    assert "used already" in again.text
    # Bob is not Alice: his own elicitation, his own token.
    url = await elicited(gateway, "bob", bob)
    await follow(url, "bob")
    seen = await whoami(gateway, "bob", bob)
    assert claims(seen)["sub"] == "bob"
    assert bob.tokens is not None
    assert bob.tokens.access_token not in json.dumps(seen)
    assert claims(await whoami(gateway, "alice", alice))["sub"] == "alice"


async def test_a_revoked_token_is_elicited_again(gateway: Gateway) -> None:
    """``aigw tokens list|revoke`` on the store the daemon writes: alice must authorize
    again, and only she."""
    alice, bob = MemoryTokenStorage(), MemoryTokenStorage()
    for user, storage in (("alice", alice), ("bob", bob)):
        answer = await call_whoami(gateway, user, storage)
        if isinstance(answer, MCPError):
            await follow(await elicited(gateway, user, storage), user)
    listed = await aigw_command("tokens", "list", "--config", gateway.config_path)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.decode().splitlines() if "crm" in line]
    assert any("alice" in row for row in rows), rows
    assert any("bob" in row for row in rows), rows
    revoked = await aigw_command(
        "tokens", "revoke", "--sub", "alice", "--config", gateway.config_path
    )
    assert revoked.returncode == 0, revoked.stderr
    await elicited(gateway, "alice", alice)
    assert claims(await whoami(gateway, "bob", bob))["sub"] == "bob"


async def test_alices_link_opened_by_bobs_browser_is_refused(gateway: Gateway) -> None:
    """MCP 2025-11-25 client/elicitation, "Phishing": the user completing a URL
    elicitation must be the one it was for.  Bob signs in with Alice's link: 403, and
    neither Alice nor Bob gets a token at the backend."""
    alice, bob = MemoryTokenStorage(), MemoryTokenStorage()
    for user in ("alice", "bob"):  # whatever the other tests left
        revoked = await aigw_command(
            "tokens", "revoke", "--sub", user, "--config", gateway.config_path
        )
        assert revoked.returncode == 0, revoked.stderr
    url = await elicited(gateway, "alice", alice)
    answer = await sign_in(url, "bob")
    assert answer.status_code == 403, answer.text
    assert "belongs to another user" in answer.text
    assert "location" not in answer.headers
    rows = await aigw_command("tokens", "list", "--config", gateway.config_path)
    assert rows.returncode == 0, rows.stderr
    assert not [line for line in rows.stdout.decode().splitlines() if "crm" in line]
    # Neither can call the backend: each is asked to authorize.
    await elicited(gateway, "alice", alice)
    await elicited(gateway, "bob", bob)


async def told_then_retried(
    gateway: Gateway, user: str, browser: str | None = None, streams: int | None = None
) -> list[str]:
    """MCP 2025-11-25 client/elicitation, "Completion Notifications for URL Mode
    Elicitation": the official SDK client, still connected to ``gateway`` after the
    -32042, receives ``notifications/elicitation/complete`` with the elicitation's id
    on its GET stream once the user finished in the browser (whose pages the aigw
    process at ``browser`` serves, when given), once, and its retried call goes
    through.  ``streams``: the port of the aigw process its GET stream goes to."""
    revoked = await aigw_command("tokens", "revoke", "--sub", user, "--config", gateway.config_path)
    assert revoked.returncode == 0, revoked.stderr
    completed: list[str] = []
    told = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ElicitCompleteNotification):
            completed.append(message.params.elicitation_id)
            told.set()

    async with connect(
        gateway.url,
        user,
        storage=MemoryTokenStorage(),
        mode="legacy",
        elicitation_callback=ignore_elicitation,
        message_handler=on_message,
        transport=None if streams is None else StreamsTo(streams),
    ) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("crm__whoami-headers", {})
        (elicitation,) = UrlElicitationRequiredError.from_error(raised.value.error).elicitations
        await follow(elicitation.url, user, base=browser)
        with anyio.fail_after(30):
            await told.wait()
        result = await client.call_tool("crm__whoami-headers", {})
        assert claims(json.loads(text_of(result)))["sub"] == user
    assert completed == [elicitation.elicitation_id]


async def test_the_session_is_told_when_the_authorization_completes(gateway: Gateway) -> None:
    await told_then_retried(gateway, "alice")


@contextmanager
def deployment(
    count: int, sessions: Callable[[int], str], servers: tuple[AuthServer, Upstream, Upstream]
) -> Iterator[list[Gateway]]:
    """``count`` aigw processes of one deployment (docs/scale-out.md): one session key,
    one ``state_dir`` (the store of the host), the first's URL as all's ``public_url``;
    ``sessions``: more keys of each one's ``sessions``, given its port."""
    auth_server, protected, pyserver = servers
    directory = tempfile.mkdtemp(prefix="aigw-user-oauth-peers-", dir=LOG_DIR)
    key = write_session_key(directory)
    ports = [free_port() for _ in range(count)]
    started: list[Gateway] = []
    try:
        for port in ports:
            started.append(
                start_gateway(
                    [("crm", protected.url, "auth:\n  user_oauth: {}\n"), ("plain", pyserver.url)],
                    issuer=auth_server.issuer,
                    extra=f"state_dir: {directory}\n",
                    port=port,
                    session_key=key,
                    public_url=f"http://127.0.0.1:{ports[0]}",
                    sessions=sessions(port),
                )
            )
        yield started
    finally:
        for gateway in started:
            gateway.stop()


@pytest.fixture(scope="module")
def two_processes(
    auth_server: AuthServer, protected: Upstream, pyserver: Upstream
) -> Iterator[list[Gateway]]:
    """Two processes, each reachable by the other at its own ``sessions.peer_url``."""
    servers = (auth_server, protected, pyserver)
    with deployment(2, lambda port: f", peer_url: 'http://127.0.0.1:{port}/mcp'", servers) as two:
        yield two


async def test_a_callback_on_another_process_tells_the_session_through_its_own(
    two_processes: list[Gateway],
) -> None:
    """The session, its -32042 and its GET stream are on the first process; every page
    of the browser flow, the callback among them, on the second, which stores the token
    in the shared store and tells the first over its ``peer_url``: the client is told
    once, through the first, and its retried call there goes through."""
    asked, callback = two_processes
    await told_then_retried(asked, "bob", browser=callback.base)
    assert "bob authorized aigw at backend crm (1 stream(s) told)" in callback.process.log()
    assert "authorized aigw at backend" not in asked.process.log()


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[tuple[Process, int]]:
    """The real ``redis-server`` of ``three_processes``, and its port."""
    redis, port = start_redis()
    try:
        yield redis, port
    finally:
        redis.stop()


@pytest.fixture(scope="module")
def three_processes(
    auth_server: AuthServer,
    protected: Upstream,
    pyserver: Upstream,
    shared_redis: tuple[Process, int],
) -> Iterator[list[Gateway]]:
    """Three processes sharing a real ``redis-server`` (``sessions.redis_url``), each
    reachable by the others at its own ``sessions.peer_url`` (used when Redis fails)."""
    url = f", redis_url: 'redis://127.0.0.1:{shared_redis[1]}/0'"
    with deployment(
        3,
        lambda port: f", peer_url: 'http://127.0.0.1:{port}/mcp'{url}",
        (auth_server, protected, pyserver),
    ) as three:
        yield three


async def test_through_redis_the_process_holding_the_stream_tells_the_session(
    three_processes: list[Gateway],
) -> None:
    """``sessions.redis_url``: the -32042 answered by A, every page of the browser flow
    on B, the client's GET stream on C (a balancer without stickiness): the client is
    told once, by C, and its retried call goes through."""
    asked, callback, streams = three_processes
    await told_then_retried(asked, "alice", browser=callback.base, streams=streams.port)
    assert "1 stream(s) of its session told here" in streams.process.log()
    for other in (asked, callback):
        assert "stream(s) of its session told here" not in other.process.log()


async def test_with_redis_stopped_the_peer_hop_tells_the_stream_where_it_was_asked(
    three_processes: list[Gateway], shared_redis: tuple[Process, int]
) -> None:
    """``redis-server`` stopped (SIGSTOP: it accepts connections and answers nothing),
    the -32042 and the client's GET stream on A, the browser flow on B: B's PUBLISH gets
    no reply within its timeout (counted), so B sends the note over the peer hop to A,
    which tells the client, once.  When Redis resumes it delivers B's note, which tells
    nobody: A's entry for the elicitation was used (``web/elicitation_notices.py``)."""
    asked, callback, _ = three_processes
    redis, _ = shared_redis
    os.kill(redis.pid, signal.SIGSTOP)
    try:
        await told_then_retried(asked, "bob", browser=callback.base, streams=asked.port)
    finally:
        os.kill(redis.pid, signal.SIGCONT)
    hopped = "Redis did not take its notice, told over the peer hop instead (1 stream(s) told)"
    assert until(lambda: hopped in callback.process.log())
    assert "unavailable while" in callback.process.log()  # Redis's failures, logged
    assert "stream(s) of its session told here" not in asked.process.log()


async def test_a_reload_adds_a_user_oauth_backend_whose_elicitation_works(
    auth_server: AuthServer, protected: Upstream, pyserver: Upstream
) -> None:
    """A gateway with a store and no user_oauth backend has imported none of its
    client (tests/process/test_lean_imports.py): SIGHUP adds one, whose -32042, browser
    flow and retried call then work; removed again, a link it minted is refused."""
    state = tempfile.mkdtemp(prefix="aigw-user-oauth-reload-", dir=LOG_DIR)
    plain: Backend = ("plain", pyserver.url)
    crm: Backend = ("crm", protected.url, "auth:\n  user_oauth: {}\n")
    gateway = start_gateway([plain], issuer=auth_server.issuer, extra=f"state_dir: {state}\n")
    try:
        reload_with(gateway, [plain, crm])
        assert "backends added crm, removed none" in gateway.process.log()
        alice, bob = MemoryTokenStorage(), MemoryTokenStorage()
        await follow(await elicited(gateway, "alice", alice), "alice")
        assert claims(await whoami(gateway, "alice", alice))["sub"] == "alice"
        url = await elicited(gateway, "bob", bob)
        reload_with(gateway, [plain])
        assert "backends added none, removed crm" in gateway.process.log()
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
            start = await http.get(url)
        assert start.status_code == 400, start.text
        assert "no longer serves it" in start.text
        assert gateway.process.alive
    finally:
        gateway.stop()


async def test_a_token_sealed_under_a_rotated_key_opens_only_from_old_key_files(
    auth_server: AuthServer, protected: Upstream, pyserver: Upstream
) -> None:
    """``token_store.old_key_files``: alice's token, sealed under key A, is treated as
    absent (elicited again) by a gateway on the same ``state_dir`` whose key is B alone,
    and opens without a new authorization once A is among B's old keys."""
    state = tempfile.mkdtemp(prefix="aigw-token-rotation-", dir=LOG_DIR)
    old_key = write_session_key(tempfile.mkdtemp(prefix="aigw-key-a-", dir=LOG_DIR))
    new_key = write_session_key(tempfile.mkdtemp(prefix="aigw-key-b-", dir=LOG_DIR))
    crm: Backend = ("crm", protected.url, "auth:\n  user_oauth: {}\n")

    def gateway_with(token_store: str) -> Gateway:
        return start_gateway(
            [crm, ("plain", pyserver.url)],
            issuer=auth_server.issuer,
            extra=f"state_dir: {state}\ntoken_store: {token_store}\n",
        )

    first = gateway_with(f"{{key_file: {old_key}}}")
    try:
        alice = MemoryTokenStorage()
        await follow(await elicited(first, "alice", alice), "alice")
        sealed_by_a = await whoami(first, "alice", alice)
        assert claims(sealed_by_a)["sub"] == "alice"
    finally:
        first.stop()
    rotated_only = gateway_with(f"{{key_file: {new_key}}}")
    try:
        await elicited(rotated_only, "alice", MemoryTokenStorage())
        assert "sealed under another key; treated as absent" in rotated_only.process.log()
    finally:
        rotated_only.stop()
    rotated = gateway_with(f"{{key_file: {new_key}, old_key_files: [{old_key}]}}")
    try:
        seen = await whoami(rotated, "alice", MemoryTokenStorage())
        assert seen["authorization"] == sealed_by_a["authorization"]
        assert "treated as absent" not in rotated.process.log()
    finally:
        rotated.stop()


async def test_the_other_backends_serve_without_authorization(gateway: Gateway) -> None:
    async with connect(gateway.url, "alice", storage=MemoryTokenStorage(), mode="legacy") as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        assert "plain__echo" in tools
        result = await client.call_tool("plain__echo", {"text": "hi"})
    assert "hi" in text_of(result)


def assert_not_in_state_dir(gateway: Gateway, secret: bytes) -> None:
    """No file of the gateway's ``state_dir`` (the SQLite file, its WAL) holds ``secret``."""
    with open(gateway.config_path) as handle:
        lines = handle.read().splitlines()
    state = next(line.split(": ", 1)[1] for line in lines if line.startswith("state_dir:"))
    names = os.listdir(state)
    assert "aigw.sqlite3" in names
    for name in names:
        with open(os.path.join(state, name), "rb") as handle:
            assert secret not in handle.read(), name


@pytest.fixture(scope="module")
def private_ca() -> tuple[str, str, str]:
    """A private CA, and the server certificate (127.0.0.1) it signed: the CA file, the
    certificate, its key."""
    return write_private_ca(tempfile.mkdtemp(prefix="aigw-private-ca-", dir=LOG_DIR))


@pytest.fixture(scope="module")
def private_servers(private_ca: tuple[str, str, str]) -> Iterator[tuple[AuthServer, Upstream]]:
    """The backend and its own authorization server, both ``https`` with certificates the
    private CA signed (the backend trusts it to fetch the server's keys)."""
    ca_file, cert, key = private_ca
    server = start_auth_server(tls=(cert, key))
    try:
        backend = start_pyserver(auth_issuer=server.issuer, tls=(cert, key), ca_file=ca_file)
        try:
            yield server, backend
        finally:
            backend.stop()
    finally:
        server.process.stop()


@pytest.fixture
def private_gateway(
    auth_server: AuthServer,
    private_servers: tuple[AuthServer, Upstream],
    private_ca: tuple[str, str, str],
    pyserver: Upstream,
) -> Iterator[Callable[[str], Gateway]]:
    """Starts gateways whose ``crm`` is the private backend (its ``ca_file`` the private
    CA, ``auth.user_oauth`` as given; ``plain`` beside it: a session opens before the
    user has a token at ``crm``); stopped at the end."""
    started: list[Gateway] = []

    def start(user_oauth: str) -> Gateway:
        state = tempfile.mkdtemp(prefix="aigw-user-oauth-tls-state-", dir=LOG_DIR)
        own = f"ca_file: {private_ca[0]}\nauth:\n  user_oauth: {user_oauth}\n"
        gateway = start_gateway(
            [("crm", private_servers[1].url, own), ("plain", pyserver.url)],
            issuer=auth_server.issuer,
            extra=f"state_dir: {state}\n",
        )
        started.append(gateway)
        return gateway

    try:
        yield start
    finally:
        for gateway in started:
            gateway.stop()


async def test_a_backend_and_its_server_behind_a_private_ca(
    private_gateway: Callable[[str], Gateway],
    private_servers: tuple[AuthServer, Upstream],
    private_ca: tuple[str, str, str],
) -> None:
    """The backend's ``ca_file`` is trusted at its authorization server too (the default
    of ``auth.user_oauth.ca_file``): discovery, registration, the code exchange."""
    server, backend = private_servers
    assert server.issuer.startswith("https://")
    assert backend.url.startswith("https://")
    gateway = private_gateway("{}")
    alice = MemoryTokenStorage()
    url = await elicited(gateway, "alice", alice)
    assert "You can close this page" in await follow(url, "alice", ca_file=private_ca[0])
    seen = claims(await whoami(gateway, "alice", alice))
    assert (seen["iss"], seen["sub"], seen["aud"]) == (server.issuer, "alice", backend.url)
    # ``aigw doctor`` learns the server with the same trust.
    checked = await aigw_command("doctor", gateway.config_path)
    (line,) = [x for x in checked.stdout.decode().splitlines() if "backend crm" in x]
    assert line.startswith("ok"), checked.stdout
    assert f"authorization server {server.issuer}" in line


async def test_an_untrusted_authorization_server_fails_closed(
    private_gateway: Callable[[str], Gateway], private_servers: tuple[AuthServer, Upstream]
) -> None:
    """``auth.user_oauth.ca_file`` naming another CA: the start page answers 502 naming
    the server and the verification failure, and nothing is registered or stored."""
    server = private_servers[0]
    other = write_self_signed(tempfile.mkdtemp(prefix="aigw-other-ca-", dir=LOG_DIR))[0]
    gateway = private_gateway(f"{{ca_file: {other}}}")
    alice = MemoryTokenStorage()
    url = await elicited(gateway, "alice", alice)
    answer = await sign_in(url, "alice")
    assert answer.status_code == 502, answer.text
    assert "location" not in answer.headers
    assert f"authorization server {server.issuer}" in answer.text
    assert "certificate verify failed" in answer.text
    rows = await aigw_command("tokens", "list", "--config", gateway.config_path)
    assert rows.returncode == 0, rows.stderr
    assert not [line for line in rows.stdout.decode().splitlines() if "crm" in line]
    await elicited(gateway, "alice", alice)
