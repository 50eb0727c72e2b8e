"""Several aigw trees side by side: CPU time per call at concurrency 32, p50 at 1.

On a shared machine calls per second move with everyone else's load; the CPU
time aigw spends per call (``utime + stime`` of the process, /proc/PID/stat,
over the calls wrk counted) moves much less, and rounds that interleave the
trees give each the same conditions.  Usage::

    git archive main | tar -x -C /tmp/main-tree
    python bench/pair.py --rounds 10 main=/tmp/main-tree branch=.

Each tree is an aigw source directory (its ``aigw`` package is imported
first: PYTHONPATH); every tree gets its own ``twistd aigw`` on the benchmark's
config, upstream and tokens (bench/run.py).  Each round runs wrk at
concurrency 32 on every tree, then at concurrency 1 on every tree and on the
upstream itself (``direct``), the order of the trees reversed every other round;
the medians over the rounds are printed last, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as rig  # bench/run.py: the same rig as make bench

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start_tree(env: rig.Env, name: str, tree: str) -> tuple[rig.Target, rig.Proc]:
    """``twistd aigw`` importing aigw from ``tree``, with one MCP session."""
    port = rig.free_port()
    config = rig.aigw_config(env, port)
    twistd = rig.ROOT / ".venv" / "bin" / "twistd"
    if not twistd.exists():
        twistd = Path(sys.executable).parent / "twistd"
    argv = [str(twistd), "-n", "--pidfile=", "aigw", "--config", str(config)]
    proc = env.procs.start(name, argv, env={"PYTHONPATH": str(Path(tree).resolve())})
    rig.wait_port(proc, port, 60)
    rig.wait_ready(proc, f"http://{rig.HOST}:{port}/readyz", 30)
    url = f"http://{rig.HOST}:{port}/mcp"
    session = rig.open_session(url, "bench__echo", env.auth.token(url))
    return rig.Target(name, session, [proc.pid]), proc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--duration", type=int, default=4, help="seconds of wrk per point")
    p.add_argument("trees", nargs="+", help="name=path of an aigw source tree")
    args = p.parse_args(argv)
    trees = [t.split("=", 1) for t in args.trees]

    def body(procs: rig.Processes) -> bool:
        env = rig.start_env(procs)
        direct = rig.start_direct(env)
        started = [(name, *start_tree(env, name, tree)) for name, tree in trees]
        for _, target, _ in started:
            rig.run_wrk(target, 32, 1)  # warm-up
        cpu_us: dict[str, list[float]] = {name: [] for name, _ in trees}
        rps: dict[str, list[float]] = {name: [] for name, _ in trees}
        p50: dict[str, list[float]] = {name: [] for name, _ in [*trees, ("direct", "")]}
        print(f"# load average at the start: {os.getloadavg()}", flush=True)
        for index in range(args.rounds):
            order = started if index % 2 == 0 else started[::-1]
            for name, target, proc in order:
                before = cpu_seconds(proc.pid)
                point = rig.run_wrk(target, 32, args.duration)
                used = cpu_seconds(proc.pid) - before
                cpu_us[name].append(1e6 * used / max(1, point.raw["requests"]))
                rps[name].append(point.raw["rps"])
            for name, target, _ in order:
                p50[name].append(rig.run_wrk(target, 1, args.duration).p50_ms)
            p50["direct"].append(rig.run_wrk(direct, 1, args.duration).p50_ms)
            line = ", ".join(
                f"{n} {cpu_us[n][-1]:.0f} us/call {rps[n][-1]:.0f} req/s p50 {p50[n][-1]:.3f}"
                for n, _ in trees
            )
            print(f"round {index + 1}: {line}; direct p50 {p50['direct'][-1]:.3f}", flush=True)
        print("# medians: CPU us per call at c32, req/s at c32, p50 ms at c1")
        for name, _ in trees:
            cpu, rate, lat = (statistics.median(v[name]) for v in (cpu_us, rps, p50))
            print(f"{name}: cpu_us={cpu:.0f} rps32={rate:.0f} p50_ms={lat:.3f}")
        print(f"direct: p50_ms={statistics.median(p50['direct']):.3f}")
        print(f"# load average at the end: {os.getloadavg()}")
        return False

    return rig.guarded("aigw-pair-", False, body)


if __name__ == "__main__":
    sys.exit(main())
