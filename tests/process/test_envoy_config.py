"""An Envoy AI Gateway standalone file, run unchanged: ``twistd aigw --config``, ``aigw
check``, ``aigw convert``."""

from __future__ import annotations

import os
import urllib.parse

from twisted.trial.unittest import TestCase

from tests.e2e.harness.upstreams import start_pyserver
from tests.process.helpers import (
    BIN,
    EX_CONFIG,
    ROOT,
    free_port,
    open_session,
    post,
    run_aigw,
    serving,
)

FIXTURES = ROOT / "tests" / "unit" / "config" / "fixtures" / "envoy"
ENV = {**os.environ, "CONTEXT7_API_KEY": "c7-key"}


def envoy_file(port: int, upstream_url: str) -> str:
    """A Gateway on ``port`` and one backend at ``upstream_url``, without a security policy."""
    parts = urllib.parse.urlsplit(upstream_url)
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  listeners: [{{name: http, protocol: HTTP, port: {port}}}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: MCPRoute
metadata: {{name: route}}
spec:
  parentRefs: [{{name: gw}}]
  backendRefs:
    - name: demo
      kind: Backend
      group: gateway.envoyproxy.io
      path: {parts.path}
      toolSelector:
        include: [echo]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: demo}}
spec:
  endpoints: [{{ip: {{address: {parts.hostname}, port: {parts.port}}}}}]
"""


class EnvoyConfigTests(TestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def test_twistd_serves_the_envoy_files_backend(self) -> None:
        upstream = start_pyserver()
        self.addCleanup(upstream.stop)
        port = free_port()
        path = os.path.join(self.directory, "envoy.yaml")
        with open(path, "w") as handle:
            handle.write(envoy_file(port, upstream.url))
        argv = [str(BIN / "twistd"), "-n", "--pidfile=", "aigw", "--config", path]
        with serving(argv, port, self.directory) as served:
            url = f"http://127.0.0.1:{port}/mcp"
            session = open_session(url)
            _, answers = post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
        self.assertEqual(served.code, 0, served.output)
        (answer,) = answers
        names = [tool["name"] for tool in answer["result"]["tools"]]  # type: ignore[index]
        self.assertEqual(names, ["demo__echo"])

    def test_check_accepts_the_demo_shaped_file(self) -> None:
        result = run_aigw("check", str(FIXTURES / "keycloak.yaml"), cwd=self.directory, env=ENV)
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        self.assertIn(b"resource: http://127.0.0.1:1975/mcp", result.stdout)
        self.assertIn(b"auth: http://localhost:8080/realms/master", result.stdout)
        self.assertIn(b"backends: kiwi, context7, docs", result.stdout)

    def test_convert_prints_the_golden_yaml_and_check_accepts_it(self) -> None:
        result = run_aigw("convert", str(FIXTURES / "keycloak.yaml"), cwd=self.directory, env=ENV)
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        golden = (FIXTURES / "keycloak.native.yaml").read_text()
        converted = result.stdout.decode().replace(f"{FIXTURES}/", "")
        self.assertEqual(converted, golden)
        native = os.path.join(self.directory, "aigw.yaml")
        with open(native, "wb") as handle:
            handle.write(result.stdout)
        check = run_aigw("check", native, cwd=self.directory, env=ENV)
        self.assertEqual(check.returncode, 0, check.stderr.decode())

    def test_a_field_aigw_cannot_honour_exits_78_naming_it(self) -> None:
        path = os.path.join(self.directory, "envoy.yaml")
        text = envoy_file(1975, "http://127.0.0.1:9/mcp").replace(
            "      toolSelector:", "      forwardHeaders: [{name: X-Token}]\n      toolSelector:"
        )
        with open(path, "w") as handle:
            handle.write(text)
        for argv in (("check", path), ("convert", path), ("run", path)):
            with self.subTest(argv=argv):
                result = run_aigw(*argv, cwd=self.directory, env=ENV)
                self.assertEqual(result.returncode, EX_CONFIG, result)
                self.assertIn(
                    "line 17: MCPRoute/route.spec.backendRefs[0].forwardHeaders: "
                    "forwardHeaders: aigw never forwards",
                    result.stderr.decode(),
                )
