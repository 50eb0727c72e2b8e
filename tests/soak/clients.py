"""The soak's clients: raw MCP over HTTP with ``httpx2``, many per process.

Fifty SDK clients would spend the two cores on the clients; these send the same
requests an SDK sends, and check each answer (:mod:`.measure`).  Two kinds, in turn:

* :class:`SessionClient` (MCP 2025-11-25, basic/lifecycle and basic/transports):
  ``initialize``, ``notifications/initialized``, the session's GET stream held open,
  rounds of lists and tool calls (one with a progress token, so its answer turns into
  an SSE stream), then DELETE; and again, until the end.
* :class:`StatelessClient` (MCP 2026-07-28): ``server/discover``, a
  ``subscriptions/listen`` stream held open, the same rounds, every request with its
  ``_meta`` envelope and routing headers (streamable-http "Request Metadata"); the
  stream closed, and again.

Each client is one user with its own access token and its own connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import httpx2

from .measure import Tally, excerpt, response_problem, sse_messages, status_problem

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"
#: Rounds of lists and calls in one session (or between two listens).
ROUNDS = 4
#: After a failed step a client waits this long before its next session, so a dead
#: gateway shows as a few failures, not a spin.
BACKOFF = 0.5
CLIENT_INFO = {"name": "aigw-soak", "version": "1"}
LISTEN_ACKNOWLEDGED = "notifications/subscriptions/acknowledged"

#: (tool, arguments) called in each round; and the call made with a progress token.
Call = tuple[str, dict[str, Any]]


class HeldStream:
    """An SSE answer held open in a task (a GET stream, a ``subscriptions/listen``):
    :meth:`open` returns once it is established, :meth:`close` hangs up."""

    def __init__(self, first_method: str | None = None) -> None:
        # subscriptions/listen is established by its first event (basic/patterns/
        # subscriptions "Acknowledgement"); a GET stream by its 200 head.
        self._first_method = first_method
        self._opened: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self.ended: str | None = None

    async def open(self, http: httpx2.AsyncClient, request: httpx2.Request) -> str | None:
        """None once the stream is open, else what went wrong."""
        self._task = asyncio.create_task(self._hold(http, request))
        return await self._opened

    async def _hold(self, http: httpx2.AsyncClient, request: httpx2.Request) -> None:
        try:
            response = await http.send(request, stream=True)
            try:
                await self._read(response)
            finally:
                await response.aclose()
        except httpx2.HTTPError as error:
            self._settle(f"{type(error).__name__}: {error}")
            self.ended = f"broke: {type(error).__name__}: {error}"

    async def _read(self, response: httpx2.Response) -> None:
        content_type = response.headers.get("content-type", "")
        if response.status_code != 200 or not content_type.startswith("text/event-stream"):
            body = await response.aread()
            self._settle(f"HTTP {response.status_code} ({content_type}): {excerpt(body)}")
            return
        if self._first_method is None:
            self._settle(None)
        head = b""
        async for chunk in response.aiter_bytes():
            if self._opened.done():
                continue  # what the backends send on the stream is not kept
            head += chunk
            first = next(
                (m for m in sse_messages(head) if isinstance(m, dict)),
                None,
            )
            if first is not None:
                ok = first.get("method") == self._first_method
                self._settle(None if ok else f"first event is not {self._first_method}: {first}")
        self._settle("the stream ended before it was established")
        self.ended = "ended by the server"

    def _settle(self, problem: str | None) -> None:
        if not self._opened.done():
            self._opened.set_result(problem)

    async def close(self) -> str | None:
        """Hang up; what went wrong with the stream while it was held (None: nothing)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.ended


class Client:
    """What both kinds share: one user, its token, its connections and its count."""

    kind = ""

    def __init__(
        self,
        url: str,
        token: str,
        calls: list[Call],
        progress_call: Call,
        tally: Tally,
        stop: asyncio.Event,
    ) -> None:
        self.url = url
        self.token = token
        self.calls = calls
        self.progress_call = progress_call
        self.tally = tally
        self.stop = stop
        self._ids = itertools.count(1)
        self.http = httpx2.AsyncClient(timeout=httpx2.Timeout(60.0))

    async def run(self) -> None:
        """Cycles until ``stop``; the last one ends cleanly (DELETE, streams closed)."""
        try:
            while not self.stop.is_set():
                if not await self.cycle():
                    await asyncio.sleep(BACKOFF)
        finally:
            await self.http.aclose()

    async def cycle(self) -> bool:
        raise NotImplementedError

    def headers(self, method: str | None = None) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Accept": ACCEPT,
            "Authorization": f"Bearer {self.token}",
        }

    def params(self, params: dict[str, Any]) -> dict[str, Any]:
        return params

    async def rpc(
        self,
        method: str,
        params: dict[str, Any],
        headers: dict[str, str],
        kind: str | None = None,
    ) -> httpx2.Response | None:
        """POST one request; the response when it carried its result, else None."""
        kind = kind or method
        request_id = next(self._ids)
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        try:
            response = await self.http.post(self.url, json=message, headers=headers)
        except httpx2.HTTPError as error:
            self.tally.record(kind, f"{type(error).__name__}: {error}")
            return None
        problem = response_problem(
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
            request_id,
            tool_call=method == "tools/call",
        )
        self.tally.record(kind, problem)
        return response if problem is None else None

    async def rounds(self, headers_for: Any) -> bool:
        """Lists, calls and one call with progress, ``ROUNDS`` times (fewer once stopped)."""
        ok = True
        for turn in range(ROUNDS):
            if self.stop.is_set() and turn:
                break
            for method in ("tools/list", "prompts/list", "resources/list"):
                answered = await self.rpc(method, self.params({}), headers_for(method, None))
                ok = ok and answered is not None
            for name, arguments in self.calls:
                params = self.params({"name": name, "arguments": arguments})
                answered = await self.rpc("tools/call", params, headers_for("tools/call", name))
                ok = ok and answered is not None
        name, arguments = self.progress_call
        params = self.params({"name": name, "arguments": arguments})
        params.setdefault("_meta", {})["progressToken"] = f"soak-{next(self._ids)}"
        answered = await self.rpc(
            "tools/call", params, headers_for("tools/call", name), "tools/call (progress)"
        )
        return ok and answered is not None


class SessionClient(Client):
    """MCP 2025-11-25: a session, its GET stream, rounds, DELETE."""

    kind = LEGACY

    async def cycle(self) -> bool:
        initialize = {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": CLIENT_INFO,
        }
        answer = await self.rpc("initialize", initialize, self.headers())
        if answer is None:
            return False
        session_id = answer.headers.get("mcp-session-id")
        if not session_id:
            self.tally.fail("initialize", "no Mcp-Session-Id in the answer")
            return False
        headers = {
            **self.headers(),
            "Mcp-Session-Id": session_id,
            "MCP-Protocol-Version": LEGACY,
        }
        ok = await self._initialized(headers)
        stream = HeldStream()
        get = self.http.build_request("GET", self.url, headers={**headers, "Accept": ACCEPT})
        problem = await stream.open(self.http, get)
        self.tally.record("GET stream", problem)
        ok = ok and problem is None
        ok = await self.rounds(lambda method, name: headers) and ok
        ok = await self._delete(headers) and ok
        held = await stream.close()
        if held is not None and problem is None and held.startswith("broke"):
            # ended by aigw after the DELETE is what DELETE means; broken is not
            self.tally.fail("GET stream", held)
            ok = False
        return ok

    async def _initialized(self, headers: dict[str, str]) -> bool:
        message = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        try:
            response = await self.http.post(self.url, json=message, headers=headers)
        except httpx2.HTTPError as error:
            self.tally.record("notifications/initialized", f"{type(error).__name__}: {error}")
            return False
        problem = status_problem(response.status_code, (202,), response.content)
        self.tally.record("notifications/initialized", problem)
        return problem is None

    async def _delete(self, headers: dict[str, str]) -> bool:
        try:
            response = await self.http.delete(self.url, headers=headers)
        except httpx2.HTTPError as error:
            self.tally.record("DELETE", f"{type(error).__name__}: {error}")
            return False
        problem = status_problem(response.status_code, (200, 204), response.content)
        self.tally.record("DELETE", problem)
        return problem is None


class StatelessClient(Client):
    """MCP 2026-07-28: ``server/discover``, a listen held open, rounds; no session."""

    kind = MODERN

    def modern_headers(self, method: str, name: str | None) -> dict[str, str]:
        """streamable-http "Request Metadata": the version, Mcp-Method, and Mcp-Name for
        the methods that name a tool, prompt or resource."""
        headers = {**self.headers(), "MCP-Protocol-Version": MODERN, "Mcp-Method": method}
        if name is not None:
            headers["Mcp-Name"] = name
        return headers

    def params(self, params: dict[str, Any]) -> dict[str, Any]:
        """basic/versioning: every request carries the envelope ``initialize`` used to."""
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        return {**params, "_meta": meta}

    async def cycle(self) -> bool:
        discover = await self.rpc(
            "server/discover", self.params({}), self.modern_headers("server/discover", None)
        )
        ok = discover is not None
        listen = HeldStream(LISTEN_ACKNOWLEDGED)
        body = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": "subscriptions/listen",
            "params": self.params({"notifications": {"toolsListChanged": True}}),
        }
        request = self.http.build_request(
            "POST",
            self.url,
            json=body,
            headers=self.modern_headers("subscriptions/listen", None),
        )
        problem = await listen.open(self.http, request)
        self.tally.record("subscriptions/listen", problem)
        ok = ok and problem is None
        ok = await self.rounds(self.modern_headers) and ok
        held = await listen.close()
        if held is not None and problem is None:
            self.tally.fail("subscriptions/listen", held)  # aigw has no reason to end it
            ok = False
        return ok
