"""How long go-live's pre-release checks take on N real sshd servers, and how many SSH round trips each server gets.

    python bench/checks.py [--sizes 1,5,20] [--repeat 5] [--web-servers here|apart]

For each N it starts N OpenSSH servers on loopback (tests/sshfarm.py), serves every live and staging URL with
the sandbox web servers (started once, outside the timings, as production web servers are already running),
stages r1, makes it live, stages r2 and rehearses it, so every check has something real to read. Then, with
every connection open (as go-live has them), it runs the checks `invoke go-live --now` runs (every check but
`window`, judged at this moment as --now judges them) --repeat times and prints the medians:

- checks ms: the whole check run, wall clock (what go-live waits for before it may switch);
- first ms: the first run in the process, which also pays what a cold `go-live --now` pays once (the calendar);
- per server ms: that figure divided by N (the machine's 2 cores serve every "server" here);
- client CPU ms: CPU this process spent in the run (every thread; with `--web-servers here`, the web servers too);
- servers CPU ms: CPU of the sshd servers and every process they ran for the run (the facts scripts);
- SSH trips / server: commands each server's connection ran during one check run;
- most at once: the most commands one server had in flight at the same moment;
- HTTP / server: GETs the checks sent to each server's URLs (counted by the sandbox web servers).

The CPU figures hold when other work shares the machine, where the wall clock does not.

`--web-servers here` (the default) serves the URLs from threads of this process, as the first figures were
measured: their CPU and the interpreter lock are then shared with the checks' SSH side. `apart` serves them
from a child process, as a real fleet's web servers are elsewhere.

It only uses releaser's public API (connected, run_checks, Limits), so the same file runs on older checkouts:
run it with the checkout as the current directory (its code goes first on the path) for the "before" figures.
Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

PROJECT = Path.cwd() if (Path.cwd() / "releaser").is_dir() else Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT), str(PROJECT / "tests")]

from sshfarm import SshdFarm, sshd_path  # noqa: E402  (tests/ is put on the path just above)
from conftest import free_ports  # noqa: E402

from releaser.bundle import read_bundle  # noqa: E402
from releaser.checks import Limits, run_checks  # noqa: E402
from releaser.clock import FakeClock  # noqa: E402
from releaser.config import load_environment  # noqa: E402
from releaser.fleet import connected, make_hosts  # noqa: E402
from releaser.golive import NOW_CHECKS  # noqa: E402
from releaser import sandbox  # noqa: E402

EXAMPLES = PROJECT / "examples" / "releases"
ACTOR = "bench@releaser"


class CountingHost:
    """A server's real Host that counts the commands it runs, and the most it ran at the same moment."""

    def __init__(self, host) -> None:
        self._host = host
        self._lock = threading.Lock()
        self.trips = 0
        self.in_flight = 0
        self.most = 0

    def __getattr__(self, name):
        return getattr(self._host, name)

    def reset(self) -> None:
        with self._lock:
            self.trips = self.most = 0

    def run(self, argv, **kwargs):
        with self._lock:
            self.trips += 1
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            return self._host.run(argv, **kwargs)
        finally:
            with self._lock:
                self.in_flight -= 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,5,20", help="server counts, comma-separated (default 1,5,20)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure; the median is shown (default 5)")
    parser.add_argument("--web-servers", choices=("here", "apart"), default="here",
                        help="serve the URLs from this process (default) or from a child process")
    args = parser.parse_args()
    if sshd_path() is None:
        print("sshd not found; install openssh-server", file=sys.stderr)
        return 2
    rows = []
    for n in [int(size) for size in args.sizes.split(",")]:
        print(f"... N={n}", file=sys.stderr, flush=True)
        rows.append(bench(n, args.repeat, args.web_servers))
    show(rows, args.repeat, args.web_servers)
    return 0


def bench(n: int, repeat: int, web_servers: str = "here") -> dict:
    """The check figures for one farm of n servers."""
    with tempfile.TemporaryDirectory(prefix="releaser-bench-checks-") as scratch, ExitStack() as stack:
        base = Path(scratch)
        farm = stack.enter_context(SshdFarm(base / "farm", n, skip_shell_rc=True))
        environment_file = write_environment(farm, base / "bench.toml")
        env = load_environment(str(environment_file), PROJECT)
        if web_servers == "here":
            requests = count_requests()
            stack.enter_context(sandbox.serving(env))
        else:
            requests = stack.enter_context(serving_apart(environment_file, base / "answers.json"))
        clock = FakeClock(datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))
        hosts = {name: CountingHost(host) for name, host in make_hosts(env).items()}
        with connected(env, actor=ACTOR, clock=clock, journal_path=base / "journal.jsonl", hosts=hosts) as fleet:
            fleet.stage(read_bundle(EXAMPLES / "r1"))
            fleet.go_live()
            fleet.stage(read_bundle(EXAMPLES / "r2"))
            fleet.rehearse()
            times, trips, most, gets, client, servers = [], [], [], [], [], []
            for _ in range(repeat + 1):
                for host in hosts.values():
                    host.reset()
                requests.clear()
                cpu, tree = time.process_time(), descendants_cpu()
                started = time.perf_counter()
                # go-live --now judges its checks at this moment (golive.go_live_command's Limits)
                results = run_checks(fleet, Limits(env, at=clock.now(), actor=ACTOR), now=clock.now(), only=NOW_CHECKS)
                times.append(time.perf_counter() - started)
                client.append(time.process_time() - cpu)
                servers.append(descendants_cpu() - tree)
                trips.append(statistics.mean(host.trips for host in hosts.values()))
                most.append(max(host.most for host in hosts.values()))
                gets.append(sum(requests.values()) / n)
            failed = sorted({f"{r.check} on {r.server}" for r in results if r.status == "FAIL"})
    first = times.pop(0)  # the first run also builds what a process builds once (the calendar among them)
    for figures in (client, servers, trips, most, gets):
        figures.pop(0)
    return {"n": n, "checks": statistics.median(times), "first": first, "client": statistics.median(client),
            "servers": statistics.median(servers), "trips": statistics.median(trips),
            "most": statistics.median(most), "gets": statistics.median(gets), "failed": failed}


def descendants_cpu() -> float:
    """CPU seconds of every process below this one (the sshd servers), with what their ended children used."""
    parents, used = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    me, total = os.getpid(), 0
    for pid in used:
        ancestor = parents.get(pid)
        while ancestor not in (None, 0, 1, me):
            ancestor = parents.get(ancestor)
        if ancestor == me:
            total += used[pid]
    return total / os.sysconf("SC_CLK_TCK")


class AnswerCounts:
    """The GETs a child process's web servers answered, read from the file it keeps (clear() starts again)."""

    def __init__(self, path: Path) -> None:
        self._path, self._base = path, 0

    def _read(self) -> int:
        try:
            return int(json.loads(self._path.read_text() or "0"))
        except (OSError, ValueError):
            return 0

    def clear(self) -> None:
        self._base = self._read()

    def values(self) -> list[int]:
        return [self._read() - self._base]


_APART = """
import json, sys, threading, time
from pathlib import Path
sys.path[:0] = [sys.argv[1]]
from releaser import sandbox
from releaser.config import load_environment
counts, path, lock = [0], Path(sys.argv[3]), threading.Lock()
original = sandbox.SlotHandler.log_request
def counted(self, *args):
    with lock:
        counts[0] += 1
        path.write_text(json.dumps(counts[0]))
    original(self, *args)
sandbox.SlotHandler.log_request = counted
with sandbox.serving(load_environment(sys.argv[2], Path(sys.argv[1]))):
    print("serving", flush=True)
    sys.stdin.read()
"""


@contextmanager
def serving_apart(environment_file: Path, answers: Path):
    """The sandbox web servers in a child process (ended with the block); yields its answer counts."""
    child = subprocess.Popen([sys.executable, "-c", _APART, str(PROJECT), str(environment_file), str(answers)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "serving":
            raise RuntimeError("the web servers' process did not start")
        yield AnswerCounts(answers)
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def count_requests() -> Counter:
    """Count every answer the sandbox web servers send, by port (patched in for this process only)."""
    counts: Counter = Counter()
    handler = sandbox.SlotHandler
    original = handler.log_request

    def counted(self, *args) -> None:
        counts[self.server.server_address[1]] += 1
        original(self, *args)

    handler.log_request = counted
    return counts


def write_environment(farm: SshdFarm, path: Path) -> Path:
    """An SSH environment over the farm with the local sandbox's checks: smoke, config parity, staging access, people."""
    local = (PROJECT / "environments" / "local.toml").read_text()
    checks = "\n".join(line for line in local[local.index("# ---- calendar"):].splitlines()
                       if not line.startswith("sandbox_token"))  # a token for the sandbox only; the variable below
    os.environ.setdefault("RELEASER_PREVIEW_TOKEN", "bench-preview")
    ports = free_ports(2 * len(farm.servers))
    lines = ['transport = "ssh"', "allow_go_live_now = true", "keep_releases = 3", "",
             "[ssh]", f'user = "{farm.user}"', f'key_file = "{farm.key_file}"', f'known_hosts = "{farm.known_hosts}"',
             "connect_timeout = 10.0", "",
             "[health]", 'path = "/healthz"', 'contains = "ok"', "timeout = 2.0", "attempts = 1", "",
             "[sandbox]", "serve = false", ""]
    for i, server in enumerate(farm.servers):
        lines += ["[[servers]]", f'name = "{server.name}"', f'host = "{server.host}"', f"port = {server.port}",
                  f'root = "{server.root}"', f'live_url = "http://127.0.0.1:{ports[2 * i]}"',
                  f'staging_url = "http://127.0.0.1:{ports[2 * i + 1]}"', ""]
    path.write_text("\n".join(lines) + "\n" + checks)
    return path


def show(rows: list[dict], repeat: int, web_servers: str = "here") -> None:
    where = "in this process" if web_servers == "here" else "in a child process"
    print(f"\ngo-live's checks (every check but window), connections open, web servers {where}; medians of {repeat}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    head = ("N", "checks ms", "first ms", "per server ms", "client CPU ms", "servers CPU ms", "SSH trips / server",
            "most at once", "HTTP / server")
    print(" | ".join(head))
    print(" | ".join("-" * len(h) for h in head))
    for r in rows:
        cells = (r["n"], f"{r['checks'] * 1000:.0f}", f"{r['first'] * 1000:.0f}", f"{r['checks'] * 1000 / r['n']:.1f}",
                 f"{r['client'] * 1000:.0f}", f"{r['servers'] * 1000:.0f}", f"{r['trips']:g}", f"{r['most']:g}",
                 f"{r['gets']:g}")
        print(" | ".join(str(c) for c in cells))
    for r in rows:
        if r["failed"]:
            print(f"N={r['n']}: FAIL {', '.join(r['failed'])}")


if __name__ == "__main__":
    sys.exit(main())
