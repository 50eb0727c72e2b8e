"""TLS (pyOpenSSL, Twisted's TLS, service_identity), loaded only once something needs it.

Twisted imports pyOpenSSL as soon as its reactor, endpoints or web client are imported,
whether or not anything speaks TLS: about 2.5 MiB of a started gateway
(docs/performance.md, "A leaner, faster process").  ``twistd aigw`` therefore holds it
back (:func:`hold_back`) before it reads its config; Twisted then runs as it does
without its ``tls`` extra.  It comes back (:func:`allow`) when:

* a listener's endpoint type is not a plain one (``ssl:`` and plugin types): the config's
  validation of the string lets its parser import it, before the reactor is installed,
  so the reactor has its TLS listening (``IReactorSSL``) as usual;
* aigw makes its first TLS client connection (an ``https`` backend, authorization
  server, key set or token endpoint), at start or after a reload that adds one: every
  one is built here (:func:`client_endpoint`, :class:`AgentEndpoints`), never by the
  parts of Twisted that decided at their import whether TLS exists (``wrapClientTLS``,
  ``BrowserLikePolicyForHTTPS``, ``Agent``'s default endpoints, treq's module
  functions; ruff's banned-api keeps them out of aigw).

Shared: imports no layer (``.importlinter``), and nothing at its own import that would
import pyOpenSSL (``twisted.internet.endpoints`` does): ``twistd aigw`` imports it first.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from aigw.lru import LRU

if TYPE_CHECKING:
    from twisted.web.client import URI

#: The package every TLS import of Twisted goes through first.
_PYOPENSSL = "OpenSSL"
#: Hosts whose TLS settings one ``AgentEndpoints`` keeps.
CREATORS_MAX = 64
#: Endpoint types that listen without TLS; any other may need it to parse or listen.
PLAIN_ENDPOINT_TYPES = frozenset({"tcp", "tcp6", "unix", "systemd"})


def hold_back() -> bool:
    """Make pyOpenSSL unimportable until :func:`allow`, if nothing has imported it or
    installed the reactor yet (a reactor installed without it could never listen with
    TLS).  ``None`` in ``sys.modules`` is the import system's own mark for a module that
    cannot be imported: Twisted's ``try: import OpenSSL`` then takes its no-TLS branch.
    Whether it held it back."""
    if _PYOPENSSL in sys.modules or "twisted.internet.reactor" in sys.modules:
        return False
    sys.modules[_PYOPENSSL] = None  # type: ignore[assignment]
    return True


def allow() -> None:
    """Let TLS be imported again (a no-op unless :func:`hold_back` held it)."""
    if _PYOPENSSL in sys.modules and sys.modules[_PYOPENSSL] is None:
        del sys.modules[_PYOPENSSL]


def held_back() -> bool:
    """Whether this process is running without TLS until something needs it."""
    return _PYOPENSSL in sys.modules and sys.modules[_PYOPENSSL] is None


def allow_for_endpoint(description: str) -> None:
    """Before a server endpoint string is parsed: TLS for any type but the plain ones."""
    if description.split(":", 1)[0] not in PLAIN_ENDPOINT_TYPES:
        allow()


def client_creator(host: str, ca_file: str | None = None) -> IOpenSSLClientConnectionCreator:
    """Verified TLS to ``host`` (service_identity checks the name or address in the
    certificate), trusting the system's roots, or only the certificates in ``ca_file``
    (PEM, one or more): what ``BrowserLikePolicyForHTTPS`` gives, built after TLS is
    loaded rather than by a class that decided at its import whether it could be."""
    allow()
    from twisted.internet import ssl

    if ca_file is None:
        return ssl.optionsForClientTLS(host)
    with open(ca_file, "rb") as handle:
        pem = handle.read()
    marker = b"-----BEGIN CERTIFICATE-----"
    certificates = [ssl.Certificate.loadPEM(marker + part) for part in pem.split(marker)[1:]]
    return ssl.optionsForClientTLS(host, trustRoot=ssl.trustRootFromCertificates(certificates))


@implementer(IStreamClientEndpoint)
class TLSEndpoint:
    """TLS over ``endpoint``, as ``wrapClientTLS`` makes it but with aigw's reactor as
    the clock of TLS's write buffering (``wrapClientTLS`` takes no clock in the Twisted
    releases aigw supports, so TLS would use the global reactor)."""

    def __init__(
        self,
        creator: IOpenSSLClientConnectionCreator,
        endpoint: IStreamClientEndpoint,
        clock: IReactorTime,
    ) -> None:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        self._wrap = TLSMemoryBIOFactory  # imported here: a broken install fails at start
        self._creator = creator
        self._endpoint = endpoint
        self._clock = clock

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        tls = self._wrap(self._creator, True, protocolFactory, clock=self._clock)
        connecting: Deferred[Any] = self._endpoint.connect(tls)
        return connecting.addCallback(lambda protocol: protocol.wrappedProtocol)


def client_endpoint(
    endpoint: IStreamClientEndpoint, host: str, clock: IReactorTime, ca_file: str | None = None
) -> TLSEndpoint:
    """``endpoint`` with verified TLS to ``host`` over it (see :func:`client_creator`)."""
    return TLSEndpoint(client_creator(host, ca_file), endpoint, clock)


def tcp_endpoint(
    reactor: Any, host: str, port: int, connect_timeout: float
) -> IStreamClientEndpoint:
    """An address connects as it is; a name is resolved at each connect (in
    Twisted's resolver threads) and its addresses tried in turn (RFC 8305)."""
    from twisted.internet.endpoints import (
        HostnameEndpoint,
        TCP4ClientEndpoint,
        TCP6ClientEndpoint,
    )

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return HostnameEndpoint(reactor, host.encode("idna"), port, timeout=connect_timeout)
    kind = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
    return kind(reactor, host, port, timeout=connect_timeout)


@implementer(IAgentEndpointFactory)
class AgentEndpoints:
    """The endpoints of an ``Agent`` (``Agent.usingEndpointFactory``): what Twisted's
    default gives (a ``HostnameEndpoint``, verified TLS for ``https`` with the system's
    roots, or only ``ca_file``'s), with the TLS built by :func:`client_endpoint`, and
    an address connected as it is (:func:`tcp_endpoint`)."""

    def __init__(self, reactor: Any, connect_timeout: float, ca_file: str | None = None) -> None:
        self._reactor = reactor
        self._connect_timeout = connect_timeout
        self._ca_file = ca_file
        #: The TLS settings of each host, made once: ``ca_file`` is read and parsed
        #: then, not for every connection (a pool that keeps none makes one a request).
        #: Hosts come from the config and metadata documents, hence the bound.
        self._creators: LRU[str, IOpenSSLClientConnectionCreator] = LRU(CREATORS_MAX)

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        if uri.scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
        host = uri.host.decode("ascii")  # URI has it IDNA-encoded; anything else: ValueError
        endpoint = tcp_endpoint(self._reactor, host, uri.port, self._connect_timeout)
        if uri.scheme != b"https":
            return endpoint
        creator = self._creators.get(host)
        if creator is None:
            creator = client_creator(host, self._ca_file)
            self._creators.put(host, creator)
        return TLSEndpoint(creator, endpoint, self._reactor)
