"""The daemon as users start it: twistd plugin, `aigw run`, `aigw check`, SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx2
from twisted.trial.unittest import TestCase

from tests.e2e.aigw import INITIALIZE as INITIALIZE_2025_11_25
from tests.e2e.aigw import write_session_key
from tests.e2e.harness.upstreams import start_pyserver
from tests.process.helpers import (
    ACCEPT,
    BIN,
    EX_CONFIG,
    ROOT,
    free_port,
    run_aigw,
    serving,
    stop,
    wait_for_health,
    write_config,
)


class PluginDiscoveryTests(TestCase):
    def test_twistd_help_lists_aigw(self) -> None:
        """The plugin in twisted/plugins is found from the installed package, from any cwd."""
        out = subprocess.run(
            [str(BIN / "twistd"), "--help"],
            capture_output=True,
            cwd=tempfile.gettempdir(),
            timeout=60,
            check=True,
        ).stdout.decode()
        self.assertIn("aigw", out)

    def test_twistd_aigw_help_documents_config(self) -> None:
        out = subprocess.run(
            [str(BIN / "twistd"), "aigw", "--help"],
            capture_output=True,
            timeout=60,
            cwd=tempfile.gettempdir(),
        ).stdout.decode()
        self.assertIn("--config", out)

    def test_stale_dropin_cache_does_not_hide_the_plugin(self) -> None:
        """A corrupt or outdated dropin.cache next to the plugin is rebuilt, not trusted."""
        plugins = Path(self.mktemp()) / "twisted" / "plugins"
        plugins.mkdir(parents=True)
        shutil.copy(ROOT / "twisted" / "plugins" / "aigw_plugin.py", plugins)
        (plugins / "dropin.cache").write_bytes(b"\x80\x04garbage that is not a pickle")
        old = time.time() - 3600
        os.utime(plugins / "aigw_plugin.py", (old, old))
        env = dict(os.environ, PYTHONPATH=str(plugins.parent.parent))
        out = subprocess.run(
            [str(BIN / "twistd"), "--help"],
            capture_output=True,
            env=env,
            timeout=60,
            cwd=tempfile.gettempdir(),
        ).stdout.decode()
        self.assertIn("aigw", out)


class DaemonTests(TestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def test_twistd_serves_healthz_and_exits_0_on_sigterm(self) -> None:
        port = free_port()
        config = write_config(self.directory, port)
        argv = [str(BIN / "twistd"), "-n", "--pidfile=", "aigw", "--config", config]
        with serving(argv, port, self.directory) as served:
            self.assertEqual(served.health, {"status": "alive"})
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
                ready = json.loads(reply.read())
            self.assertTrue(ready["ready"], ready)
        self.assertEqual(served.code, 0, served.output)
        self.assertIn("GET /healthz 200", served.output)
        self.assertNotIn("Traceback", served.output)

    def test_sighup_reloads_the_rewritten_file_while_serving(self) -> None:
        """``systemctl reload aigw``: a backend added to the file is in force, /readyz
        stays 200 throughout, and a broken file afterwards changes nothing."""
        port = free_port()
        config = write_config(self.directory, port)
        out = open(os.path.join(self.directory, "out.log"), "wb")  # noqa: SIM115
        self.addCleanup(out.close)
        process = subprocess.Popen(
            [str(BIN / "twistd"), "-n", "--pidfile=", "aigw", "--config", config],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )

        def log() -> str:
            with open(os.path.join(self.directory, "out.log")) as handle:
                return handle.read()

        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
                return bool(json.loads(reply.read())["ready"])

        def after_sighup(text: str) -> None:
            process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while text not in log():
                self.assertLess(time.monotonic(), deadline, f"never logged {text!r}: {log()}")
                self.assertTrue(ready())
                time.sleep(0.05)

        try:
            wait_for_health(port, process)
            write_config(self.directory, port, "  - name: added\n    url: http://127.0.0.1:9/x\n")
            after_sighup("backends added added, removed none, changed none")
            self.assertTrue(ready())
            write_config(self.directory, port, "  - name: broken\n    url: nope\n")
            after_sighup("reload failed: the file has problems; the running config stays")
            self.assertTrue(ready())
        finally:
            code = stop(process)
        self.assertEqual(code, 0, log())
        self.assertIn("line 10: backends[1].url", log())
        self.assertNotIn("Traceback", log())

    def test_aigw_run_logs_journal_priorities_under_systemd(self) -> None:
        port = free_port()
        config = write_config(self.directory, port)
        env = dict(os.environ, JOURNAL_STREAM="8:12345")
        process = subprocess.Popen(
            [str(BIN / "aigw"), "run", config],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.directory,
        )
        try:
            wait_for_health(port, process)
        finally:
            code = stop(process)
        self.assertEqual(code, 0)
        lines = (process.stderr.read() if process.stderr else b"").decode().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[0-7]>")
        self.assertTrue(any(line.startswith("<4>") and "auth: none" in line for line in lines))

    def test_config_with_three_mistakes_reports_three_and_exits_78(self) -> None:
        path = os.path.join(self.directory, "bad.yaml")
        with open(path, "w") as handle:
            handle.write(
                'listen: ["tcp:1975:interface=127.0.0.1"]\n'
                "public_url: not-a-url\n"
                "mcp_path: /mcp\n"
                "auth: none\n"
                "backends:\n"
                "  - name: bad__name\n"
                "    url: http://127.0.0.1:9/mcp\n"
                "    timeout: 30x\n"
            )
        for argv in (
            [str(BIN / "aigw"), "check", path],
            [str(BIN / "twistd"), "-n", "aigw", "--config", path],
        ):
            result = subprocess.run(argv, capture_output=True, timeout=60, cwd=self.directory)
            self.assertEqual(result.returncode, EX_CONFIG, result)
            err = result.stderr.decode()
            self.assertNotIn("Traceback", err)
            self.assertIn("line 2: public_url", err)
            self.assertIn("line 6: backends[0].name", err)
            self.assertIn("line 8: backends[0].timeout", err)

    def test_check_accepts_the_shipped_example(self) -> None:
        result = run_aigw("check", str(ROOT / "etc" / "aigw" / "aigw.yaml"))
        self.assertEqual(result.returncode, 0, result.stderr.decode())

    def test_check_accepts_the_keycloak_example(self) -> None:
        """etc/aigw/examples/keycloak.yaml (README, "Keycloak"), given its session key."""
        key = write_session_key(self.directory)
        result = run_aigw(
            "check",
            str(ROOT / "etc" / "aigw" / "examples" / "keycloak.yaml"),
            env={**os.environ, "AIGW_SESSION_KEY_FILE": key},
        )
        self.assertEqual(result.returncode, 0, result.stderr.decode())

    def test_socket_handed_over_the_systemd_way_is_served(self) -> None:
        """etc/systemd/aigw@.socket: several processes, each with its own SO_REUSEPORT
        socket on one port, handed over as fd 3 (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES)."""
        port = free_port()
        config = write_config(self.directory, port).replace(".yaml", "")
        with open(config + ".yaml") as handle:
            text = handle.read()
        with open(config + "-workers.yaml", "w") as handle:
            handle.write(
                text.replace(f"tcp:{port}:interface=127.0.0.1", "systemd:domain=INET:index=0")
            )
        processes = []
        for _ in range(2):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(16)
            fd = sock.fileno()
            move = "" if fd == 3 else f"exec 3<&{fd} {fd}<&-; "
            handover = (
                move + 'export LISTEN_FDS=1 LISTEN_FDNAMES=aigw LISTEN_PID=$$; exec "$0" "$@"'
            )
            argv = [str(BIN / "twistd"), "-n", "--pidfile=", "aigw", "--config"]
            processes.append(
                subprocess.Popen(
                    ["bash", "-c", handover, *argv, config + "-workers.yaml"],
                    pass_fds=(fd,),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    cwd=self.directory,
                )
            )
            sock.close()
        try:
            for _ in range(8):  # connections land on either process
                try:
                    wait_for_health(port, processes[0])
                except AssertionError:
                    raise AssertionError(processes[0].communicate(timeout=5)[1].decode()) from None
            self.assertTrue(all(p.poll() is None for p in processes))
        finally:
            for process in processes:
                self.assertEqual(stop(process), 0)

    def test_missing_systemd_socket_exits_without_traceback(self) -> None:
        port = free_port()
        config = write_config(self.directory, port)
        with open(config) as handle:
            text = handle.read()
        with open(config, "w") as handle:
            handle.write(
                text.replace(f"tcp:{port}:interface=127.0.0.1", "systemd:domain=INET:index=0")
            )
        result = run_aigw("run", config, cwd=self.directory)
        err = result.stderr.decode()
        self.assertEqual(result.returncode, 71, err)
        self.assertIn("cannot listen on systemd:domain=INET:index=0: no socket was handed", err)
        self.assertNotIn("Traceback", err)

    def test_listen_failure_exits_without_traceback(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            config = write_config(self.directory, port)
            result = run_aigw("run", config, cwd=self.directory)
        self.assertEqual(result.returncode, 71, result.stderr.decode())
        self.assertIn("cannot listen", result.stderr.decode())
        self.assertNotIn("Traceback", result.stderr.decode())

    def test_metrics_listen_failure_exits_like_the_others(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            metrics = f"tcp:{taken.getsockname()[1]}:interface=127.0.0.1"
            config = write_config(self.directory, free_port(), metrics=f"{{listen: {metrics!r}}}")
            result = run_aigw("run", config, cwd=self.directory)
        err = result.stderr.decode()
        self.assertEqual(result.returncode, 71, err)
        self.assertIn(f"cannot listen on {metrics}", err)
        self.assertNotIn("Traceback", err)

    def test_an_audit_file_that_cannot_be_opened_exits_73_naming_it(self) -> None:
        """README "Run": 73 (EX_CANTCREAT) when the audit file cannot be opened at start;
        a trail that would lose every event does not start serving."""
        looping = os.path.join(self.directory, "audit.log")
        os.symlink(looping, looping)  # a link to itself: ELOOP, even for root
        config = write_config(self.directory, free_port(), extra=f"audit: {{file: {looping}}}\n")
        result = run_aigw("run", config, cwd=self.directory)
        err = result.stderr.decode()
        self.assertEqual(result.returncode, 73, err)
        self.assertIn(f"cannot open the audit file {looping}", err)
        self.assertNotIn("Traceback", err)

    def test_a_unix_socket_listener_serves_the_configured_mcp_path(self) -> None:
        """``listen: unix:PATH`` beside TCP, and an ``mcp_path`` of its own: MCP is served
        there on both listeners, and ``/mcp`` is not the endpoint any more."""
        upstream = start_pyserver()
        self.addCleanup(upstream.stop)
        short = tempfile.mkdtemp(prefix="aigw-uds-")  # a socket path has ~108 bytes at most
        self.addCleanup(shutil.rmtree, short, True)
        path = os.path.join(short, "aigw.sock")
        port = free_port()
        config = os.path.join(self.directory, "aigw.yaml")
        with open(config, "w") as handle:
            handle.write(
                f'listen: ["tcp:{port}:interface=127.0.0.1", "unix:{path}"]\n'
                f"public_url: http://127.0.0.1:{port}\n"
                "mcp_path: /gateway/mcp\n"
                "auth: none\nmetrics: off\n"
                f"backends:\n  - name: py\n    url: {upstream.url}\n"
            )
        initialize = INITIALIZE_2025_11_25
        headers = {"Accept": ACCEPT}
        local = httpx2.Client(transport=httpx2.HTTPTransport(uds=path), timeout=10)
        with serving([str(BIN / "aigw"), "run", config], port, self.directory) as served, local:
            answered = local.post("http://localhost/gateway/mcp", json=initialize, headers=headers)
            old_path = local.post("http://localhost/mcp", json=initialize, headers=headers)
            health = local.get("http://localhost/healthz")
        self.assertEqual(served.code, 0, served.output)
        self.assertEqual(answered.status_code, 200, answered.text)
        self.assertEqual(answered.json()["result"]["protocolVersion"], "2025-11-25")
        self.assertIn("mcp-session-id", answered.headers)
        self.assertEqual(old_path.status_code, 404)
        self.assertEqual(health.json(), {"status": "alive"})
        self.assertNotIn("Traceback", served.output)
