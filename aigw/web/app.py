"""The Klein resource tree: routes only, the work is done by the objects passed in.

Routes:
- ``GET /healthz``: the process is alive.
- ``GET /readyz``: 200 when every readiness check passes, else 503; the JSON
  body names what is not ready.
- RFC 9728 protected resource metadata, and the authorization server metadata
  relay for 2025-03-26-era clients, when auth is on.
- ``mcp_path``: the MCP endpoint, behind the bearer check; a POST carrying a peer's
  sealed note of a completed URL elicitation (``elicitation_notices.py``) is that
  note's, checked by its seal instead.
- ``/oauth/upstream/start`` and ``/oauth/upstream/callback``: a user's authorization at
  a ``user_oauth`` backend (``upstream_oauth.py``), when one is configured.
- anything else: JSON 404 / 405.

``mcp_path`` carries every tool call, so its POST, GET and DELETE are answered
by :class:`GatewayRoot` before Klein's routing (werkzeug's URL matcher and
Klein's adapters cost about a tenth of a proxied call, docs/performance.md);
the route stays registered with Klein as well, which serves the same handler
for the same path in another spelling (``/%6Dcp``) and answers 405 for other
methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from klein._app import Klein
from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.exceptions import MethodNotAllowed, NotFound

from aigw.auth.authenticator import Authenticator, AuthFailure
from aigw.auth.metadata import metadata_paths, protected_resource_metadata
from aigw.config import Config
from aigw.principal import Principal
from aigw.protocol import jsonrpc
from aigw.readiness import Readiness
from aigw.web.host import HostCheck
from aigw.web.mcp.hop import NOTICE_HEADER
from aigw.web.request import WebRequest, query_arguments
from aigw.web.respond import refuse_auth, write_json

if TYPE_CHECKING:
    from aigw.web.elicitation_notices import CompletionNotices
    from aigw.web.upstream_oauth import UserOAuthPages

#: RFC 9728 §3: metadata is public and read by browser-based clients too.
METADATA_CORS_HEADERS = {
    b"Access-Control-Allow-Origin": b"*",
    b"Access-Control-Allow-Methods": b"GET, OPTIONS",
    b"Access-Control-Allow-Headers": b"mcp-protocol-version, content-type",
    b"Access-Control-Max-Age": b"86400",
}


class MCPHandler(Protocol):
    """The MCP Streamable HTTP endpoint, called once the bearer check passed."""

    async def handle(self, request: WebRequest, principal: Principal) -> bytes | None: ...


class MetadataDocuments(Protocol):
    """The authorization server's own metadata, relayed for older clients."""

    def document(self, kind: str) -> bytes | None: ...


def _web_request(request: IRequest) -> WebRequest:
    """Klein types error handlers' requests as ``IRequest``; it passes the site's ``Request``."""
    return cast(WebRequest, request)


class GatewayApp:
    """The routes of one gateway, bound to its config and its parts."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        readiness: Readiness,
        authenticator: Authenticator,
        mcp: MCPHandler | None = None,
        as_metadata: MetadataDocuments | None = None,
        user_oauth: UserOAuthPages | None = None,
        notices: CompletionNotices | None = None,
    ) -> None:
        self.config = config
        self.user_oauth = user_oauth
        self.notices = notices
        self.readiness = readiness
        self.authenticator = authenticator
        self.mcp = mcp
        self.as_metadata = as_metadata
        self.app = Klein()
        self._route()

    def resource(self) -> IResource:
        return GatewayRoot(self, self.app.resource())

    def _route(self) -> None:
        route = self.app.route
        route("/healthz", methods=["GET", "HEAD"])(self.healthz)
        route("/readyz", methods=["GET", "HEAD"])(self.readyz)
        if self.config.auth is not None:
            self._prm = jsonrpc.dumps(protected_resource_metadata(self.config))
            for path in metadata_paths(self.config):
                route(path, methods=["GET", "HEAD", "OPTIONS"])(self.resource_metadata)
            if self.as_metadata is not None:
                self._route_as_metadata()
        route(self.config.mcp_path, methods=["POST", "GET", "DELETE"])(self.mcp_endpoint)
        if self.user_oauth is not None:
            # Imported already (the pages are its): a config without a store never does.
            from aigw.web.upstream_oauth import CALLBACK_PATH, LOGIN_PATH, START_PATH

            route(START_PATH, methods=["GET"])(self.user_oauth_start)
            route(CALLBACK_PATH, methods=["GET"])(self.user_oauth_callback)
            route(LOGIN_PATH, methods=["GET"])(self.user_oauth_login)
        self.app.handle_errors(NotFound)(self.not_found)
        self.app.handle_errors(MethodNotAllowed)(self.method_not_allowed)
        self.app.handle_errors(Exception)(self.internal_error)

    def follow(self, old: Config, new: Config) -> None:
        """A reload (``config/holder.py`` subscriber): the metadata's ``scopes_supported``
        may come from the backends' scopes; the routes stay (they need a restart)."""
        if new.auth is not None and self.config.auth is not None:
            self._prm = jsonrpc.dumps(protected_resource_metadata(new))

    def _route_as_metadata(self) -> None:
        """RFC 8414 §3.1 (path-inserted) and OIDC Discovery §4 (appended) locations."""
        path = self.config.mcp_path
        for kind, well_known in (
            ("oauth-authorization-server", "/.well-known/oauth-authorization-server"),
            ("openid-configuration", "/.well-known/openid-configuration"),
        ):
            handler = self._as_metadata_handler(kind)
            for location in {well_known, well_known + path, path + well_known}:
                self.app.route(location, methods=["GET", "HEAD", "OPTIONS"])(handler)

    def _preflight(self, request: WebRequest) -> bytes:
        """CORS preflight for the public metadata documents."""
        request.setResponseCode(204)
        for name, value in METADATA_CORS_HEADERS.items():
            request.setHeader(name, value)
        return b""

    def healthz(self, request: WebRequest) -> bytes:
        return write_json(request, 200, {"status": "alive"})

    def readyz(self, request: WebRequest) -> bytes:
        ready, checks = self.readiness.report()
        return write_json(request, 200 if ready else 503, {"ready": ready, "checks": checks})

    def resource_metadata(self, request: WebRequest) -> bytes:
        """RFC 9728 §3.2: the protected resource metadata document."""
        if request.method == b"OPTIONS":
            return self._preflight(request)
        headers = dict(METADATA_CORS_HEADERS)
        headers[b"Cache-Control"] = b"public, max-age=3600"
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/json")
        for name, value in headers.items():
            request.setHeader(name, value)
        return self._prm

    def _as_metadata_handler(self, kind: str) -> Any:
        def handler(request: WebRequest) -> bytes:
            if request.method == b"OPTIONS":
                return self._preflight(request)
            assert self.as_metadata is not None
            document = self.as_metadata.document(kind)
            if document is None:
                return write_json(
                    request,
                    503,
                    {
                        "error": "temporarily_unavailable",
                        "error_description": "authorization server metadata not fetched yet",
                    },
                    METADATA_CORS_HEADERS,
                )
            request.setResponseCode(200)
            request.setHeader(b"Content-Type", b"application/json")
            request.setHeader(b"Cache-Control", b"public, max-age=300")
            for name, value in METADATA_CORS_HEADERS.items():
                request.setHeader(name, value)
            return document

        handler.__name__ = f"as_metadata_{kind.replace('-', '_')}"
        return handler

    def user_oauth_start(self, request: WebRequest) -> Any:
        assert self.user_oauth is not None
        return ensureDeferred(self.user_oauth.start(request))

    def user_oauth_callback(self, request: WebRequest) -> Any:
        assert self.user_oauth is not None
        return ensureDeferred(self.user_oauth.callback(request))

    def user_oauth_login(self, request: WebRequest) -> Any:
        assert self.user_oauth is not None
        return ensureDeferred(self.user_oauth.login(request))

    def mcp_endpoint(self, request: WebRequest) -> Any:
        return ensureDeferred(self._mcp_endpoint(request))

    def serve_mcp(self, request: WebRequest) -> Any:
        """What Klein would do for the MCP route, without the routing: run the
        handler, write what it returns, finish the request unless it is already
        finished or gone, and cancel the handler when the client goes away."""
        # The end is noted before the handler's own notifications run (a stream
        # returns on its own), and the handler is cancelled only after them (they
        # tell the backends that the client went away), as Klein orders them.
        ended = [False]
        request.notifyFinish().addBoth(lambda _: ended.__setitem__(0, True))
        handling = ensureDeferred(self._mcp_endpoint(request))
        request.notifyFinish().addErrback(lambda _: handling.cancel())

        def respond(body: bytes | None) -> None:
            if ended[0]:
                return
            if body:
                if not getattr(request, "startedWriting", True):
                    # The whole body is known: sent with its length, not chunked.
                    request.setHeader(b"Content-Length", b"%d" % len(body))
                request.write(body)
            if not ended[0]:
                request.finish()  # type: ignore[attr-defined]

        def failed(failure: Failure) -> None:
            if failure.check(CancelledError) and ended[0]:
                return
            self.log.failure("unhandled error in request", failure)
            if ended[0]:
                return
            if not getattr(request, "startedWriting", False):  # else the status is sent
                request.write(
                    write_json(
                        request,
                        500,
                        {"error": "server_error", "error_description": "internal error"},
                    )
                )
            request.finish()  # type: ignore[attr-defined]

        handling.addCallbacks(respond, failed)
        return NOT_DONE_YET

    async def _mcp_endpoint(self, request: WebRequest) -> bytes | None:
        if self.notices is not None and request.method == b"POST":
            notes = request.requestHeaders.getRawHeaders(NOTICE_HEADER)
            if notes is not None:
                return self.notices.receive(request, notes)
        try:
            principal = await self.authenticator.authenticate(
                request.requestHeaders.getRawHeaders(b"authorization", []),
                query_arguments(request),
            )
        except AuthFailure as failure:
            return refuse_auth(request, failure)
        fields = getattr(request, "aigw_fields", None)
        if fields is not None and principal.subject:
            fields["sub"] = principal.subject
        if self.mcp is None:
            return write_json(
                request, 503, {"error": "unavailable", "error_description": "no MCP gateway"}
            )
        return await self.mcp.handle(request, principal)

    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        return write_json(
            _web_request(request),
            404,
            {"error": "not_found", "error_description": "no such resource"},
        )

    def method_not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        allowed = getattr(failure.value, "valid_methods", None) or []
        return write_json(
            _web_request(request),
            405,
            {
                "error": "method_not_allowed",
                "error_description": f"{request.method.decode('latin-1')} is not allowed here",
            },
            {b"Allow": ", ".join(allowed).encode()},
        )

    def internal_error(self, request: IRequest, failure: Failure) -> bytes:
        """Last resort: the failure is logged, the client gets JSON, never a traceback."""
        self.log.failure("unhandled error in request", failure)
        return write_json(
            _web_request(request),
            500,
            {"error": "server_error", "error_description": "internal error"},
        )


class GatewayRoot(Resource):
    """The site's root: the MCP endpoint directly, everything else through Klein."""

    isLeaf = True

    def __init__(self, app: GatewayApp, routed: IResource) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._app = app
        self._routed = routed
        self._mcp_path = app.config.mcp_path.encode("utf-8")
        self._hosts = HostCheck(app.config.public_url)

    def render(self, request: Any) -> Any:
        if not self._hosts.allows(request.requestHeaders.getRawHeaders(b"host")):
            # DNS rebinding (aigw/web/host.py): 421 for every path, before any route.
            return write_json(
                request,
                421,
                {
                    "error": "misdirected_request",
                    "error_description": "this gateway does not serve that Host",
                },
            )
        if request.path == self._mcp_path and request.method in _MCP_METHODS:
            return self._app.serve_mcp(request)
        return self._routed.render(request)


_MCP_METHODS = frozenset({b"POST", b"GET", b"DELETE"})
