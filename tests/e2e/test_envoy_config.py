"""An Envoy AI Gateway standalone file, run unchanged by ``twistd -n aigw --config``, against
the real authorization server (``e2e/as.mjs``) and a real upstream (``pyserver``), driven by
the official MCP Python SDK client through OAuth.

The file maps: the Gateway's listener, the MCPRoute's path, its OAuth (issuer, remote JWKS,
protected resource metadata, claims to headers), its authorization rules (default deny, a
scope-gated rule per tool), a Backend by IP and port, and an API key from a Secret.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import urllib.parse
from collections.abc import Iterator

import pytest

from .aigw import Gateway, run_gateway
from .harness.authserver import AuthServer
from .harness.oauth_client import MemoryTokenStorage, connect
from .harness.processes import LOG_DIR, free_port
from .harness.results import text_of
from .harness.upstreams import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

API_KEY = "py-api-key-1"


def envoy_file(port: int, issuer: str, jwks_uri: str, upstream_url: str) -> str:
    upstream = urllib.parse.urlsplit(upstream_url)
    key = base64.b64encode(API_KEY.encode()).decode()
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: e2e
spec:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: e2e
spec:
  gatewayClassName: e2e
  listeners:
    - name: http
      protocol: HTTP
      port: {port}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: MCPRoute
metadata:
  name: e2e
spec:
  parentRefs:
    - name: e2e
      kind: Gateway
      group: gateway.networking.k8s.io
  path: /mcp
  backendRefs:
    - name: py
      kind: Backend
      group: gateway.envoyproxy.io
      path: {upstream.path}
      toolSelector:
        include: [echo, whoami-headers, slow]
      securityPolicy:
        apiKey:
          secretRef:
            name: py-key
          header: X-Api-Key
  securityPolicy:
    oauth:
      issuer: {issuer}
      jwks:
        remoteJWKS:
          uri: {jwks_uri}
      protectedResourceMetadata:
        resource: http://127.0.0.1:{port}/mcp
        scopesSupported: ["mcp:tools", "tools:call"]
      claimToHeaders:
        - claim: sub
          header: X-User
    authorization:
      defaultAction: Deny
      rules:
        - source:
            jwt:
              scopes: ["tools:call"]
          target:
            tools:
              - backend: py
                tool: echo
              - backend: py
                tool: whoami-headers
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: py
spec:
  endpoints:
    - ip:
        address: {upstream.hostname}
        port: {upstream.port}
---
apiVersion: v1
kind: Secret
metadata:
  name: py-key
type: Opaque
data:
  apiKey: {key}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata:
  name: e2e
spec:
  logging:
    level:
      default: error
"""


@pytest.fixture(scope="module")
def gateway(auth_server: AuthServer, pyserver: Upstream) -> Iterator[Gateway]:
    port = free_port()
    directory = tempfile.mkdtemp(prefix="aigw-envoy-", dir=LOG_DIR)
    path = os.path.join(directory, "envoy.yaml")
    with open(path, "w") as handle:
        handle.write(envoy_file(port, auth_server.issuer, auth_server.jwks_uri, pyserver.url))
    started = run_gateway(path, port, name="aigw-envoy")
    try:
        yield started
    finally:
        started.stop()


async def test_a_user_with_the_rules_scope_lists_and_calls_the_allowed_tools(
    gateway: Gateway,
) -> None:
    async with connect(gateway.url, "alice", storage=MemoryTokenStorage()) as client:
        listed = await client.list_tools()
        assert sorted(tool.name for tool in listed.tools) == ["py__echo", "py__whoami-headers"]
        result = await client.call_tool("py__echo", {"text": "from an Envoy file"})
        assert text_of(result) == "from an Envoy file"
        headers = json.loads(text_of(await client.call_tool("py__whoami-headers", {})))
    assert headers["x-api-key"] == API_KEY  # securityPolicy.apiKey, from the Secret
    assert headers["x-user"] == "alice"  # oauth.claimToHeaders
    assert "authorization" not in headers  # the user's token never goes upstream


async def test_a_user_without_it_gets_the_default_deny(gateway: Gateway) -> None:
    async with connect(gateway.url, "bob", storage=MemoryTokenStorage()) as client:
        listed = await client.list_tools()
        assert listed.tools == []
        with pytest.raises(Exception, match="not allowed"):
            await client.call_tool("py__echo", {"text": "no"})
