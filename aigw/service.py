"""The gateway's service tree, built once from a validated config.

    GatewayService (MultiService)
      ├── KeyStore            JWKS refresh loop (auth on)
      ├── metadata relay      authorization server metadata for older clients (auth on)
      ├── Gateway             upstream pools and MCP sessions (and the store in ``state_dir``)
      ├── listeners           one endpoint service per ``listen`` string
      └── metrics listener    ``GET /metrics`` on ``metrics.listen`` (unless ``metrics: off``)

Stopping (SIGTERM) goes: stop accepting, drain in-flight requests within
``server.shutdown_timeout``, close streams and upstream pools, stop the rest.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized
from twisted.web.client import HTTPConnectionPool

from aigw import __version__
from aigw.access_log import AccessLogObserver
from aigw.audit import AuditTrail
from aigw.audit_file import AuditFile
from aigw.auth.authenticator import Authenticator
from aigw.auth.jwks import KeyStore
from aigw.auth.policy import HeldAccessRules
from aigw.auth.wiring import build_authenticator
from aigw.config import BackendConfig, Config
from aigw.config.errors import located
from aigw.config.holder import ConfigHolder
from aigw.config.model import MetricsConfig
from aigw.events import Observers
from aigw.gateway.gateway import Gateway
from aigw.gateway.limits import fd_shortfall
from aigw.httpjson import TreqClient
from aigw.logging import build_observer
from aigw.readiness import Readiness
from aigw.reload import Reloader
from aigw.sealed.sealer import Sealer
from aigw.store.api import EX_IOERR, Store, StoreError
from aigw.store.factory import open_store
from aigw.systemd import Notifier, SystemdService
from aigw.tracing import build_tracer
from aigw.upstream.api import UpstreamTransport
from aigw.upstream.factory import build_transport
from aigw.web.app import GatewayApp
from aigw.web.mcp.endpoint import MCPTransport
from aigw.web.server import BoundedSite

if TYPE_CHECKING:
    from aigw.auth.browser_login import BrowserLogin
    from aigw.gateway.ended_sessions import EndedSessions
    from aigw.metrics import GatewayMetrics
    from aigw.upstream.user_authorization import UserAuthorization
    from aigw.upstream.user_links import UserLinks
    from aigw.web.elicitation_notices import CompletionNotices
    from aigw.web.upstream_oauth import UserOAuthPages

EX_OSERR = 71  # sysexits.h: cannot listen, for instance


class ListenerService(StreamServerEndpointService):
    """Listens on one endpoint; a failure to listen stops the daemon with a clear message,
    unless the listener is ``optional`` (then it is logged, and the daemon goes on)."""

    log = Logger()

    def __init__(
        self, description: str, reactor: Any, factory: IProtocolFactory, optional: bool = False
    ) -> None:
        self.optional = optional
        try:
            endpoint = serverFromString(reactor, description)
        except Exception as error:
            # Before logging starts (twistd builds services first): stderr, like
            # config errors.  The config check cannot see a systemd socket that
            # is missing: LISTEN_FDS exist only once systemd starts the daemon.
            sys.stderr.write(
                f"aigw: cannot listen on {description}: {_endpoint_failure(description, error)}\n"
            )
            raise SystemExit(EX_OSERR) from None
        super().__init__(endpoint, factory)  # type: ignore[no-untyped-call]
        self.description = description
        self.listening = False
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]
        except Exception as error:
            if self.optional:
                self.log.error(
                    "cannot listen on {endpoint}: {error}; going on without it",
                    endpoint=self.description,
                    error=error,
                )
                return
            self.log.critical(
                "cannot listen on {endpoint}: {error}", endpoint=self.description, error=error
            )
            raise SystemExit(EX_OSERR) from None
        assert self._waitingForPort is not None
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: Any) -> Any:
        self.listening = True
        self.log.info(
            "listening on {endpoint} ({address})",
            endpoint=self.description,
            address=port.getHost(),
        )
        return port


def _endpoint_failure(description: str, error: Exception) -> str:
    """Why an endpoint could not be built, in the operator's terms."""
    if description.startswith("systemd:"):
        # Twisted reads (and then clears) LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES.
        return (
            "no socket was handed over at that index (systemd passes them with "
            "LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES; see etc/systemd/aigw@.socket)"
        )
    return str(error) or type(error).__name__


class GatewayService(MultiService):
    """The whole daemon: parts built from ``config`` and started and stopped in order."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: Any,
        log_to_stderr: bool = True,
        handle_sigterm: bool = False,
        environ: Mapping[str, str] | None = None,
        store: Store | None = None,
    ) -> None:
        """``store``: used instead of opening the one in ``state_dir`` (tests)."""
        super().__init__()  # type: ignore[no-untyped-call]
        self._log_to_stderr = log_to_stderr
        self._handle_sigterm = handle_sigterm
        self.setName("aigw")  # type: ignore[no-untyped-call]
        self.config = config
        self.reactor = reactor
        self.readiness = Readiness()
        self.readiness.add("config", lambda: None)
        # One pool for talking to the authorization server (JWKS, metadata, introspection).
        self.http_pool = HTTPConnectionPool(reactor, persistent=True)
        self.http_pool.maxPersistentPerHost = 4
        # Every part reports what happens to these; the access log is one of them.
        self.observers = Observers()
        if config.logging.access_log:
            self.observers.add(AccessLogObserver())
        #: The audit trail's own file (``audit.file``), None without one.
        self.audit_file: AuditFile | None = None
        self.audit_trail = self._build_audit()
        self.authenticator, as_metadata, keys = self._build_auth()
        # The config in force; a reload swaps it, requests read it once when they start.
        self.config_holder = ConfigHolder(config)
        self.store = store or self._build_store()
        self.sealer = self._build_sealer()
        # user_oauth backends: aigw as their OAuth client, one per backend, and the links
        # that send users to authorize it (web/upstream_oauth.py serves them).  Only with
        # a store, which keeps users' tokens: without one none can be configured, and
        # none of that machinery is imported (docs/performance.md).
        self.user_links = self._build_user_links()
        #: The user_oauth backends in force, as the pages serve them; and those built for
        #: a reload not yet applied (``_follow_authorizations``).
        self.user_authorizations: dict[str, UserAuthorization] = {}
        self._built_authorizations: dict[str, UserAuthorization] = {}
        self.gateway = self._build_gateway()
        self.ended_sessions = self._share_ended_sessions()
        # SIGHUP: the file read again and put in force, whole, or nothing changed.
        self.reloader = Reloader(self.config_holder, self.gateway, self._transport, reactor)
        self.reloader.setServiceParent(self)  # type: ignore[no-untyped-call]
        self._follow_authorizations(True)
        self.reloader.subscribe(self._follow_authorizations)
        self.metrics = self._build_metrics()
        if self.metrics is not None:
            self.reloader.subscribe(self.metrics.config_reloaded)
        http_observer = self.metrics.http_observer(config.mcp_path) if self.metrics else None
        transport = MCPTransport(config, self.gateway, self.authenticator, reactor)
        self.completion_notices = notices = self._completion_notices(transport)
        pages = self._user_oauth_pages(keys, notices)
        app = GatewayApp(
            config, self.readiness, self.authenticator, transport, as_metadata, pages, notices
        )
        # A reload's auth settings and backend scopes: verifier, challenges, metadata.
        self.config_holder.subscribe(self.authenticator.follow)
        self.config_holder.subscribe(app.follow)
        self.site = BoundedSite(
            app.resource(),
            config.server,
            reactor,
            access_log=config.logging.access_log,
            on_request_finished=http_observer,
        )
        self.listeners = [ListenerService(d, reactor, self.site) for d in config.listen]
        for listener in self.listeners:
            listener.setServiceParent(self)  # type: ignore[no-untyped-call]
        self.readiness.add("listeners", self._listeners_ready)
        # systemd (Type=notify): READY=1 when /readyz would say ready, STATUS=, watchdog.
        environ = os.environ if environ is None else environ
        self.notifier = Notifier(environ)
        serving = f"serving on {', '.join(config.listen)}"
        self.systemd = SystemdService(
            self.notifier, reactor, self.readiness.report, serving, environ
        )
        self.systemd.setServiceParent(self)  # type: ignore[no-untyped-call]

    def _build_audit(self) -> AuditTrail | None:
        """The audit trail joins the observers; its file, when set, joins the service
        tree before anything that serves, so it is open before the first request."""
        audit = self.config.audit
        if not audit.enabled:
            return None
        if audit.file is None and self.config.logging.level not in ("debug", "info"):
            # Its events are info: with no file, a log above info drops every one of them,
            # after Twisted has built and published each (two a call, on the hot path).
            self.log.warn("audit trail off: no audit.file, and logging.level is above info")
            return None
        trail = AuditTrail(audit.include_arguments)
        self.observers.add(trail)
        if audit.file is not None:
            refuse = audit.on_write_error == "refuse"
            self.audit_file = AuditFile(audit.file, self.reactor, refuse)
            self.audit_file.setServiceParent(self)  # type: ignore[no-untyped-call]
            if refuse:
                # Fail closed: not ready (and audited requests refused, _build_gateway)
                # while the file cannot be written.
                self.readiness.add("audit_file", self.audit_file.unavailable)
        return trail

    def _build_auth(self) -> tuple[Authenticator, Any, KeyStore | None]:
        """The bearer check; its key store and metadata relay join the service tree."""
        authenticator, services, as_metadata = build_authenticator(
            self.config, self.reactor, self.http_pool, self.readiness, observer=self.observers
        )
        for service in services:
            service.setServiceParent(self)
        keys = next((s for s in services if isinstance(s, KeyStore)), None)
        return authenticator, as_metadata, keys

    def _build_user_links(self) -> UserLinks | None:
        """The sealed links and states of users' authorizations (None: no store)."""
        if self.store is None:
            return None
        from aigw.upstream.user_links import UserLinks

        return UserLinks(self.sealer, self.config.public_url, self.reactor, self._here)

    def _here(self) -> tuple[str, str | None]:
        """This process's name and where its peers reach it, as a link names them."""
        return self.gateway.process, self.config_holder.current.sessions.peer_url

    def _completion_notices(self, transport: MCPTransport) -> CompletionNotices | None:
        """Completed URL elicitations told where they were asked, across processes
        (through Redis with ``sessions.redis_url``, else over the peer hop of
        ``transport``); with the pages, whenever there are links."""
        if self.user_links is None:
            return None
        from aigw.web.elicitation_notices import CompletionNotices

        shared = None
        if self.ended_sessions is not None:  # sessions.redis_url: told through Redis
            from aigw.gateway.elicitation_completions import ElicitationCompletions

            shared = ElicitationCompletions(self.gateway, self.ended_sessions)
        return CompletionNotices(self.gateway, transport.hop, self.sealer, shared)

    def _user_oauth_pages(
        self, keys: KeyStore | None, notices: CompletionNotices | None
    ) -> UserOAuthPages | None:
        """The pages of users' authorizations, served whenever users' tokens can be kept
        (a reload may add a user_oauth backend, never a store)."""
        if self.user_links is None or notices is None:
            return None
        from aigw.web.upstream_oauth import UserOAuthPages

        return UserOAuthPages(
            self.user_links, self.user_authorizations, self._login(keys), notices.completed
        )

    def _login(self, keys: KeyStore | None) -> BrowserLogin | None:
        """Who opens a user_oauth link, checked at ``auth.issuer`` (None: ``auth: none``)."""
        auth = self.config.auth
        if auth is None or keys is None or self.store is None or self.user_links is None:
            return None
        from aigw.auth.browser_login import BrowserLogin

        http = TreqClient(self.reactor, self.http_pool, auth.http_timeout)
        return BrowserLogin(auth, keys, self.store, self.user_links, http, self.reactor)

    def _build_store(self) -> Store | None:
        """The store in ``state_dir`` (pins, users' tokens), its schema ready, or None.

        Opened here, before the reactor runs; a file that cannot be opened stops the
        daemon with a message naming it (stderr: logging has not started yet).
        """
        try:
            return open_store(self.config, self.reactor)
        except StoreError as error:
            sys.stderr.write(f"aigw: state_dir: {error}\n")
            raise SystemExit(EX_IOERR) from None

    def _build_sealer(self) -> Sealer:
        """The sealing key, derived once, here, at start: sessions, cursors, links."""
        sessions = self.config.sessions
        if sessions.secret is None:
            self.log.warn(
                "sessions.secret_file is not set: a random key seals sessions, so they will not "
                "survive a restart nor work across processes"
            )
            return Sealer.random()
        return Sealer(sessions.secret, sessions.old_secrets)

    def _build_gateway(self) -> Gateway:
        """The router, with one transport per backend."""
        sealer = self.sealer
        transports = {b.name: self._transport(b) for b in self.config.backends}
        gateway = Gateway(
            self.config_holder,
            self.reactor,
            sealer,
            HeldAccessRules(self.config_holder),
            transports,
            self.observers,
            record_arguments=self.audit_trail is not None and self.audit_trail.include_arguments,
            tracer=build_tracer(self.config.tracing),
            store=self.store,
            audit_gate=self._audit_gate(),
        )
        gateway.setServiceParent(self)  # type: ignore[no-untyped-call]
        return gateway

    def _audit_gate(self) -> Callable[[], str | None] | None:
        """With ``audit.on_write_error: refuse``, why the audit file cannot be written."""
        if self.audit_file is None or not self.audit_file.refuse:
            return None
        return self.audit_file.unavailable

    def _share_ended_sessions(self) -> EndedSessions | None:
        """With ``sessions.redis_url``, a session ended by DELETE is ended on every
        process (``gateway/ended_sessions.py``, imported only then), and a held GET
        stream is probed in whichever process holds it; a restart-only key
        (``reload.py``): the subscription lives as long as the process."""
        sessions = self.config.sessions
        if sessions.redis_url is None:
            return None
        from aigw.gateway.ended_sessions import EndedSessions

        codec = self.gateway.sessions.codec
        ended = EndedSessions(
            codec, sessions.redis_url, self.reactor, sessions.redis_timeout, sessions.redis_ca_file
        )
        self.gateway.sessions.share_end = ended.announce
        self.readiness.add("ended_sessions", ended.unready)
        # The same subscription carries the probes of held GET streams, so a refused
        # GET has its session's stream probed wherever it is held, and the word that a
        # session's GET stream started, so another process's linger of it ends.
        from aigw.gateway.shared_stream_probes import SharedStreamProbes

        SharedStreamProbes(
            self.gateway.stream_probes, self.gateway.feeds, ended, self.gateway.process
        )
        ended.setServiceParent(self)  # type: ignore[no-untyped-call]
        return ended

    def _transport(self, backend: BackendConfig) -> UpstreamTransport:
        """How aigw talks to one backend (at start, and for a reload's new backends)."""
        authorization = None
        if backend.auth is not None and backend.auth.user_oauth is not None:
            if self.store is None or self.user_links is None:
                raise ValueError(f"backend {backend.name!r}: user_oauth needs a token store")
            from aigw.upstream.user_authorization import build_user_authorization

            authorization = build_user_authorization(
                backend, self.store, self.user_links, self.reactor
            )
            self._built_authorizations[backend.name] = authorization
        return build_transport(backend, self.reactor, self.observers, authorization)

    def _follow_authorizations(self, applied: bool) -> None:
        """A reload's outcome (and the start's): the pages serve the user_oauth backends
        in force, each with the authorization its transport was built with; a backend
        removed, or no longer ``user_oauth``, is no longer served (its links answer 400).
        A refused reload changes nothing: what it built is dropped."""
        built, self._built_authorizations = self._built_authorizations, {}
        if not applied:
            return
        current = {
            b.name
            for b in self.config_holder.current.backends
            if b.auth is not None and b.auth.user_oauth is not None
        }
        for name in [name for name in self.user_authorizations if name not in current]:
            del self.user_authorizations[name]
        self.user_authorizations.update(built)

    def _build_metrics(self) -> GatewayMetrics | None:
        """Prometheus metrics (``metrics``): told every event, reading the gauges below
        at each scrape, served on a listener of their own that fails like the others."""
        if not self.config.metrics.enabled:
            return None  # and prometheus_client is never imported (docs/performance.md)
        from aigw.metrics import GatewayMetrics, metrics_site

        backends = [b.name for b in self.config.backends]
        # A tool is a label once its backend listed it (its selector allowing it).
        metrics = GatewayMetrics(
            backends, self.gateway.catalog.lists_tool, seconds=self.reactor.seconds
        )
        self.observers.add(metrics)
        limits, pool = self.gateway.stream_limits, self.gateway.sessions.pool
        metrics.watch_streaming_sessions(lambda: len(limits.per_session))
        metrics.watch_pooled_upstream_sessions(lambda: len(pool))
        metrics.watch_open_streams(lambda: limits.total)
        gateway = self.gateway
        metrics.watch_limiter_store_failures(lambda: gateway.limiter.store_failures.count)
        ended = self.ended_sessions
        metrics.watch_session_store_failures(
            lambda: ended.failures.count if ended is not None else 0
        )
        metrics.watch_linger_dropped_messages(lambda: gateway.feeds.dropped)
        metrics.watch_stream_probes(lambda: gateway.stream_probes.outcomes)
        metrics.watch_refused_event_ids(lambda: gateway.refused_event_ids.count)
        audit_file = self.audit_file
        if audit_file is not None:
            metrics.watch_audit_file(lambda: audit_file.errors, audit_file.unavailable)
        site = metrics_site(metrics.registry, self.reactor)
        # A listener the file names must listen; the default one, which nobody asked
        # for, must not stop the gateway because another process holds its port.
        listen = self.config.metrics.listen
        default = attrs.fields(MetricsConfig).listen.default
        listener = ListenerService(listen, self.reactor, site, optional=listen == default)
        listener.setServiceParent(self)  # type: ignore[no-untyped-call]
        return metrics

    def _listeners_ready(self) -> str | None:
        waiting = [listener.description for listener in self.listeners if not listener.listening]
        return f"not listening yet: {', '.join(waiting)}" if waiting else None

    def setServiceParent(self, parent: Any) -> None:
        """Under twistd in the foreground, log to stderr in the configured format.

        twistd asks the application for an ``ILogObserver`` component before
        falling back to its own file logger; a daemonized twistd with
        ``--logfile`` keeps its own.
        """
        super().setServiceParent(parent)  # type: ignore[no-untyped-call]
        if isinstance(parent, Componentized) and self._log_to_stderr:
            observer = build_observer(self.config.logging, sys.stderr)
            parent.setComponent(ILogObserver, observer)

    def startService(self) -> None:
        if self.config.auth is None:
            self.log.warn(
                "auth: none - the MCP endpoint is open to anyone who can reach it; "
                "for local development only"
            )
        for warning in self.config.warnings:
            self.log.warn("{warning}", warning=located(self.config.source, warning))
        self.log.info(
            "aigw {version} serving {resource} for {count} backend(s)",
            version=__version__,
            resource=self.config.resource_url,
            count=len(self.config.backends),
        )
        self._check_fd_limit()
        super().startService()  # type: ignore[no-untyped-call]
        if self._handle_sigterm:
            # After the reactor installed its own handlers ("during startup").
            self.reactor.callWhenRunning(signal.signal, signal.SIGTERM, self._sigterm)
            # At once: SIGHUP's and SIGUSR1's default action is to exit, and no reactor
            # handles them.
            signal.signal(signal.SIGHUP, self._sighup)
            signal.signal(signal.SIGUSR1, self._sigusr1)

    def _check_fd_limit(self) -> None:
        """Warn when the open-file limit cannot hold every stream slot (limits.py)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        needed = fd_shortfall(self.config.server.max_streams, len(self.config.backends), soft)
        if needed is not None:
            self.log.warn(
                "the open-file limit ({soft}) is below the {needed} descriptors that "
                "server.max_streams={streams} streams over {backends} backend(s) may need: "
                "raise it (LimitNOFILE, ulimit -n) or lower server.max_streams",
                soft=soft,
                needed=needed,
                streams=self.config.server.max_streams,
                backends=len(self.config.backends),
            )

    def _sigterm(self, signum: int, frame: object) -> None:
        """SIGTERM is the normal way systemd stops us: drain, then exit 0.

        Twisted's own handler re-raises the signal after shutdown, so the
        process would end "killed by SIGTERM"; a clean stop exits 0 instead.
        """
        self.log.info("SIGTERM received")
        self.reactor.callFromThread(self.reactor.stop)

    def _sighup(self, signum: int, frame: object) -> None:
        """SIGHUP is ``systemctl reload`` (the units' ExecReload=): reopen the audit
        file, and reload the config file.

        Its default action would end the daemon.  The reload (``reload.py``) runs
        on the reactor thread between RELOADING=1 and READY=1 (sd_notify(3)).
        """
        self.reactor.callFromThread(self._reload_requested)

    def _sigusr1(self, signum: int, frame: object) -> None:
        """SIGUSR1 reopens the audit file and does nothing else: what logrotate's
        ``postrotate`` sends (debian/aigw.logrotate), as nginx's USR1 reopens its logs.
        A reload would do it too, but would also put in force a config file an
        operator was half way through editing."""
        self.reactor.callFromThread(self._reopen_requested)

    def _reopen_requested(self) -> None:
        if self.audit_file is not None:
            self.audit_file.reopen()

    def _reload_requested(self) -> None:
        self.systemd.reloading()
        # Whatever becomes of the reload: a rotated file is followed even when the
        # config file has a problem.
        self._reopen_requested()
        self.reloader.reload()
        self.systemd.reloaded()

    def stopService(self) -> Deferred[None]:
        self.systemd.stopping()  # before draining: systemd shows "deactivating" from now on
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        """Stop accepting, drain within the bound, then stop everything else."""
        self.log.info("stopping: no new connections, draining in-flight requests")
        await DeferredList(
            [listener.stopService() for listener in self.listeners]  # type: ignore[no-untyped-call]
        )
        self.gateway.close_streams()
        await self.site.drain(self.config.server.shutdown_timeout)
        others = [s for s in self if s not in self.listeners]
        await DeferredList([d for d in (s.stopService() for s in reversed(others)) if d])
        if self.store is not None:
            await self.store.close()
        await self.http_pool.closeCachedConnections()
        self.running = False
        self.log.info("stopped")
