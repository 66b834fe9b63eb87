"""How long the all-or-nothing switch takes on N real sshd servers, against what people would use instead.

    python bench/switch.py [--sizes 1,5,20] [--repeat 5] [--shell-rc skip|keep|both]

For each N it starts N OpenSSH servers on loopback (tests/sshfarm.py), stages r1 and r2 with releaser and,
with every connection already open (as go-live has them before 09:30), times:

- releaser go-live and rollback: the whole two-phase switch (lock, prepare, commit, HTTP verification of
  every live URL, unlock, journal), median of --repeat, and the skew between the first and last rename;
- the same flip by a plain sequential loop over fabric.Connection (ln -sfn + mv -T per server, no checks);
- the floor: OpenSSH `ssh` over already-open ControlMaster connections, flipping all N in parallel.

Then, as whole processes from a cold start: `invoke rollback --yes`, `invoke status` and `invoke --list`.
The sandbox web servers that make verification real are started once by this script, outside the timings,
as production web servers are already running; the environment file says `[sandbox] serve = false`.

--shell-rc: root's ~/.bashrc here runs `pyenv init` (~120 ms of CPU per SSH command, since bash reads
.bashrc under sshd). `skip` has the farm's sshd set SHLVL=1 so bash skips it (the login shell and account stay
the same); `keep` measures the account as it is; `both` prints both tables. Not a test: timings go here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT), str(PROJECT / "tests")]

from sshfarm import SshdFarm, sshd_path  # noqa: E402  (tests/ is put on the path just above)

from releaser.bundle import read_bundle  # noqa: E402
from releaser.clock import FakeClock  # noqa: E402
from releaser.config import load_environment  # noqa: E402
from releaser.fleet import connected, make_hosts  # noqa: E402
from releaser.sandbox import serving  # noqa: E402

EXAMPLES = PROJECT / "examples" / "releases"
ACTOR = "bench@releaser"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,5,20", help="server counts, comma-separated (default 1,5,20)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure; the median is shown (default 5)")
    parser.add_argument("--shell-rc", choices=("skip", "keep", "both"), default="skip",
                        help="skip the login user's ~/.bashrc for SSH commands, keep it, or run both (default skip)")
    args = parser.parse_args()
    if sshd_path() is None:
        print("sshd not found; install openssh-server", file=sys.stderr)
        return 2
    sizes = [int(n) for n in args.sizes.split(",")]
    modes = ["skip", "keep"] if args.shell_rc == "both" else [args.shell_rc]
    tables = {}
    for mode in modes:
        rows = []
        for n in sizes:
            print(f"... N={n}, shell rc {mode}", file=sys.stderr, flush=True)
            rows.append(bench(n, args.repeat, skip_shell_rc=(mode == "skip")))
        tables[mode] = rows
    for mode, rows in tables.items():
        show(mode, rows, args.repeat)
    return 0


def bench(n: int, repeat: int, *, skip_shell_rc: bool) -> dict:
    """Every figure for one farm of n servers."""
    row: dict = {"n": n}
    with tempfile.TemporaryDirectory(prefix="releaser-bench-") as scratch, ExitStack() as stack:
        base = Path(scratch)
        farm = stack.enter_context(SshdFarm(base / "farm", n, skip_shell_rc=skip_shell_rc))
        env_path = write_environment(farm, base / "bench.toml")
        env = load_environment(str(env_path), PROJECT)
        stack.enter_context(serving(env))  # the web servers verification reads, up for the whole run
        clock = FakeClock(datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))
        r1, r2 = read_bundle(EXAMPLES / "r1"), read_bundle(EXAMPLES / "r2")

        row["connect"] = median(repeat, lambda: connect_all(env))
        row["command"] = per_command(env)

        with connected(env, actor=ACTOR, clock=clock, journal_path=base / "journal.jsonl") as fleet:
            fleet.stage(r1)
            fleet.go_live()
            go_lives, rollbacks, skews, switches, at_t = [], [], [], [], []
            for _ in range(repeat):
                fleet.stage(r2)  # already on disk after the first round: only the staging link moves
                started = time.perf_counter()
                result = fleet.go_live()
                go_lives.append(time.perf_counter() - started)
                skews.append(result.skew or 0.0)
                switches.append(result.seconds["switch"])  # prepare, commit, verify: the two-phase switch itself
                at_t.append(result.seconds["commit"] + result.seconds.get("verify", 0.0))  # what runs after 09:30:00
                assert all(r.ok for r in result.results), result
                started = time.perf_counter()
                result = fleet.rollback()
                rollbacks.append(time.perf_counter() - started)
                assert all(r.ok for r in result.results), result
        row["go_live"], row["rollback"] = statistics.median(go_lives), statistics.median(rollbacks)
        row["skew_ms"] = statistics.median(skews) * 1000
        row["switch"], row["at_t"] = statistics.median(switches), statistics.median(at_t)

        roots = [str(s.root) for s in farm.servers]
        row["sequential"] = sequential_fabric(farm, roots, repeat)
        row["floor"] = ssh_floor(farm, roots, repeat, base)

        # cold processes: r2 live with r1 as backup before each rollback
        project = cold_project(base)
        cli_env = {**os.environ, "RELEASER_ACTOR": ACTOR, "NO_COLOR": "1"}
        colds = []
        for _ in range(repeat):
            with connected(env, actor=ACTOR, clock=clock, journal_path=base / "journal.jsonl") as fleet:
                fleet.stage(r2)
                fleet.go_live()
            colds.append(timed_process([invoke(), "-r", str(project), "rollback", "--yes", "--env", str(env_path)], cli_env))
        row["cold_rollback"] = statistics.median(colds)
        row["cold_status"] = median(repeat, lambda: timed_process([invoke(), "-r", str(project), "status", "--env", str(env_path)], cli_env))
        row["list"] = median(repeat, lambda: timed_process([invoke(), "-r", str(project), "--list"], cli_env))
    return row


def write_environment(farm: SshdFarm, path: Path) -> Path:
    """An SSH environment over the farm, host key checking on; its web servers are run by this script."""
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
    path.write_text("\n".join(lines))
    return path


def free_ports(count: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def connect_all(env) -> float:
    """Open a paramiko connection to every server in parallel, as a cold command does; returns seconds."""
    hosts = list(make_hosts(env).values())
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        list(pool.map(lambda host: host.open(), hosts))
    seconds = time.perf_counter() - started
    for host in hosts:
        host.close()
    return seconds


def per_command(env) -> float:
    """Median seconds of one `true` through an open connection: what every round trip costs at least."""
    host = make_hosts(env)[env.servers[0].name]
    host.open()
    try:
        times = []
        for _ in range(15):
            started = time.perf_counter()
            host.run(["true"])
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    finally:
        host.close()


def sequential_fabric(farm: SshdFarm, roots: list[str], repeat: int) -> float:
    """The flip as a plain loop over fabric.Connection, one server after the other; connections opened first."""
    import fabric
    import paramiko

    connections = []
    for server in farm.servers:
        connection = fabric.Connection(server.host, user=farm.user, port=server.port, connect_timeout=10,
                                       config=fabric.Config(overrides={"load_ssh_configs": False}),
                                       connect_kwargs={"key_filename": str(farm.key_file), "look_for_keys": False,
                                                       "allow_agent": False})
        connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        connection.client.load_host_keys(str(farm.known_hosts))
        connection.open()
        connections.append(connection)
    try:
        times = []
        for _ in range(repeat):
            for target in ("r2", "r1"):  # end where releaser left it: r1 live
                started = time.perf_counter()
                for connection, root in zip(connections, roots):
                    connection.run(flip_command(root, target), hide=True, in_stream=False)
                times.append(time.perf_counter() - started)
        return statistics.median(times)
    finally:
        for connection in connections:
            connection.close()


def flip_command(root: str, release: str) -> str:
    import shlex

    q = shlex.quote
    return f"cd {q(root)} && ln -sfn releases/{q(release)} .releaser/bench-next && mv -T .releaser/bench-next live"


def ssh_floor(farm: SshdFarm, roots: list[str], repeat: int, base: Path) -> float:
    """The flip by OpenSSH over already-open ControlMaster connections, all servers at once."""
    ssh = shutil.which("ssh")
    if ssh is None:
        return float("nan")
    common = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
              "-o", f"UserKnownHostsFile={farm.known_hosts}", "-o", "IdentitiesOnly=yes", "-i", str(farm.key_file),
              "-l", farm.user]
    sockets = [base / f"cm-{server.name}" for server in farm.servers]
    masters = []
    for server, sock in zip(farm.servers, sockets):
        masters.append(subprocess.Popen([ssh, *common, "-p", str(server.port), "-M", "-S", str(sock), "-N", server.host],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + 15
        while not all(sock.exists() for sock in sockets):
            if time.monotonic() > deadline:
                raise RuntimeError("ControlMaster connections did not come up")
            time.sleep(0.02)
        times = []
        for _ in range(repeat):
            for target in ("r2", "r1"):
                started = time.perf_counter()
                jobs = [subprocess.Popen([ssh, *common, "-p", str(server.port), "-S", str(sock), server.host,
                                          flip_command(root, target)], stdin=subprocess.DEVNULL)
                        for server, sock, root in zip(farm.servers, sockets, roots)]
                codes = [job.wait() for job in jobs]
                times.append(time.perf_counter() - started)
                if any(codes):
                    raise RuntimeError(f"ssh flip failed: exit codes {codes}")
        return statistics.median(times)
    finally:
        for master in masters:  # only the masters this function started, by their own process handle
            master.terminate()
            master.wait(timeout=10)


def cold_project(base: Path) -> Path:
    """A copy of tasks.py in a scratch directory, so cold commands journal there and not into the repository."""
    project = base / "project"
    project.mkdir()
    shutil.copy(PROJECT / "tasks.py", project / "tasks.py")
    for needed in ("environments", "runbooks"):
        if (PROJECT / needed).is_dir():
            (project / needed).symlink_to(PROJECT / needed)
    return project


def invoke() -> str:
    return str(Path(sys.executable).with_name("invoke"))


def timed_process(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=PROJECT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def median(repeat: int, measure) -> float:
    return statistics.median(measure() for _ in range(repeat))


def show(mode: str, rows: list[dict], repeat: int) -> None:
    rc = "skipped (sshd SetEnv SHLVL=1)" if mode == "skip" else "kept (root's ~/.bashrc runs pyenv init)"
    print(f"\nshell rc {rc}; medians of {repeat}; {os.cpu_count()} CPUs")
    head = ("N", "switch s", "at-T s", "go-live cmd s", "rollback cmd s", "skew ms", "seq fabric s", "ratio", "ssh floor s",
            "cmd ms", "connect s", "cold rollback s", "cold status s", "--list s")
    print(" | ".join(head))
    print(" | ".join("-" * len(h) for h in head))
    for r in rows:
        cells = (r["n"], f"{r['switch']:.3f}", f"{r['at_t']:.3f}", f"{r['go_live']:.3f}", f"{r['rollback']:.3f}",
                 f"{r['skew_ms']:.1f}", f"{r['sequential']:.3f}", f"{r['sequential'] / r['switch']:.1f}x", f"{r['floor']:.3f}", f"{r['command'] * 1000:.1f}",
                 f"{r['connect']:.3f}", f"{r['cold_rollback']:.3f}", f"{r['cold_status']:.3f}", f"{r['list']:.3f}")
        print(" | ".join(str(c) for c in cells))
    print("switch: prepare + commit + HTTP verification of every live URL (FleetResult.seconds['switch']); at-T: commit +"
          " verification, what a scheduled go-live does after the second; go-live/rollback cmd: the whole Fleet call"
          " (status read, lock, switch, unlock, journal), connections open; seq fabric: one `ln -sfn && mv -T` per server"
          " in a loop, no lock, no verification; ratio = seq fabric / switch; cmd ms: one `true` over an open connection;"
          " connect: paramiko, all N in parallel; cold: whole `invoke` processes, imports and connecting included")


if __name__ == "__main__":
    sys.exit(main())
