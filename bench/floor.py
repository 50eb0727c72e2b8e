"""What a lone call through Twisted costs before aigw does anything: the floor.

``make bench``'s ``added_p50_ms`` is aigw's p50 at concurrency 1 less the
upstream's own.  This measures, in one run with the rounds interleaved, the same
figure for the two do-nothing relays of ``bench/floor_relays.py`` in front of the
same upstream (``bytes``: Twisted's byte relay, no HTTP; ``http``: twisted.web's
server and a kept-alive httptools client, no token, JSON or routing) and for aigw
itself, so that aigw's own share of the hop reads as the difference::

    python bench/floor.py --rounds 6

Each round runs ``wrk -c1`` on every target (the order reversed every other round)
and records its p50 and the CPU time its process spent per call (utime + stime,
/proc/PID/stat, over the calls wrk counted); the medians are printed last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pair  # bench/pair.py: CPU time of a process
import run as rig  # bench/run.py: the same rig as make bench

RELAYS = ("bytes", "http")


def start_relay(env: rig.Env, kind: str) -> tuple[rig.Target, rig.Proc]:
    """A relay of ``bench/floor_relays.py`` in front of the upstream, with a session."""
    proc = env.procs.start(
        f"relay-{kind}",
        [sys.executable, str(rig.BENCH / "floor_relays.py"), kind, "0", env.upstream_url],
        stdout_pipe=True,
    )
    port = int(rig.read_line(proc, "LISTENING ", 20).split()[1])
    session = rig.open_session(f"http://{rig.HOST}:{port}/mcp", "echo", None)
    return rig.Target(f"relay-{kind}", session, [proc.pid]), proc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--duration", type=int, default=4, help="seconds of wrk per point")
    p.add_argument(
        "--twistd",
        action="append",
        type=Path,
        help="the twistd of an aigw virtualenv, for a row each (default: the project's .venv)",
    )
    args = p.parse_args(argv)

    def body(procs: rig.Processes) -> bool:
        env = rig.start_env(procs)
        targets: list[tuple[rig.Target, int]] = [(rig.start_direct(env), env.upstream.pid)]
        for kind in RELAYS:
            target, proc = start_relay(env, kind)
            targets.append((target, proc.pid))
        for index, twistd in enumerate(args.twistd or [rig.ROOT / ".venv" / "bin" / "twistd"]):
            aigw = rig.start_aigw(env, twistd, "aigw" if index == 0 else f"aigw-{index + 1}")
            targets.append((aigw, aigw.pids[0]))
        for target, _ in targets:
            rig.run_wrk(target, 1, 1)  # warm-up
        p50: dict[str, list[float]] = {t.name: [] for t, _ in targets}
        cpu: dict[str, list[float]] = {t.name: [] for t, _ in targets}
        print(f"# load average at the start: {os.getloadavg()}", flush=True)
        for index in range(args.rounds):
            order = targets if index % 2 == 0 else targets[::-1]
            for target, pid in order:
                before = pair.cpu_seconds(pid)
                point = rig.run_wrk(target, 1, args.duration)
                used = pair.cpu_seconds(pid) - before
                if point.errors:
                    print(f"{target.name}: {point.errors} errors", flush=True)
                    return True
                p50[target.name].append(point.p50_ms)
                cpu[target.name].append(1e6 * used / max(1, point.raw["requests"]))
            print(
                f"round {index + 1}: "
                + "  ".join(f"{name} {values[-1]:.3f} ms" for name, values in p50.items()),
                flush=True,
            )
        direct = statistics.median(p50["direct"])
        print(f"# load average at the end: {os.getloadavg()}")
        print("| target | p50 c1 ms | added ms | CPU per call µs (its process) |")
        print("| --- | ---: | ---: | ---: |")
        for name in p50:
            median = statistics.median(p50[name])
            print(
                f"| {name} | {median:.3f} | {median - direct:.3f} | "
                f"{statistics.median(cpu[name]):.0f} |"
            )
        return False

    return rig.guarded("aigw-floor-", False, body)


if __name__ == "__main__":
    raise SystemExit(main())
