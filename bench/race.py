"""releaser's cold `rollback --yes` against Fabric's ThreadingGroup doing the same link flip, on one sshd farm.

    python bench/race.py [--sizes 1,5,20] [--rounds 5]

For each N, one farm of N OpenSSH servers on loopback (tests/sshfarm.py) with r1 and r2 staged by releaser and
served by the sandbox web servers (started once, outside the timings). Every round runs, one after the other:

- releaser: a whole cold `invoke rollback --yes` process (imports, config, connecting, lock, checksums, commit,
  HTTP verification of every live URL, journal, unlock), r2 live and r1 its backup before it (set outside the
  timing);
- Fabric: a whole cold Python process that imports fabric, builds a ThreadingGroup of the same N servers with
  the same key and known_hosts, and runs `ln -sfn releases/r1 .releaser/bench-next && mv -T ... live` on every
  connection of the group in parallel threads (one command per server, since each server's root differs;
  ThreadingGroup.run sends one command to all), connecting on first use as Fabric does.

The rounds interleave the two so drifting load on this shared machine hits both alike; medians and the ratio
releaser / Fabric are printed (a first, uncounted round warms the disk cache and writes releaser's bytecode).
Both run with this checkout's releaser first on PYTHONPATH, so a copy of an older commit measures its own code.
The ratio is what to track, not the absolute times. Latency: this kernel has no `tc netem` in the container, so
there is no delayed variant here (bench/switch.py --rtt-ms has a TCP proxy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from switch import (ACTOR, EXAMPLES, PROJECT, Reach, cold_project, free_ports, invoke, timed_process,  # noqa: E402
                    write_environment)
from sshfarm import SshdFarm, sshd_path  # noqa: E402  (tests/ is on the path through bench/switch.py)

from releaser.bundle import read_bundle  # noqa: E402
from releaser.clock import FakeClock  # noqa: E402
from releaser.config import load_environment  # noqa: E402
from releaser.fleet import connected  # noqa: E402
from releaser.sandbox import serving  # noqa: E402

FABRIC = """
import sys, shlex
import fabric, paramiko
user, key, known, target = sys.argv[1:5]
pairs = [p.split("=", 1) for p in sys.argv[5:]]
group = fabric.ThreadingGroup(*[f"{user}@127.0.0.1:{port}" for port, _ in pairs], connect_timeout=10,
                              config=fabric.Config(overrides={"load_ssh_configs": False}),
                              connect_kwargs={"key_filename": key, "look_for_keys": False, "allow_agent": False})
for connection in group:
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    connection.client.load_host_keys(known)
roots = dict(pairs)
commands = {c.port: f"cd {shlex.quote(roots[str(c.port)])} && ln -sfn releases/{target} .releaser/bench-next && mv -T .releaser/bench-next live" for c in group}
import concurrent.futures as cf
with cf.ThreadPoolExecutor(len(group)) as pool:  # one command each, in parallel, as ThreadingGroup.run does
    for done in pool.map(lambda c: c.run(commands[c.port], hide=True, in_stream=False), group):
        assert done.ok
group.close()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,5,20")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if sshd_path() is None:
        print("sshd not found; install openssh-server", file=sys.stderr)
        return 2
    rows = [race(int(n), args.rounds) for n in args.sizes.split(",")]
    print(f"\ncold whole processes on loopback sshd, interleaved, medians of {args.rounds} rounds; {os.cpu_count()} CPUs")
    print("N | releaser rollback --yes s | Fabric ThreadingGroup flip s | ratio")
    print("--- | ---: | ---: | ---:")
    for n, ours, theirs in rows:
        print(f"{n} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f}x")
    return 0


def race(n: int, rounds: int) -> tuple[int, float, float]:
    print(f"... N={n}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="releaser-race-") as scratch, ExitStack() as stack:
        base = Path(scratch)
        farm = stack.enter_context(SshdFarm(base / "farm", n, skip_shell_rc=True))
        reach = Reach([s.port for s in farm.servers], farm.known_hosts, free_ports(2 * n))
        env_path = write_environment(farm, reach, base / "bench.toml")
        env = load_environment(str(env_path), PROJECT)
        stack.enter_context(serving(env))
        clock = FakeClock(datetime(2026, 11, 30, 9, tzinfo=timezone.utc))
        r1, r2 = read_bundle(EXAMPLES / "r1"), read_bundle(EXAMPLES / "r2")
        with connected(env, actor=ACTOR, clock=clock, journal_path=base / "journal.jsonl") as fleet:
            fleet.stage(r1)
            fleet.go_live()
        project = cold_project(base)
        cli_env = process_environment()
        pairs = [f"{s.port}={s.root}" for s in farm.servers]
        fabric_argv = [sys.executable, "-c", FABRIC, farm.user, str(farm.key_file), str(farm.known_hosts), "r1", *pairs]
        ours, theirs = [], []
        for round_ in range(rounds + 1):  # the first round only warms the disk cache and the bytecode: not counted
            with connected(env, actor=ACTOR, clock=clock, journal_path=base / "journal.jsonl") as fleet:
                fleet.stage(r2)
                fleet.go_live()
            mine = timed_process([invoke(), "-r", str(project), "rollback", "--yes", "--env", str(env_path)], cli_env)
            fabric = timed_process(fabric_argv, cli_env)
            if round_:
                ours.append(mine)
                theirs.append(fabric)
    return n, statistics.median(ours), statistics.median(theirs)


def process_environment() -> dict[str, str]:
    """The cold processes' environment: this checkout's code first on the path, bytecode kept, plain output.

    PYTHONPATH makes a copy of the project (an older commit, for before/after) run its own releaser rather
    than the editable install's. This machine sets PYTHONDONTWRITEBYTECODE=1, which would have every process
    compile releaser's modules again (an installed releaser has its .pyc files, as Fabric's are): it is removed.
    """
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(PROJECT), "RELEASER_ACTOR": ACTOR, "NO_COLOR": "1"}


if __name__ == "__main__":
    sys.exit(main())
