"""The short hop from one aigw process to another, to the call waiting for a request.

A 2026-07-28 client's call that a session backend asked something mid-call is
parked in the process holding its upstream stream (``gateway/parking.py``); a
session client's call waits in the process that asked the client on a 2026-07-28
backend's behalf (``gateway/asking.py``).  The client's retry, or its answer, may
land on any process.  The ``requestState``, or the id of aigw's question, names
the process and the URL its peers reach it at (``sessions.peer_url``), so the
process the request landed on sends the same HTTP request there, once, and
answers the client with the reply.  The peer authenticates the client's own bearer token again:
the hop adds no trust, and ``Aigw-Forwarded`` only stops a second hop.  The
state is sealed with the deployment's key, so a client cannot aim the hop
anywhere else.

The same hop carries one note of aigw's own: a user completed, in the browser
served by this process, a URL elicitation another process asked
(``web/elicitation_notices.py``).  No client request and no bearer token are behind
it; the note, sealed for the receiving process, is its credential.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool

from aigw.gateway.gateway import Gateway
from aigw.httpjson import Fetched, FetchFailed, TreqClient, fetch, parse_json_object
from aigw.protocol import jsonrpc
from aigw.web.mcp.http import header
from aigw.web.request import WebRequest

#: Marks a request one process sent another: it is served there, never sent on again.
FORWARDED_HEADER = b"aigw-forwarded"
#: Carries a sealed note that a user completed a URL elicitation the peer asked.
NOTICE_HEADER = b"aigw-elicitation-notice"
#: The largest answer to a note (``{"told": n}``).
MAX_NOTICE_REPLY_BYTES = 4096
#: Request headers that describe one hop (RFC 9110 §7.6.1) or that the HTTP client sets.
HOP_HEADERS = frozenset(
    {
        b"host",
        b"connection",
        b"content-length",
        b"transfer-encoding",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-connection",
    }
)
#: The largest reply a peer may send back (a call's whole answer, as JSON or SSE).
MAX_REPLY_BYTES = 16 * 1024 * 1024
#: Connecting to a peer on the deployment's own network.
CONNECT_TIMEOUT = 5.0


class PeerHop:
    """Sends a retry to the aigw process that holds its parked call."""

    log = Logger()

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._http: TreqClient | None = None

    def _client(self) -> TreqClient:
        if self._http is None:  # made at the first hop: most deployments never hop
            pool = HTTPConnectionPool(self.gateway.clock, persistent=False)
            self._http = TreqClient(self.gateway.clock, pool, CONNECT_TIMEOUT)
        return self._http

    def _post(
        self,
        peer_url: str,
        headers: dict[bytes, list[bytes]],
        timeout: float,
        max_bytes: int,
        **body: Any,
    ) -> Deferred[Fetched]:
        """One POST to a peer: its reply bounded, all of it within ``timeout``."""
        return fetch(
            self._client(),
            self.gateway.clock,
            "POST",
            peer_url,
            timeout=timeout,
            max_bytes=max_bytes,
            headers=headers,
            **body,
        )

    async def forward(self, request: WebRequest, request_id: Any, peer_url: str) -> bytes:
        """The peer's reply to this request, as the client's; a JSON-RPC error when the
        request already hopped once or the peer cannot be reached."""
        if header(request, FORWARDED_HEADER) is not None:
            return self._error(request, request_id, "the parked call is not in this process")
        assert request.content is not None  # read once already (the body was parsed)
        request.content.seek(0)
        body = request.content.read()
        headers: dict[bytes, list[bytes]] = {
            name: list(values)
            for name, values in request.requestHeaders.getAllRawHeaders()
            if name.lower() not in HOP_HEADERS
        }
        headers[FORWARDED_HEADER] = [b"1"]
        timeout = self.gateway.snapshots.current().config.sessions.park_timeout
        try:
            fetched = await self._post(
                peer_url,
                headers,
                timeout,
                MAX_REPLY_BYTES,
                data=body,  # written on the gateway's clock (TreqClient)
            )
        except FetchFailed as error:
            self.log.warn("forwarding a retry to {peer}: {error}", peer=peer_url, error=str(error))
            return self._error(request, request_id, "the aigw process holding it did not answer")
        self.log.info(
            "forwarded to the aigw process at {peer}: {status}",
            peer=peer_url,
            status=fetched.status,
        )
        request.setResponseCode(fetched.status)
        kind = fetched.headers.get("content-type")
        if kind is not None:
            request.setHeader(b"Content-Type", kind.encode("latin-1"))
        return fetched.body

    async def notify(self, peer_url: str, notice: str) -> int:
        """Send the sealed ``notice`` to the peer at ``peer_url``, once; how many of its
        streams it told (0 when it refused the note or could not be reached: the
        notification is optional, client/elicitation)."""
        headers = {FORWARDED_HEADER: [b"1"], NOTICE_HEADER: [notice.encode("ascii")]}
        try:
            fetched = await self._post(peer_url, headers, CONNECT_TIMEOUT, MAX_NOTICE_REPLY_BYTES)
            if fetched.status != 200:
                raise FetchFailed(f"{peer_url} answered {fetched.status}")
            told = parse_json_object(fetched.body, peer_url).get("told")
        except FetchFailed as error:
            self.log.warn(
                "telling the aigw process at {peer} of a completed elicitation: {error}",
                peer=peer_url,
                error=str(error),
            )
            return 0
        return told if isinstance(told, int) and not isinstance(told, bool) else 0

    @staticmethod
    def _error(request: WebRequest, request_id: Any, why: str) -> bytes:
        error = jsonrpc.ErrorObject(
            jsonrpc.INVALID_PARAMS,
            f"cannot resume the parked call: {why}",
            {"reason": "parked_elsewhere"},
        )
        # A retry gets its JSON-RPC error; a client's answer (no id) an HTTP error as well
        # (basic/transports "Sending Messages to the Server" 4).
        request.setResponseCode(200 if request_id is not None else 502)
        request.setHeader(b"Content-Type", b"application/json")
        return jsonrpc.dumps(jsonrpc.to_dict(jsonrpc.ErrorResponse(request_id, error)))
