"""``aigw run --mcp-config`` / ``--mcp-json``: an MCP client's mcpServers file, served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.e2e.harness.upstreams import Upstream, start_pyserver
from tests.process.helpers import (
    BIN,
    EX_CONFIG,
    free_port,
    open_session,
    post,
    run_aigw,
    serving,
)

STDIO_SERVER = str(Path(__file__).resolve().parents[1] / "e2e" / "upstreams" / "stdio_server.py")


class McpConfigTests(TestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def start_upstream(self) -> Upstream:
        upstream = start_pyserver()
        self.addCleanup(upstream.stop)
        return upstream

    def test_run_mcp_json_serves_the_upstream_tools_and_warns_of_auth_none(self) -> None:
        upstream = self.start_upstream()
        servers = json.dumps({"mcpServers": {"demo": {"type": "http", "url": upstream.url}}})
        port = free_port()
        listen = f"tcp:{port}:interface=127.0.0.1"
        argv = [str(BIN / "aigw"), "run", "--mcp-json", servers, "--listen", listen]
        with serving(argv, port, self.directory) as served:
            self.assertEqual(served.health, {"status": "alive"})
            url = f"http://127.0.0.1:{port}/mcp"
            session = open_session(url)
            self.assertIsNotNone(session)
            _, answers = post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
        self.assertEqual(served.code, 0, served.output)
        (answer,) = answers
        names = [tool["name"] for tool in answer["result"]["tools"]]  # type: ignore[index]
        self.assertIn("demo__echo", names)
        self.assertIn("WARNING: no --issuer: running with auth: none", served.output)
        self.assertNotIn("Traceback", served.output)

    def test_run_mcp_config_with_a_stdio_server_lists_and_calls_its_tools(self) -> None:
        """An MCP client's file with a stdio server, run as it is: the server becomes a
        child process of aigw (MCP basic/transports "stdio")."""
        servers = {"mcpServers": {"local": {"command": sys.executable, "args": [STDIO_SERVER]}}}
        path = os.path.join(self.directory, "servers.json")
        with open(path, "w") as handle:
            json.dump(servers, handle)
        port = free_port()
        url = f"http://127.0.0.1:{port}/mcp"
        listen = f"tcp:{port}:interface=127.0.0.1"
        argv = [str(BIN / "aigw"), "run", "--mcp-config", path, "--listen", listen]
        with serving(argv, port, self.directory) as served:
            session = open_session(url)
            _, listed = post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
            call = {"name": "local__echo", "arguments": {"text": "over stdio"}}
            _, called = post(
                url,
                {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call},
                session,
            )
        self.assertEqual(served.code, 0, served.output)
        names = [tool["name"] for tool in listed[-1]["result"]["tools"]]  # type: ignore[index]
        self.assertIn("local__echo", names)
        self.assertEqual(
            called[-1]["result"]["content"][0]["text"],
            "over stdio",  # type: ignore[index]
        )
        self.assertNotIn("Traceback", served.output)

    def test_a_non_loopback_listener_without_issuer_is_refused_with_78(self) -> None:
        servers = json.dumps({"mcpServers": {"demo": {"url": "http://127.0.0.1:9/mcp"}}})
        for argv in (
            [
                str(BIN / "aigw"),
                "run",
                "--mcp-json",
                servers,
                "--listen",
                "tcp:1975:interface=0.0.0.0",
            ],
            [str(BIN / "twistd"), "-n", "aigw", "--mcp-json", servers, "--listen", "tcp:1975"],
        ):
            result = subprocess.run(argv, capture_output=True, timeout=60, cwd=self.directory)
            self.assertEqual(result.returncode, EX_CONFIG, result)
            self.assertIn("--listen: ", result.stderr.decode())
            self.assertIn("not loopback-only", result.stderr.decode())

    def test_problems_of_the_file_name_its_lines_and_exit_78(self) -> None:
        path = os.path.join(self.directory, "mcp.json")
        with open(path, "w") as handle:
            handle.write(
                '{"mcpServers": {\n  "a": {"type": "sse", "url": "http://x/sse"},\n'
                '  "b.c": {"url": "http://127.0.0.1:9/mcp"}\n}}\n'
            )
        for command in ("check", "run", "convert"):
            result = run_aigw(command, "--mcp-config", path, cwd=self.directory)
            self.assertEqual(result.returncode, EX_CONFIG, result)
            err = result.stderr.decode()
            self.assertIn(f"{path}: 2 problems:", err)
            self.assertIn("line 2: mcpServers.a.type: type 'sse'", err)
            self.assertIn("line 3: mcpServers.b.c: server name 'b.c'", err)

    def test_convert_prints_native_yaml_that_check_accepts(self) -> None:
        path = os.path.join(self.directory, "mcp.json")
        with open(path, "w") as handle:
            json.dump({"mcpServers": {"demo": {"url": "http://127.0.0.1:9/mcp"}}}, handle)
        result = run_aigw("convert", "--mcp-config", path)
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        native = os.path.join(self.directory, "aigw.yaml")
        with open(native, "wb") as handle:
            handle.write(result.stdout)
        self.assertIn(b"  - name: demo\n", result.stdout)
        check = run_aigw("check", native)
        self.assertEqual(check.returncode, 0, check.stderr.decode())
        self.assertIn(b"backends: demo", check.stdout)

    def test_a_config_file_and_mcp_config_together_are_a_usage_error(self) -> None:
        result = run_aigw("run", "aigw.yaml", "--mcp-json", "{}", cwd=self.directory)
        self.assertEqual(result.returncode, 2, result)
        self.assertIn("not both", result.stderr.decode())
