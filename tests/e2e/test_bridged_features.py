"""What aigw bridges between the MCP eras beyond calls and lists, with real SDK clients
and servers: log levels, resource subscriptions, elicitation (form and URL), roots,
and the capabilities a backend that joins a session late is told.

Clients: the official Python SDK pinned to 2026-07-28, in ``auto`` and in ``legacy``
mode (2025-11-25), and the TypeScript SDK 1.x (2025-11-25); upstreams: server-everything
(2025-11-25), the ``mcp`` SDK pyserver stateful, stateless and 2026-07-28 only.  Each
cell goes into the matrix the run prints
(``matrix.LEGEND`` says why a cell is ``refused``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from .aigw import Gateway, start_gateway
from .harness.oauth_client import connect_plain, run_ts_client
from .harness.processes import free_port
from .harness.results import text_of
from .harness.upstreams import Upstream, start_pyserver
from .matrix import REFUSED, TS_CLIENT, UPSTREAM_LABELS, record

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

CLIENTS = {"py-sdk 2026-07-28": "2026-07-28", "py-sdk auto": "auto", "py-sdk legacy": "legacy"}
#: Where server-everything's URL elicitation sends the user (never opened).
CONNECT = "https://connect.example/authorize"
#: pyserver's (tests/e2e/upstreams/pyserver.py CONNECT_URL).
PY_CONNECT = "https://connect.example/authorize?elicitation=e2e-1"
ROOT = "file:///work/e2e"
#: Each feature's tool per upstream: (name, arguments).
ELICIT = {"everything": ("trigger-elicitation-request", {})}
ASK_URL = {"everything": ("trigger-url-elicitation", {"url": CONNECT})}
NEED_URL = {"everything": ("trigger-url-elicitation", {"url": CONNECT, "errorPath": True})}
ROOTS = {"everything": ("get-roots-list", {})}
for _kind in ("py", "stateless", "modern"):
    ELICIT[_kind] = ("resolve-user", {})
    ASK_URL[_kind] = ("ask-url", {})
    NEED_URL[_kind] = ("need-url", {})
    ROOTS[_kind] = ("resolve-roots", {})

NO_BACK_CHANNEL = (-32600, "no back-channel for server-initiated requests")
#: (client era, upstream, feature) -> (JSON-RPC code, or None for a tool result with
#: isError, and what the message says) where the feature cannot work (matrix.LEGEND).
REFUSALS: dict[tuple[str, str, str], tuple[int | None, str]] = {
    ("legacy", "stateless", "elicitation"): NO_BACK_CHANNEL,
    ("legacy", "stateless", "elicitation URL"): NO_BACK_CHANNEL,
    ("legacy", "stateless", "roots"): NO_BACK_CHANNEL,
    ("2026", "stateless", "elicitation"): NO_BACK_CHANNEL,
    ("2026", "stateless", "elicitation URL"): NO_BACK_CHANNEL,
    ("2026", "stateless", "roots"): NO_BACK_CHANNEL,
}


@pytest.fixture(scope="module")
def gateway(eras_gateway: Gateway) -> Gateway:
    """aigw in front of one upstream of each generation (conftest ``eras_gateway``)."""
    return eras_gateway


class Cell:
    """One client connection's callbacks and what they saw."""

    def __init__(self, mode: str, backend: str) -> None:
        self.mode = mode
        self.era = "legacy" if mode == "legacy" else "2026"
        self.backend = backend
        self.logs: list[str] = []
        self.notes: list[Any] = []
        self.asked: list[Any] = []
        self.noted = anyio.Event()

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params.level)

    async def on_message(self, message: Any) -> None:
        if str(getattr(message, "method", "")).startswith("notifications/"):
            self.notes.append(message)
            self.noted.set()

    async def elicit(self, context: Any, params: Any) -> types.ElicitResult:
        self.asked.append(params)
        if getattr(params, "mode", "form") == "url":
            return types.ElicitResult(action="accept")
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def roots(self, context: Any) -> types.ListRootsResult:
        self.asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri=ROOT)])

    def callbacks(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "logging_callback": self.on_log,
            "message_handler": self.on_message,
            "elicitation_callback": self.elicit,
            "list_roots_callback": self.roots,
        }
        if self.era == "2026":
            kwargs["log_level"] = "warning"  # 2026-07-28: _meta logLevel on every request
        return kwargs

    def name(self, tool: str) -> str:
        return f"{self.backend}__{tool}"

    async def call(self, tool: tuple[str, dict[str, Any]], client: Any) -> tuple[bool, str, Any]:
        """(answered, text, error): a tool result, or the JSON-RPC error it became."""
        with anyio.fail_after(30):
            try:
                result = await client.call_tool(self.name(tool[0]), tool[1])
            except MCPError as error:
                return False, error.error.message, error.error
        return not result.is_error, text_of(result), None

    def refused(self, feature: str, answered: bool, text: str, error: Any) -> str:
        """The asserted refusal of REFUSALS for this cell."""
        code, reason = REFUSALS[(self.era, self.backend, feature)]
        assert not answered, text
        assert (error.code if error is not None else None) == code, (error, text)
        assert reason in text, text
        return REFUSED


async def log_level(cell: Cell, client: Any) -> str | None:
    """2025-11-25 logging/setLevel, 2026-07-28 per-request logLevel: messages at or above
    the level only, whoever filters (the mcp SDK servers filter only 2026-07-28 requests)."""
    if cell.backend == "everything":
        if cell.era == "2026":
            with pytest.raises(MCPError) as caught:
                await client.set_logging_level("debug")
            assert caught.value.error.code == -32601, caught.value.error
            assert "logLevel" in caught.value.error.message
            return REFUSED
        await client.set_logging_level("debug")
        await client.call_tool(cell.name("toggle-simulated-logging"), {})  # on: logs at once
        try:
            with anyio.fail_after(20):
                while not cell.logs:
                    await cell.noted.wait()
                    cell.noted = anyio.Event()
        finally:
            await client.call_tool(cell.name("toggle-simulated-logging"), {})  # off
        return None
    if cell.era == "legacy":
        await client.set_logging_level("warning")
    result = await client.call_tool(cell.name("log"), {})
    assert text_of(result) == "logged", result
    assert cell.logs == ["warning", "error"], cell.logs
    return None


async def subscriptions(cell: Cell, client: Any) -> str | None:
    """A resource subscription and its update: resources/subscribe and the GET stream for
    a session client, subscriptions/listen for a 2026-07-28 one, whatever the upstream."""
    if cell.backend == "everything":
        listed = (await client.list_resources()).resources
        uri = next(str(r.uri) for r in listed if str(r.uri).startswith("aigw:everything/"))
    else:
        uri = f"aigw:{cell.backend}/test://counter"
    if cell.era == "legacy":
        if cell.backend == "stateless":
            with pytest.raises(MCPError) as caught:
                await client.subscribe_resource(uri)
            assert caught.value.error.code == -32600, caught.value.error
            assert (caught.value.error.data or {}).get("reason") == "no_session_stream"
            return REFUSED
        await client.subscribe_resource(uri)

        async def updated() -> Any:
            while True:
                found = [n for n in cell.notes if n.method == "notifications/resources/updated"]
                if found:
                    return found[0].params
                await cell.noted.wait()
                cell.noted = anyio.Event()

        params = await _until(lambda: _trigger(cell, client), updated)
        assert str(params.uri) == uri
        await client.unsubscribe_resource(uri)  # answered (over 2026-07-28: the listen re-sent)
        return None
    async with client.listen(resource_subscriptions=[uri]) as sub:
        honored = list(sub.honored.resource_subscriptions or [])
        if cell.backend == "stateless":
            assert honored == []  # basic/patterns/subscriptions "Acknowledgment"
            return REFUSED
        assert honored == [uri]
        event = await _until(lambda: _trigger(cell, client), aiter(sub).__anext__)
    assert str(event.uri) == uri
    return None


async def _trigger(cell: Cell, client: Any) -> None:
    if cell.backend == "everything":
        await client.call_tool(cell.name("toggle-subscriber-updates"), {})
    else:
        await client.call_tool(cell.name("bump"), {})


async def _until(trigger: Callable[[], Awaitable[None]], arrived: Any) -> Any:
    """Trigger until ``arrived`` returns (the upstream stream opens asynchronously)."""
    for _ in range(20):
        await trigger()
        with anyio.move_on_after(1.0):
            return await arrived()
    raise AssertionError("no update arrived")


async def elicitation(cell: Cell, client: Any) -> str | None:
    answered, text, error = await cell.call(ELICIT[cell.backend], client)
    if (cell.era, cell.backend, "elicitation") in REFUSALS:
        return cell.refused("elicitation", answered, text, error)
    assert answered, text
    assert "Ada" in text, text
    return None


async def url_elicitation(cell: Cell, client: Any) -> str | None:
    """client/elicitation "URL Mode Elicitation Requests": the request (a request mid-call
    up to 2025-11-25, an input request from 2026-07-28 on), its completion notice, and
    the URL-elicitation-required error (-32042) passed on intact across eras."""
    feature = "elicitation URL"
    answered, text, error = await cell.call(ASK_URL[cell.backend], client)
    refused = (cell.era, cell.backend, feature) in REFUSALS
    outcome = cell.refused(feature, answered, text, error) if refused else None
    if not refused:
        assert answered, text
        asked = [a for a in cell.asked if getattr(a, "mode", None) == "url"]
        assert asked, cell.asked
        assert str(asked[0].url).startswith(CONNECT), asked
        if cell.backend == "py" and cell.era == "legacy":
            complete = [n for n in cell.notes if n.method == "notifications/elicitation/complete"]
            assert complete, cell.notes
            assert complete[0].params.elicitation_id == "e2e-1", complete
    if cell.era == "2026" and cell.backend == "everything":
        return outcome  # the tool is not offered at all (REFUSALS)
    answered, text, error = await cell.call(NEED_URL[cell.backend], client)
    assert not answered, text
    assert error is not None, text
    assert error.code == -32042, (error, text)
    (needed,) = error.data["elicitations"]  # client/elicitation: URL mode, each with an id
    assert needed["mode"] == "url", needed
    assert needed["url"].startswith("https://"), needed
    assert needed["elicitationId"], needed
    return outcome


async def roots(cell: Cell, client: Any) -> str | None:
    if (cell.era, cell.backend) == ("2026", "everything"):
        return await _roots_outside_any_request(cell, client)
    answered, text, error = await cell.call(ROOTS[cell.backend], client)
    if (cell.era, cell.backend, "roots") in REFUSALS:
        return cell.refused("roots", answered, text, error)
    assert answered, text
    assert ROOT in text, text
    return None


async def _roots_outside_any_request(cell: Cell, client: Any) -> str:
    """server-everything asks for the client's roots with a request of its own on its
    GET stream, outside any client request: a 2026-07-28 client takes a server's request
    only as ``input_required`` (basic/patterns/mrtr), so aigw answers it for the client
    at once (-32601), and get-roots-list says it has none instead of waiting for its
    timeout.  A listen holds aigw's stream to the backend open (an update proves it)."""
    listed = (await client.list_resources()).resources
    uri = next(str(r.uri) for r in listed if str(r.uri).startswith("aigw:everything/"))
    async with client.listen(resource_subscriptions=[uri]) as sub:
        await _until(lambda: _trigger(cell, client), aiter(sub).__anext__)
        answered, text, error = await cell.call(ROOTS[cell.backend], client)
    assert answered, (text, error)
    assert "no roots are currently configured" in text, text
    assert cell.asked == [], cell.asked  # the client itself was never asked
    return REFUSED


FEATURES = {
    "log level": log_level,
    "subscriptions": subscriptions,
    "elicitation": elicitation,
    "elicitation URL": url_elicitation,
    "roots": roots,
}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("backend", list(UPSTREAM_LABELS))
@pytest.mark.parametrize("client_name", list(CLIENTS))
async def test_bridged_features(gateway: Gateway, client_name: str, backend: str) -> None:
    """Log level, subscriptions, elicitation (form and URL) and roots for one cell."""
    failures: list[str] = []
    for feature, check in FEATURES.items():
        cell = Cell(CLIENTS[client_name], backend)
        outcome: bool | str = False
        try:
            async with connect_plain(gateway.url, mode=cell.mode, **cell.callbacks()) as client:
                await client.list_tools()  # the upstream sessions are open, the tools known
                outcome = await check(cell, client) or True
        except (AssertionError, MCPError, TimeoutError) as failed:
            failures.append(f"{feature}: {failed!r}")
        finally:
            record(client_name, UPSTREAM_LABELS[backend], feature, outcome)
    assert not failures, failures


async def test_url_elicitation_refused_to_a_form_only_client(gateway: Gateway) -> None:
    """A client that declared ``elicitation: {}`` (form only, client/elicitation
    "Capabilities") is never sent a URL elicitation: the mcp SDK server does not check,
    aigw does, and the call fails naming the capability."""
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=30) as http:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {"elicitation": {}},
                "clientInfo": {"name": "form-only", "version": "0"},
            },
        }
        response = await http.post(gateway.url, json=init, headers=headers)
        assert response.status_code == 200, response.text
        session = {
            **headers,
            "Mcp-Session-Id": response.headers["mcp-session-id"],
            "MCP-Protocol-Version": "2025-11-25",
        }
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await http.post(gateway.url, json=initialized, headers=session)
        listed = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        await http.post(gateway.url, json=listed, headers=session)
        call = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "py__ask-url", "arguments": {}},
        }
        response = await http.post(gateway.url, json=call, headers=session)
    assert response.status_code == 200, response.text
    messages = [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ] or [response.json()]
    assert not [m for m in messages if m.get("method") == "elicitation/create"], messages
    (answer,) = [m for m in messages if m.get("id") == 3]
    error = answer.get("error") or {}
    text = json.dumps(answer)
    assert error or answer["result"].get("isError"), answer
    # aigw answered the backend for the client (relay.py), naming what it lacks.
    assert "did not declare elicitation.url" in text, answer


async def test_a_late_joiner_gets_the_clients_capabilities(pyserver: Upstream) -> None:
    """A backend down when the session opened joins it later (on a list) and is told
    what the client can answer, from the sealed session id: its resolver asks the
    client, which the mcp SDK server does only for a declared capability."""
    port = free_port()
    gateway = start_gateway([("py", pyserver.url), ("late", f"http://127.0.0.1:{port}/mcp")])
    upstream: Upstream | None = None
    cell = Cell("legacy", "late")
    ok = False
    try:
        async with connect_plain(gateway.url, mode="legacy", **cell.callbacks()) as client:
            upstream = start_pyserver(port=port)  # after initialize: left out, then up
            names = [t.name for t in (await client.list_tools()).tools]  # joins now
            assert "late__resolve-user" in names, names
            answered, text, _ = await cell.call(("resolve-user", {}), client)
            assert answered, text
            assert "hello Ada" in text, text
            answered, text, _ = await cell.call(("resolve-roots", {}), client)
            assert answered, text
            assert ROOT in text, text
        ok = True
    finally:
        record("py-sdk legacy", UPSTREAM_LABELS["py"], "late joiner", ok)
        gateway.stop()
        if upstream is not None:
            upstream.stop()


#: What the TypeScript client declares besides sampling (e2e/ts-client.mjs --capabilities).
TS_CAPABILITIES = {"elicitation": {"form": {}, "url": {}}, "roots": {}}


def ts_script(backend: str) -> list[dict[str, Any]]:
    """One ts-client run checks every feature of its cell (one OAuth login)."""
    if backend == "everything":
        toggle = {"name": "everything__toggle-simulated-logging", "args": {}}
        logs: list[dict[str, Any]] = [
            {"op": "set-level", "level": "debug"},
            {
                "op": "notify",
                "method": "notifications/message",
                "trigger": toggle,
                "tries": 1,
                "waitMs": 10000,
            },
            {"op": "call", **toggle},  # off again
        ]
        updates = {"name": "everything__toggle-subscriber-updates", "args": {}}
        uri = "aigw:everything/demo://resource/dynamic/text/1"
    else:
        logs = [
            {"op": "set-level", "level": "warning"},
            {"op": "call", "name": f"{backend}__log", "args": {}},
        ]
        updates = {"name": f"{backend}__bump", "args": {}}
        uri = f"aigw:{backend}/test://counter"
    subscribe: list[dict[str, Any]] = [{"op": "subscribe", "uri": uri}]
    if backend != "stateless":
        subscribe.append(
            {"op": "notify", "method": "notifications/resources/updated", "trigger": updates}
        )
    calls = [ELICIT[backend], ASK_URL[backend], NEED_URL[backend], ROOTS[backend]]
    return [
        *logs,
        *subscribe,
        *({"op": "call", "name": f"{backend}__{tool}", "args": args} for tool, args in calls),
    ]


class TsCell:
    """The events of one ts-client run, checked feature by feature."""

    def __init__(self, backend: str, events: list[dict[str, Any]]) -> None:
        self.backend = backend
        self.events = events

    def all(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["event"] == event and all(e.get(k) == v for k, v in match.items())
        ]

    def one(self, event: str, **match: Any) -> dict[str, Any]:
        found = self.all(event, **match)
        assert found, f"no {event} {match or ''} in {[e['event'] for e in self.events]}"
        return found[0]

    def called(self, tool: tuple[str, dict[str, Any]], nth: int = 0) -> tuple[bool, str, Any]:
        """(answered, text, error) of the ``nth`` call of ``tool``."""
        name = f"{self.backend}__{tool[0]}"
        outcomes = [
            e for e in self.events if e["event"] in ("call", "call-error") and e.get("name") == name
        ]
        assert len(outcomes) > nth, f"no call {nth} of {name}"
        outcome = outcomes[nth]
        if outcome["event"] == "call-error":
            return False, outcome["message"], outcome
        result = outcome["result"]
        return not result.get("isError"), json.dumps(result), None

    def refused(self, feature: str, answered: bool, text: str, error: Any) -> str:
        code, reason = REFUSALS[("legacy", self.backend, feature)]
        assert not answered, text
        assert (error["code"] if error is not None else None) == code, (error, text)
        assert reason in text, text
        return REFUSED

    def log_level(self) -> str | None:
        self.one("level-set")
        levels = [
            e["params"]["level"] for e in self.all("notification", method="notifications/message")
        ]
        if self.backend == "everything":
            assert levels, "no log message arrived"
        else:
            assert levels == ["warning", "error"], levels
        return None

    def subscriptions(self) -> str | None:
        if self.backend == "stateless":
            refused = self.one("subscribe-error")
            assert refused["code"] == -32600, refused
            assert (refused["data"] or {}).get("reason") == "no_session_stream", refused
            return REFUSED
        self.one("subscribed")
        notified = self.one("notified", method="notifications/resources/updated")
        assert notified["params"]["uri"].startswith(f"aigw:{self.backend}/"), notified
        return None

    def elicitation(self) -> str | None:
        answered, text, error = self.called(ELICIT[self.backend])
        if ("legacy", self.backend, "elicitation") in REFUSALS:
            return self.refused("elicitation", answered, text, error)
        assert answered, text
        assert "Ada" in text, text
        return None

    def url_elicitation(self) -> str | None:
        feature = "elicitation URL"
        answered, text, error = self.called(ASK_URL[self.backend])
        outcome = None
        if ("legacy", self.backend, feature) in REFUSALS:
            outcome = self.refused(feature, answered, text, error)
        else:
            assert answered, text
            asked = [e for e in self.all("elicitation") if e["params"].get("mode") == "url"]
            assert asked, self.events
            assert asked[0]["params"]["url"].startswith(CONNECT), asked
            if self.backend == "py":
                done = self.one("notification", method="notifications/elicitation/complete")
                assert done["params"]["elicitationId"] == "e2e-1", done
        nth = 1 if self.backend == "everything" else 0  # the same tool, errorPath set
        answered, text, error = self.called(NEED_URL[self.backend], nth)
        assert not answered, text
        assert error is not None, text
        assert error["code"] == -32042, error
        (needed,) = error["data"]["elicitations"]
        assert needed["mode"] == "url", needed
        assert needed["elicitationId"], needed
        return outcome

    def roots(self) -> str | None:
        answered, text, error = self.called(ROOTS[self.backend])
        if ("legacy", self.backend, "roots") in REFUSALS:
            return self.refused("roots", answered, text, error)
        assert answered, text
        assert ROOT in text, text
        return None


@pytest.mark.parametrize("backend", list(UPSTREAM_LABELS))
def test_typescript_sdk_client_bridged_features(gateway: Gateway, backend: str) -> None:
    """The TypeScript SDK 1.x (2025-11-25, declaring elicitation form and URL, roots and
    sampling): the same features, one run per upstream."""
    events: list[dict[str, Any]] = []
    try:
        events = run_ts_client(
            gateway.url,
            "alice",
            script=ts_script(backend),
            sampling=True,
            extra_argv=["--capabilities", json.dumps(TS_CAPABILITIES)],
            timeout=120.0,
        )
    except subprocess.CalledProcessError as failed:
        events = [json.loads(line) for line in failed.stdout.splitlines() if line.startswith("{")]
    cell = TsCell(backend, events)
    checks = {
        "log level": cell.log_level,
        "subscriptions": cell.subscriptions,
        "elicitation": cell.elicitation,
        "elicitation URL": cell.url_elicitation,
        "roots": cell.roots,
    }
    failures = []
    for feature, verify in checks.items():
        outcome: bool | str = False
        try:
            outcome = verify() or True
        except (AssertionError, KeyError, TypeError) as error:
            failures.append(f"{feature}: {error!r}")
        finally:
            record(TS_CLIENT, UPSTREAM_LABELS[backend], feature, outcome)
    assert not failures, (failures, events[-3:])
