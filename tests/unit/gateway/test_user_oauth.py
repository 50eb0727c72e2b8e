"""A ``user_oauth`` backend through the gateway: the URL elicitation, then the user's token.

MCP 2025-11-25 client/elicitation "URL Elicitation Required Error": a call to the
backend by a user without a token there answers -32042 with a URL of aigw's start
endpoint; once the token is stored, the retried call goes through with it; a 401 from
the backend forgets it and asks again.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import treq
from twisted.logger import capturedLogs

from aigw.config import (
    BackendAuthConfig,
    BackendConfig,
    Config,
    SessionsConfig,
    UserOAuthConfig,
)
from aigw.config.redis import RedisAddress
from aigw.gateway import elicitation_completions
from aigw.gateway.elicitation_completions import CHANNEL
from aigw.gateway.ended_sessions import MAX_BACKOFF
from aigw.principal import ANONYMOUS, Principal
from aigw.protocol import jsonrpc
from aigw.sealed.elicitation_notice import (
    NOTICE_TTL,
    ElicitationNotice,
    ElicitationNoticeCodec,
)
from aigw.sealed.sealer import Sealer
from aigw.sealed.session_id import session_digest
from aigw.service import GatewayService
from aigw.store.api import UserToken
from aigw.upstream.user_links import Grant
from aigw.web.elicitation_notices import REFUSED_LINE
from tests.fakes import MemoryStore
from tests.unit.gateway.fake_redis import FakeRedis
from tests.unit.gateway.fake_upstream import FakeUpstream
from tests.unit.gateway.helpers import (
    ACCEPT,
    PUBLIC_URL,
    SHARED_KEY,
    Collect,
    GatewayTestCase,
    initialize_message,
    modern,
    routing,
    sse_messages,
)
from tests.unit.memory import run

#: Under ``auth: None`` every request is ANONYMOUS's: the key of its tokens.
KEY = (ANONYMOUS.issuer, ANONYMOUS.subject, "crm")
URL_CAPABLE = {"elicitation": {"url": {}}}
#: The header of a peer's note (``web/mcp/hop.py``).
NOTICE = "Aigw-Elicitation-Notice"
#: Where the paths a completion's notice took are logged (``web/elicitation_notices.py``).
NOTICES_LOG = "aigw.web.elicitation_notices.CompletionNotices"
#: ``sessions.redis_timeout``, as these processes have it.
TIMEOUT = SessionsConfig().redis_timeout


class UserOAuthGatewayCase(GatewayTestCase):
    """``crm`` a user_oauth backend, ``alpha`` a plain one, the store in memory."""

    async def start(self, sessions: SessionsConfig | None = None) -> None:
        """``sessions``: the deployment's key and this process's ``peer_url``, for peers."""
        self.crm = FakeUpstream(tools=["whoami"])
        self.alpha = FakeUpstream(tools=["echo"])
        self.memory = self.store = MemoryStore()
        user_oauth = BackendAuthConfig(user_oauth=UserOAuthConfig())
        backends = (
            BackendConfig(name="alpha", url=self.start_upstream(self.alpha), timeout=5.0),
            BackendConfig(
                name="crm", url=self.start_upstream(self.crm), timeout=5.0, auth=user_oauth
            ),
        )
        config = Config(
            listen=("tcp:1975:interface=127.0.0.1",),
            public_url=PUBLIC_URL,
            mcp_path="/mcp",
            backends=backends,
            auth=None,
            sessions=sessions or SessionsConfig(),
        )
        self.serve(config)

    async def session(self, capabilities: dict[str, Any]) -> str:
        message = initialize_message()
        message["params"]["capabilities"] = capabilities
        response, body = await self.post(message)
        self.assertEqual(response.code, 200, body)
        session: str = response.headers.getRawHeaders(b"mcp-session-id")[0].decode()
        return session

    async def whoami(self, session: str) -> Any:
        return await self.call(session, "tools/call", {"name": "crm__whoami", "arguments": {}})


class UserOAuthGatewayTests(UserOAuthGatewayCase):
    @run
    async def test_elicitation_then_the_users_token(self) -> None:
        await self.start()
        session = await self.session(URL_CAPABLE)
        self.assertEqual(self.crm.received, [])  # no token: nothing sent to the backend
        listed = await self.call(session, "tools/list")
        self.assertEqual([t["name"] for t in listed["result"]["tools"]], ["alpha__echo"])
        error = (await self.whoami(session))["error"]
        self.assertEqual(error["code"], jsonrpc.URL_ELICITATION_REQUIRED)
        (elicitation,) = error["data"]["elicitations"]
        self.assertEqual(elicitation["mode"], "url")
        self.assertTrue(elicitation["url"].startswith(PUBLIC_URL + "/oauth/upstream/start?link="))
        self.assertTrue(elicitation["elicitationId"])
        self.memory.tokens[KEY] = UserToken(*KEY, access_token="crm-token")
        answer = await self.whoami(session)
        self.assertEqual(answer["result"]["content"][0]["type"], "text")
        headers, _ = self.crm.received[-1]
        self.assertEqual(headers["authorization"], ["Bearer crm-token"])
        for headers, _ in self.alpha.received:
            self.assertNotIn("authorization", headers)

    @run
    async def test_once_authorized_the_next_list_has_the_backends_tools(self) -> None:
        """No join window for a user who had not authorized: finding out is a store
        lookup (nothing is sent upstream), and the user may authorize at any moment."""
        await self.start()
        session = await self.session(URL_CAPABLE)
        listed = await self.call(session, "tools/list")
        self.assertEqual([t["name"] for t in listed["result"]["tools"]], ["alpha__echo"])
        self.memory.tokens[KEY] = UserToken(*KEY, access_token="crm-token")
        listed = await self.call(session, "tools/list")
        self.assertEqual(
            [t["name"] for t in listed["result"]["tools"]], ["alpha__echo", "crm__whoami"]
        )
        self.assertTrue(self.crm.received)
        for headers, _ in self.crm.received:
            self.assertEqual(headers["authorization"], ["Bearer crm-token"])

    @run
    async def test_a_backend_401_forgets_the_token_and_elicits_again(self) -> None:
        await self.start()
        self.memory.tokens[KEY] = UserToken(*KEY, access_token="crm-token")
        session = await self.session(URL_CAPABLE)
        self.assertIn("result", await self.whoami(session))
        self.crm.fail_with = 401
        error = (await self.whoami(session))["error"]
        self.assertEqual(error["code"], jsonrpc.URL_ELICITATION_REQUIRED)
        self.assertEqual(self.memory.tokens, {})

    @run
    async def test_a_client_without_url_elicitation_gets_the_url_in_the_message(self) -> None:
        await self.start()
        session = await self.session({"elicitation": {}})  # form mode only
        error = (await self.whoami(session))["error"]
        self.assertEqual(error["code"], jsonrpc.UPSTREAM_CREDENTIALS)
        self.assertIn(PUBLIC_URL + "/oauth/upstream/start?link=", error["message"])
        self.assertNotIn("elicitations", error["data"])

    @run
    async def test_a_2026_07_28_client_declares_url_elicitation_per_request(self) -> None:
        await self.start()
        declared = {"io.modelcontextprotocol/clientCapabilities": URL_CAPABLE}
        for meta, code in ((declared, jsonrpc.URL_ELICITATION_REQUIRED), ({}, None)):
            params = {"name": "crm__whoami", "arguments": {}, "_meta": meta}
            response, body = await self.post(
                modern("tools/call", params), headers=routing("tools/call", "crm__whoami")
            )
            self.assertEqual(response.code, 200, body)
            expected = code if code is not None else jsonrpc.UPSTREAM_CREDENTIALS
            self.assertEqual(body["error"]["code"], expected, body)
        self.memory.tokens[KEY] = UserToken(*KEY, access_token="crm-token")
        params = {"name": "crm__whoami", "arguments": {}, "_meta": declared}
        _, body = await self.post(
            modern("tools/call", params), headers=routing("tools/call", "crm__whoami")
        )
        self.assertIn("result", body)
        headers, _ = self.crm.received[-1]
        self.assertEqual(headers["authorization"], ["Bearer crm-token"])


class CompletionNoticeCase(UserOAuthGatewayCase):
    """Sessions with GET streams, their -32042s, and the notices the streams got."""

    async def stream(self, session: str) -> list[bytes]:
        chunks: list[bytes] = []
        response = await self.open_stream(session)
        self.assertEqual(response.code, 200)
        response.deliverBody(Collect(chunks))
        await self.network.settle()
        return chunks

    async def elicited(self, session: str) -> str:
        error = (await self.whoami(session))["error"]
        self.assertEqual(error["code"], jsonrpc.URL_ELICITATION_REQUIRED)
        elicitation_id: str = error["data"]["elicitations"][0]["elicitationId"]
        return elicitation_id

    def completed(self, elicitation_id: str, user: Principal = ANONYMOUS) -> int:
        """This process's browser flow completed it, as ``user``."""
        notice = ElicitationNotice(elicitation_id, user.issuer, user.subject)
        return self.service.gateway.elicitation_completed(notice)

    @staticmethod
    def notices(chunks: list[bytes]) -> list[Any]:
        messages = sse_messages(b"".join(chunks))
        return [m for m in messages if m.get("method") == "notifications/elicitation/complete"]


class CompletionNoticeTests(CompletionNoticeCase):
    """MCP 2025-11-25 client/elicitation "Completion Notifications for URL Mode
    Elicitation": once the user completed the authorization, the session that got the
    -32042 (only it) is sent ``notifications/elicitation/complete`` on its GET stream."""

    @run
    async def test_the_session_that_was_asked_is_told_once(self) -> None:
        await self.start()
        asked, other = await self.session(URL_CAPABLE), await self.session(URL_CAPABLE)
        asked_stream, other_stream = await self.stream(asked), await self.stream(other)
        elicitation_id = await self.elicited(asked)
        self.assertEqual(self.completed(elicitation_id), 1)
        await self.network.settle()
        self.assertEqual(
            self.notices(asked_stream),
            [
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/elicitation/complete",
                    "params": {"elicitationId": elicitation_id},
                }
            ],
        )
        self.assertEqual(self.notices(other_stream), [])
        # Told once: a link is single-use, and a replay tells nobody.
        self.assertEqual(self.completed(elicitation_id), 0)
        self.assertEqual(self.completed("unknown"), 0)

    @run
    async def test_of_two_streams_of_the_session_the_newest_alone_is_told(self) -> None:
        """2025-11-25 basic/transports "Multiple Connections": one stream, no broadcast.
        The held stream is being probed (a new GET of the session came) as the
        reconnect takes the session's place: the reconnect is told, the held one not;
        once the reconnect is gone, the held one is."""
        await self.start()
        session = await self.session(URL_CAPABLE)
        held = await self.stream(session)
        gateway = self.service.gateway
        probing = gateway.stream_probes.probe_here(session_digest(session))
        reconnect: list[bytes] = []
        newest = gateway.session_stream(
            gateway.open_session(ANONYMOUS, session), reconnect.append, None
        )
        gateway.track_stream(newest)
        first = await self.elicited(session)
        self.assertEqual(self.completed(first), 1)
        await self.network.settle()
        self.assertEqual([n["params"] for n in self.notices(reconnect)], [{"elicitationId": first}])
        self.assertEqual(self.notices(held), [])
        newest.close()
        gateway.untrack_stream(newest)
        second = await self.elicited(session)
        self.assertEqual(self.completed(second), 1)
        await self.network.settle()
        self.assertEqual([n["params"] for n in self.notices(held)], [{"elicitationId": second}])
        self.assertEqual(len(self.notices(reconnect)), 1)
        self.assertIs(await probing, False)  # the held one lived through the probe

    @run
    async def test_a_completion_by_another_user_tells_nobody(self) -> None:
        """Fail closed: the id alone does not pick the session; its user must be the
        one who completed it, and the session's own completion still tells it."""
        await self.start()
        session = await self.session(URL_CAPABLE)
        chunks = await self.stream(session)
        elicitation_id = await self.elicited(session)
        mallory = attrs.evolve(ANONYMOUS, subject="mallory")
        self.assertEqual(self.completed(elicitation_id, mallory), 0)
        await self.network.settle()
        self.assertEqual(self.notices(chunks), [])
        self.assertEqual(self.completed(elicitation_id), 1)
        await self.network.settle()
        self.assertEqual(len(self.notices(chunks)), 1)

    @run
    async def test_a_session_without_a_stream_is_told_nothing(self) -> None:
        await self.start()
        session = await self.session(URL_CAPABLE)
        self.assertEqual(self.completed(await self.elicited(session)), 0)

    @run
    async def test_nothing_after_the_link_expired(self) -> None:
        await self.start()
        session = await self.session(URL_CAPABLE)
        chunks = await self.stream(session)
        elicitation_id = await self.elicited(session)
        await self.network.sleep(UserOAuthConfig().link_ttl)
        self.assertEqual(self.completed(elicitation_id), 0)
        self.assertEqual(self.notices(chunks), [])

    @run
    async def test_a_client_answered_without_url_mode_is_not_recorded(self) -> None:
        """Form-only clients get the URL in a -32015 message: no elicitation id to
        complete; 2026-07-28 clients have no such notification (nor a session)."""
        await self.start()
        session = await self.session({"elicitation": {}})
        await self.stream(session)
        error = (await self.whoami(session))["error"]
        self.assertEqual(error["code"], jsonrpc.UPSTREAM_CREDENTIALS)
        declared = {"io.modelcontextprotocol/clientCapabilities": URL_CAPABLE}
        params = {"name": "crm__whoami", "arguments": {}, "_meta": declared}
        _, body = await self.post(
            modern("tools/call", params), headers=routing("tools/call", "crm__whoami")
        )
        (elicitation,) = body["error"]["data"]["elicitations"]
        self.assertEqual(self.completed(elicitation["elicitationId"]), 0)


class PeerCompletionTests(CompletionNoticeCase):
    """Two processes of one deployment, no stickiness (docs/scale-out.md): the -32042 and
    the session's GET stream on the first, the browser's callback on the second, which
    sends the first a sealed note over ``sessions.peer_url`` (``web/elicitation_notices.py``)."""

    PEER = "http://127.0.0.1:1976/mcp"

    async def asked_here_completed_there(
        self, peer_url: str | None = PUBLIC_URL + "/mcp"
    ) -> tuple[list[bytes], Grant, GatewayService]:
        """A session, its stream and its -32042 on this process (``peer_url`` its own);
        its stream, the grant the other process's callback opens, and that process."""
        await self.start(SessionsConfig(secret=SHARED_KEY, peer_url=peer_url))
        session = await self.session(URL_CAPABLE)
        chunks = await self.stream(session)
        error = (await self.whoami(session))["error"]
        (elicitation,) = error["data"]["elicitations"]
        other = self.start_peer(1976)
        assert other.user_links is not None
        (link,) = parse_qs(urlsplit(elicitation["url"]).query)["link"]
        grant = other.user_links.open_link(link)
        self.assertEqual(grant.elicitation_id, elicitation["elicitationId"])
        return chunks, grant, other

    async def complete_on(self, process: GatewayService, grant: Grant) -> int:
        """``process``'s callback stored the token of ``grant``."""
        assert process.completion_notices is not None
        return await process.completion_notices.completed(grant)

    @run
    async def test_the_session_is_told_once_through_the_process_that_asked(self) -> None:
        chunks, grant, other = await self.asked_here_completed_there()
        self.assertEqual(grant.process, self.service.gateway.process)
        self.assertEqual(await self.complete_on(other, grant), 1)
        await self.network.settle()
        self.assertEqual(
            self.notices(chunks),
            [
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/elicitation/complete",
                    "params": {"elicitationId": grant.elicitation_id},
                }
            ],
        )
        # Once: a second note (a replayed callback) tells nobody.
        self.assertEqual(await self.complete_on(other, grant), 0)
        await self.network.settle()
        self.assertEqual(len(self.notices(chunks)), 1)

    @run
    async def test_another_users_completion_tells_nobody_across_processes(self) -> None:
        chunks, grant, other = await self.asked_here_completed_there()
        forged = attrs.evolve(grant, subject="mallory")
        self.assertEqual(await self.complete_on(other, forged), 0)
        await self.network.settle()
        self.assertEqual(self.notices(chunks), [])
        self.assertEqual(await self.complete_on(other, grant), 1)

    @run
    async def test_without_a_peer_url_nobody_is_told_and_nothing_fails(self) -> None:
        """As before peers: the link names no URL, so the other process sends nothing."""
        chunks, grant, other = await self.asked_here_completed_there(peer_url=None)
        self.assertIsNone(grant.peer_url)
        self.assertEqual(await self.complete_on(other, grant), 0)
        await self.network.settle()
        self.assertEqual(self.notices(chunks), [])

    @run
    async def test_a_peer_that_does_not_answer_tells_nobody(self) -> None:
        chunks, grant, other = await self.asked_here_completed_there()
        gone = attrs.evolve(grant, peer_url="http://127.0.0.1:1999/mcp")
        self.assertEqual(await self.complete_on(other, gone), 0)
        self.assertEqual(self.notices(chunks), [])

    @run
    async def test_a_note_opens_only_in_the_process_it_was_sealed_for(self) -> None:
        """A note is its own credential: anything but one this deployment sealed for this
        process is 403 before any bearer check, and tells nobody."""
        chunks, grant, other = await self.asked_here_completed_there()
        notice = ElicitationNotice(grant.elicitation_id, grant.issuer, grant.subject)
        now = self.reactor.seconds()
        for_other = ElicitationNoticeCodec(Sealer(SHARED_KEY)).seal(
            notice, other.gateway.process, now
        )
        foreign = ElicitationNoticeCodec(Sealer(b"f" * 32)).seal(
            notice, self.service.gateway.process, now
        )
        for note in (for_other, foreign, "garbage"):
            response, body = await self.post(None, raw=b"", headers={NOTICE: note})
            self.assertEqual(response.code, 403, body)
            self.assertEqual(body["error"], "forbidden")
        await self.network.settle()
        self.assertEqual(self.notices(chunks), [])
        # The one the callback's process seals does open (and the entry was kept).
        sealed = ElicitationNoticeCodec(Sealer(SHARED_KEY)).seal(
            notice, self.service.gateway.process, now
        )
        response, body = await self.post(None, raw=b"", headers={NOTICE: sealed})
        self.assertEqual((response.code, body), (200, {"told": 1}))

    @run
    async def test_hostile_notes_are_403_and_a_replayed_one_tells_nobody(self) -> None:
        """Anyone can POST a note (no bearer token is asked): tampered, expired, too
        long, not ASCII, or two at once, each is 403 naming why, tells nobody and
        raises nothing; the one good note tells the session once, its replay (valid
        for ``NOTICE_TTL``) nobody."""
        chunks, grant, _ = await self.asked_here_completed_there()
        notice = ElicitationNotice(grant.elicitation_id, grant.issuer, grant.subject)
        codec, here = ElicitationNoticeCodec(Sealer(SHARED_KEY)), self.service.gateway.process
        now = self.reactor.seconds()
        sealed = codec.seal(notice, here, now)
        tampered = sealed[:40] + ("A" if sealed[40] != "A" else "B") + sealed[41:]
        hostile = {
            "tampered": [tampered],
            "expired": [codec.seal(notice, here, now - NOTICE_TTL - 1)],
            "longer than any token": ["A" * 9000],
            "not ASCII": ["\u00e9" * 40],
            "empty": [""],
            "two notes": [sealed, sealed],
        }
        with capturedLogs() as events:
            for name, notes in hostile.items():
                response = await self.http.post(
                    self.url, data=b"{}", headers={NOTICE: notes, "Accept": [ACCEPT]}
                )
                body = json.loads(await treq.content(response))
                self.assertEqual((response.code, body["error"]), (403, "forbidden"), name)
                self.assertTrue(body["error_description"], name)
        await self.network.settle()
        self.assertEqual(self.notices(chunks), [])
        self.assertEqual([e for e in events if "log_failure" in e], [])
        # Counted; one warning for them all (anyone can send them: no log flood).
        assert self.service.completion_notices is not None
        self.assertEqual(self.service.completion_notices.refused.count, len(hostile))
        warned = [e for e in events if e.get("log_format") == REFUSED_LINE]
        self.assertEqual([e["count"] for e in warned], [1])
        for told in (1, 0):  # the good note, then its replay
            response, body = await self.post(None, raw=b"", headers={NOTICE: sealed})
            self.assertEqual((response.code, body), (200, {"told": told}))
        await self.network.settle()
        self.assertEqual(len(self.notices(chunks)), 1)

    @run
    async def test_a_process_holding_no_stream_of_the_session_tells_nobody(self) -> None:
        await self.start(SessionsConfig(secret=SHARED_KEY, peer_url=PUBLIC_URL + "/mcp"))
        session = await self.session(URL_CAPABLE)
        elicitation_id = await self.elicited(session)
        other = self.start_peer(1976)
        grant = Grant(
            ANONYMOUS.issuer,
            ANONYMOUS.subject,
            "crm",
            elicitation_id,
            self.service.gateway.process,
            PUBLIC_URL + "/mcp",
        )
        self.assertEqual(await self.complete_on(other, grant), 0)


class RedisCompletionCase(CompletionNoticeCase):
    """``sessions.redis_url`` (``gateway/elicitation_completions.py``): three processes
    of one deployment sharing a Redis in memory, the -32042 answered by A (this one)."""

    async def three_processes(
        self, peer_url: str | None = None
    ) -> tuple[GatewayService, GatewayService]:
        """B and C (each with its own ``peer_url``); ``peer_url``: A's."""
        self.redis = FakeRedis(self.reactor)
        address = RedisAddress("127.0.0.1", self.network.serve(self.redis))
        await self.start(SessionsConfig(secret=SHARED_KEY, redis_url=address, peer_url=peer_url))
        b, c = self.start_peer(1976), self.start_peer(1977)
        await self.network.settle()
        return b, c

    async def stream_on(self, port: int, session: str) -> list[bytes]:
        here, self.url = self.url, f"http://127.0.0.1:{port}/mcp"
        try:
            return await self.stream(session)
        finally:
            self.url = here

    async def asked(self, b: GatewayService, session: str) -> Grant:
        """The session's -32042 from A, and the grant B's callback opens."""
        error = (await self.whoami(session))["error"]
        (elicitation,) = error["data"]["elicitations"]
        (link,) = parse_qs(urlsplit(elicitation["url"]).query)["link"]
        assert b.user_links is not None
        return b.user_links.open_link(link)

    async def complete_on(self, process: GatewayService, grant: Grant) -> None:
        assert process.completion_notices is not None
        self.assertEqual(await process.completion_notices.completed(grant), 0)
        await self.network.settle()


class RedisCompletionTests(RedisCompletionCase):
    """The browser's callback on B, the session's GET streams on others: told once,
    whichever process holds them."""

    @run
    async def test_the_streams_process_tells_the_session_once(self) -> None:
        b, c = await self.three_processes()
        session, other = await self.session(URL_CAPABLE), await self.session(URL_CAPABLE)
        on_c, on_b = await self.stream_on(1977, session), await self.stream_on(1976, session)
        others = await self.stream_on(1977, other)
        grant = await self.asked(b, session)
        await self.complete_on(b, grant)
        told = self.notices(on_c) + self.notices(on_b)
        self.assertEqual(
            told,
            [
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/elicitation/complete",
                    "params": {"elicitationId": grant.elicitation_id},
                }
            ],
        )
        self.assertEqual(self.notices(others), [])
        # Once across processes: B's and C's streams both heard A's note, one claimed it.
        claims = [c for c in self.redis.commands if c[0] == b"SET" and b"NX" in c]
        self.assertEqual(len(claims), 2)
        # Once: a replayed callback tells nobody (A's entry was used).
        await self.complete_on(b, grant)
        self.assertEqual(len(self.notices(on_c) + self.notices(on_b)), 1)
        for process in (self.service, b, c):
            assert process.ended_sessions is not None
            self.assertEqual(process.ended_sessions.failures.count, 0)

    @run
    async def test_another_users_completion_tells_nobody(self) -> None:
        b, _ = await self.three_processes()
        session = await self.session(URL_CAPABLE)
        chunks = await self.stream_on(1977, session)
        grant = await self.asked(b, session)
        await self.complete_on(b, attrs.evolve(grant, subject="mallory"))
        self.assertEqual(self.notices(chunks), [])
        await self.complete_on(b, grant)  # the entry was kept for its own user
        self.assertEqual(len(self.notices(chunks)), 1)

    @run
    async def test_a_note_naming_the_session_tells_only_its_user(self) -> None:
        """Even a note that names the session's digest tells only the session's user."""
        _, c = await self.three_processes()
        session = await self.session(URL_CAPABLE)
        chunks = await self.stream_on(1977, session)
        digest = session_digest(session)
        publisher = next(conn for conn in self.redis.connections if not conn.channels)
        issuer = ANONYMOUS.issuer
        for elicitation_id, subject in (("e-1", "mallory"), ("e-2", ANONYMOUS.subject)):
            notice = ElicitationNotice(elicitation_id, issuer, subject)
            note = elicitation_completions.note(notice, digest)
            self.redis.answer(publisher, [b"PUBLISH", elicitation_completions.CHANNEL, note])
            await self.network.settle()
        self.assertEqual([n["params"] for n in self.notices(chunks)], [{"elicitationId": "e-2"}])
        assert c.ended_sessions is not None
        self.assertEqual(c.ended_sessions.failures.count, 0)

    @run
    async def test_malformed_notes_are_ignored_and_counted(self) -> None:
        _, c = await self.three_processes()
        publisher = next(conn for conn in self.redis.connections if not conn.channels)
        for note in (
            b"x",
            b"[]",
            b'{"n":"e","i":"x"}',
            b'{"n":"e","i":"x","s":"y","d":"zz"}',
            b'{"n":"e","i":"x","s":"y","z":1}',
            b'{"n":"' + b"e" * 5000 + b'","i":"x","s":"y"}',
        ):
            self.redis.answer(publisher, [b"PUBLISH", elicitation_completions.CHANNEL, note])
        await self.network.settle()
        for process in (self.service, c):
            assert process.ended_sessions is not None
            self.assertEqual(process.ended_sessions.failures.count, 6)


class RedisFailingCompletionTests(RedisCompletionCase):
    """``sessions.redis_url`` and every process its ``peer_url``: when Redis does not take
    B's note (down, or silent past ``sessions.redis_timeout``), B sends it over the peer
    hop to A, which tells the session's stream if it holds it; once, whichever way
    reaches A first (``web/elicitation_notices.py``)."""

    async def asked_with_a_stream_on_a(self) -> tuple[GatewayService, list[bytes], Grant]:
        """B, and the session's GET stream and -32042 on A; the grant B's callback opens."""
        b, _ = await self.three_processes(peer_url=PUBLIC_URL + "/mcp")
        session = await self.session(URL_CAPABLE)
        chunks = await self.stream(session)
        return b, chunks, await self.asked(b, session)

    async def completed_and_waited(self, b: GatewayService, grant: Grant) -> list[Any]:
        """B's callback completed ``grant``, and Redis had its time to answer: the paths
        B's notice took, as logged (``CompletionNotices``)."""
        with capturedLogs() as events:
            await self.complete_on(b, grant)
            await self.network.sleep(TIMEOUT)
            await self.network.settle()
        return [
            (e["path"], e.get("told"))
            for e in events
            if e.get("log_namespace") == NOTICES_LOG and "path" in e
        ]

    def told_once(self, chunks: list[bytes], grant: Grant) -> None:
        told = [n["params"] for n in self.notices(chunks)]
        self.assertEqual(told, [{"elicitationId": grant.elicitation_id}])

    def claims(self) -> list[list[bytes]]:
        return [c for c in self.redis.commands if c[0] == b"SET" and b"NX" in c]

    @run
    async def test_redis_down_the_peer_hop_tells_the_stream_where_it_was_asked(self) -> None:
        b, chunks, grant = await self.asked_with_a_stream_on_a()
        self.redis.down = True
        self.redis.kill()
        self.assertEqual(await self.completed_and_waited(b, grant), [("over the peer hop", 1)])
        self.told_once(chunks, grant)
        self.assertEqual(self.claims(), [])
        assert b.ended_sessions is not None
        self.assertGreaterEqual(b.ended_sessions.failures.count, 1)  # counted, as before

    @run
    async def test_redis_down_a_callback_on_the_process_that_asked_tells_it_there(
        self,
    ) -> None:
        _, chunks, grant = await self.asked_with_a_stream_on_a()
        self.redis.down = True
        self.redis.kill()
        paths = await self.completed_and_waited(self.service, grant)
        self.assertEqual(paths, [("in this process", 1)])
        self.told_once(chunks, grant)

    @run
    async def test_redis_up_the_peer_hop_is_not_used(self) -> None:
        b, chunks, grant = await self.asked_with_a_stream_on_a()
        self.assertEqual(await self.completed_and_waited(b, grant), [("through Redis", None)])
        self.told_once(chunks, grant)
        self.assertEqual(len(self.claims()), 1)
        assert b.ended_sessions is not None
        self.assertEqual(b.ended_sessions.failures.count, 0)

    @run
    async def test_a_publish_taken_whose_reply_was_lost_tells_once(self) -> None:
        """Redis delivered B's note (A named the session, A's stream claimed and was
        told) but B's connection was cut before the reply: B's hop reaches A after its
        entry was used."""
        b, chunks, grant = await self.asked_with_a_stream_on_a()
        self.redis.cut_after.add(b"PUBLISH")
        self.assertEqual(await self.completed_and_waited(b, grant), [("over the peer hop", 0)])
        self.told_once(chunks, grant)
        self.assertEqual(len(self.claims()), 1)

    @run
    async def test_a_note_delivered_after_the_hop_told_tells_nobody(self) -> None:
        """Redis stalled (SIGSTOP) while B published: the hop told A's stream; when Redis
        resumes and delivers B's note, A's entry was used, so nobody names the session."""
        b, chunks, grant = await self.asked_with_a_stream_on_a()
        self.redis.silent = True
        self.assertEqual(await self.completed_and_waited(b, grant), [("over the peer hop", 1)])
        (stalled,) = [c for c in self.redis.commands if c[:2] == [b"PUBLISH", CHANNEL]]
        self.redis.silent = False
        await self.network.sleep(MAX_BACKOFF + TIMEOUT)  # every process subscribed again
        await self.network.settle()
        publisher = self.redis.connections[0]
        self.assertEqual(self.redis.answer(publisher, stalled), b":3\r\n")  # all 3 heard it
        await self.network.settle()
        self.told_once(chunks, grant)
        self.assertEqual(self.claims(), [])
