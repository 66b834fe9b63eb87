"""How long the all-or-nothing switch takes on N real sshd servers, against what people would use instead.

    python bench/switch.py [--sizes 1,5,20] [--repeat 5] [--shell-rc skip|keep|both] [--rtt-ms 0,10] [--only at-t]

For each N it starts N OpenSSH servers on loopback (tests/sshfarm.py), stages r1 and r2 with releaser and,
with every connection already open (as go-live has them before 09:30), times:

- releaser go-live and rollback: the whole two-phase switch (lock, prepare, commit, HTTP verification of
  every live URL, unlock, journal), median of --repeat, and the skew between the first and last rename;
- the same flip by a plain sequential loop over fabric.Connection (ln -sfn + mv -T per server, no checks);
- the floor: OpenSSH `ssh` over already-open ControlMaster connections, flipping all N in parallel.

Then, as whole processes from a cold start: `invoke rollback --yes`, `invoke status` and `invoke --list`.
The sandbox web servers that make verification real are started once, outside the timings, in a Python process
of their own (`served_apart`), as production web servers are already running in theirs: in this process they
would take the interpreter's lock from the fleet they answer. The environment file says `[sandbox] serve = false`.

--shell-rc: root's ~/.bashrc here runs `pyenv init` (~120 ms of CPU per SSH command, since bash reads
.bashrc under sshd). `skip` has the farm's sshd set SHLVL=1 so bash skips it (the login shell and account stay
the same); `keep` measures the account as it is; `both` prints both tables. Not a test: timings go here.

--rtt-ms: loopback answers in microseconds, which no real fleet does. For each value above 0 every SSH and
HTTP connection goes through bench/delay.py, which delays each byte by half the round trip each way (this
kernel has no netem), and a table is printed for it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT), str(PROJECT / "tests")]

from sshfarm import SshdFarm, sshd_path  # noqa: E402  (tests/ is put on the path just above)
from conftest import free_ports  # noqa: E402
from trips import counting  # noqa: E402  (bench/trips.py, beside this file)

from releaser.bundle import read_bundle  # noqa: E402
from releaser.clock import FakeClock  # noqa: E402
from releaser.config import load_environment  # noqa: E402
from releaser.fleet import connected, make_hosts  # noqa: E402

EXAMPLES = PROJECT / "examples" / "releases"
ACTOR = "bench@releaser"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,5,20", help="server counts, comma-separated (default 1,5,20)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure; the median is shown (default 5)")
    parser.add_argument("--shell-rc", choices=("skip", "keep", "both"), default="skip",
                        help="skip the login user's ~/.bashrc for SSH commands, keep it, or run both (default skip)")
    parser.add_argument("--rtt-ms", default="0",
                        help="round trips to emulate, comma-separated; 0 is plain loopback (default 0)")
    parser.add_argument("--only", choices=("all", "at-t"), default="all",
                        help="at-t: only the scheduled go-lives' T-to-rename figures, one line per N (default all)")
    parser.add_argument("--web-servers", choices=("python", "nginx"), default="python",
                        help="what answers the live and staging URLs verification reads: the sandbox's Python web "
                             "servers in a process of their own, or one nginx as in production (default python)")
    args = parser.parse_args()
    global WEB_SERVERS
    WEB_SERVERS = args.web_servers
    if args.web_servers == "nginx" and nginx_binary() is None:
        print("nginx not found; install nginx, or use --web-servers python", file=sys.stderr)
        return 2
    if sshd_path() is None:
        print("sshd not found; install openssh-server", file=sys.stderr)
        return 2
    sizes = [int(n) for n in args.sizes.split(",")]
    modes = ["skip", "keep"] if args.shell_rc == "both" else [args.shell_rc]
    tables = {}
    for mode in modes:
        for rtt in [float(ms) for ms in args.rtt_ms.split(",")]:
            rows = []
            for n in sizes:
                print(f"... N={n}, shell rc {mode}, rtt {rtt:g} ms", file=sys.stderr, flush=True)
                if args.only == "at-t":
                    rows.append(bench_at_t(n, args.repeat, skip_shell_rc=(mode == "skip"), rtt_ms=rtt))
                else:
                    rows.append(bench(n, args.repeat, skip_shell_rc=(mode == "skip"), rtt_ms=rtt))
            tables[(mode, rtt)] = rows
    for (mode, rtt), rows in tables.items():
        (show_at_t if args.only == "at-t" else show)(mode, rtt, rows, args.repeat)
    return 0


def farm_for(stack: ExitStack, base: Path, n: int, *, skip_shell_rc: bool, rtt_ms: float) -> tuple:
    """Start n sshd (and the delay proxies, with `rtt_ms`) and the web servers verification reads, for the stack's
    lifetime; return the farm, how the bench reaches it, and the environment file over that reach."""
    farm = stack.enter_context(SshdFarm(base / "farm", n, skip_shell_rc=skip_shell_rc))
    near = Reach([s.port for s in farm.servers], farm.known_hosts, free_ports(2 * n))
    reach = stack.enter_context(delayed(near, rtt_ms, base)) if rtt_ms else near
    # the web servers, up for the whole run, on the real ports behind any delay
    near_env = write_environment(farm, near, base / "near.toml")
    stack.enter_context(served_by_nginx(near_env, base / "nginx") if WEB_SERVERS == "nginx" else served_apart(near_env))
    return farm, reach, write_environment(farm, reach, base / "bench.toml")


WEB_SERVERS = "python"  # main() sets it from --web-servers


def nginx_binary() -> str | None:
    """Debian's nginx, if it is installed."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


@contextmanager
def served_by_nginx(env_path: Path, directory: Path) -> Iterator[None]:
    """Serve every server's live and staging URL with one nginx (two workers) for the block's duration.

    What production has in front of each server: every request follows the slot link (no open_file_cache),
    /healthz and the release marker are the release's own files. Stopped by its PID.
    """
    env = load_environment(str(env_path), PROJECT)
    blocks = []
    for server in env.servers:
        for slot, url in (("live", server.live_url), ("staging", server.staging_url)):
            port = url.rsplit(":", 1)[1]
            blocks.append(f"server {{ listen 127.0.0.1:{port}; root {server.root}/{slot}/public; "
                          "disable_symlinks off; open_file_cache off; location / { try_files $uri $uri/ =404; } }")
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"  {kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (directory / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 2;\npid {directory / 'nginx.pid'};\nerror_log {directory / 'logs/error.log'};\n"
        f"events {{ worker_connections 512; }}\nhttp {{\n  access_log off;\n{temp}\n  " + "\n  ".join(blocks) + "\n}\n")
    process = subprocess.Popen([nginx_binary(), "-p", str(directory), "-c", str(directory / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        first = env.servers[0].live_url.rsplit(":", 1)[1]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"nginx did not start: {process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", int(first)), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_SERVE = """
import sys
from pathlib import Path
from releaser.config import load_environment
from releaser.sandbox import serving
with serving(load_environment(sys.argv[1], Path(sys.argv[2]))):
    print("serving", flush=True)
    sys.stdin.read()  # until the bench closes it
"""


@contextmanager
def served_apart(env_path: Path) -> Iterator[None]:
    """Serve the environment's live and staging URLs from a child Python process for the block's duration."""
    child = subprocess.Popen([sys.executable, "-c", _SERVE, str(env_path), str(PROJECT)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    try:
        if child.stdout.readline().strip() != "serving":
            raise RuntimeError(f"the sandbox web servers did not start (exit {child.wait(10)})")
        yield
    finally:
        child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def bench(n: int, repeat: int, *, skip_shell_rc: bool, rtt_ms: float = 0.0) -> dict:
    """Every figure for one farm of n servers, `rtt_ms` away (0: plain loopback)."""
    row: dict = {"n": n}
    with tempfile.TemporaryDirectory(prefix="releaser-bench-") as scratch, ExitStack() as stack:
        base = Path(scratch)
        farm, reach, env_path = farm_for(stack, base, n, skip_shell_rc=skip_shell_rc, rtt_ms=rtt_ms)
        env = load_environment(str(env_path), PROJECT)
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
            fleet.stage(r2)  # once more, counted: the round trips per server of one go-live and one rollback
            with counting() as trips:
                assert all(r.ok for r in fleet.go_live().results)
            row["trips_go_live"], row["trips_go_live_kinds"] = trips.per_server(), trips.kinds()
            with counting() as trips:
                assert all(r.ok for r in fleet.rollback().results)
            row["trips_rollback"], row["trips_rollback_kinds"] = trips.per_server(), trips.kinds()
            row["after_t"] = renames_after_t(fleet, r2, repeat)
        row["go_live"], row["rollback"] = statistics.median(go_lives), statistics.median(rollbacks)
        row["skew_ms"] = statistics.median(skews) * 1000
        row["switch"], row["at_t"] = statistics.median(switches), statistics.median(at_t)

        roots = [str(s.root) for s in farm.servers]
        row["sequential"] = sequential_fabric(farm, reach, roots, repeat)
        row["floor"] = ssh_floor(farm, reach, roots, repeat, base)

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


def bench_at_t(n: int, repeat: int, *, skip_shell_rc: bool, rtt_ms: float = 0.0) -> dict:
    """Only the scheduled go-lives' T-to-rename figures for one farm of n servers (renames_after_t)."""
    with tempfile.TemporaryDirectory(prefix="releaser-bench-") as scratch, ExitStack() as stack:
        base = Path(scratch)
        farm, reach, env_path = farm_for(stack, base, n, skip_shell_rc=skip_shell_rc, rtt_ms=rtt_ms)
        env = load_environment(str(env_path), PROJECT)
        clock = FakeClock(datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))
        r1, r2 = read_bundle(EXAMPLES / "r1"), read_bundle(EXAMPLES / "r2")
        with connected(env, actor=ACTOR, clock=clock, journal_path=base / "journal.jsonl") as fleet:
            fleet.stage(r1)
            fleet.go_live()
            return {"n": n, "after_t": renames_after_t(fleet, r2, repeat)}


def show_at_t(mode: str, rtt_ms: float, rows: list[dict], repeat: int) -> None:
    """One line per N: each server's rename minus T over every server of --repeat scheduled go-lives."""
    far = f"{rtt_ms:g} ms round trip (bench/delay.py)" if rtt_ms else "plain loopback"
    print(f"\n{far}; shell rc {'skipped' if mode == 'skip' else 'kept'}; {repeat} scheduled go-lives; {os.cpu_count()} CPUs")
    print("N | T->rename med ms | worst ms | earliest ms | skew@T ms")
    print("- | - | - | - | -")
    for r in rows:
        t = r["after_t"]
        print(f"{r['n']} | {t['median_ms']:.1f} | {t['worst_ms']:.1f} | {t['earliest_ms']:.1f} | {t['skew_ms']:.1f}")


def renames_after_t(fleet, release, repeat: int) -> dict:
    """Scheduled go-lives (golive.go_live_at, the real clock, T two seconds ahead): each server's rename minus T.

    renamed_at is the epoch second each server's rename happened, read by that server (one machine here); the
    figures are over every server of every run: median and worst delay after T, the earliest (never negative
    when no rename is early) and the median skew between a run's first and last rename.
    """
    from datetime import timedelta

    from releaser.clock import SystemClock
    from releaser.golive import go_live_at

    delays, skews = [], []
    for _ in range(repeat):
        fleet.stage(release)
        clock = SystemClock()
        at = clock.now() + timedelta(seconds=2)
        result = go_live_at(fleet, at=at, clock=clock, lead=timedelta(seconds=1.5), prepare_ahead=timedelta(seconds=1))
        renamed = [r.renamed_at for r in result.results if r.renamed_at is not None]
        assert len(renamed) == len(result.results), result
        delays += [moment - at.timestamp() for moment in renamed]
        skews.append(max(renamed) - min(renamed))
        assert all(r.ok for r in fleet.rollback().results)
    return {"median_ms": statistics.median(delays) * 1000, "worst_ms": max(delays) * 1000,
            "earliest_ms": min(delays) * 1000, "skew_ms": statistics.median(skews) * 1000}


@dataclass(frozen=True)
class Reach:
    """How the bench reaches the farm: each server's SSH port, the known_hosts for those ports, the web ports."""

    ssh: list[int]
    known_hosts: Path
    web: list[int]  # live and staging of server i at 2i and 2i+1


@contextmanager
def delayed(near: Reach, rtt_ms: float, base: Path) -> Iterator[Reach]:
    """The same farm behind bench/delay.py, every port `rtt_ms` round trip away; known_hosts follows the ports."""
    far = Reach(free_ports(len(near.ssh)), base / f"known_hosts-{rtt_ms:g}ms", free_ports(len(near.web)))
    keys = dict(line.split(" ", 1) for line in near.known_hosts.read_text().splitlines() if line.strip())
    far.known_hosts.write_text("".join(f"[127.0.0.1]:{far_port} {keys[f'[127.0.0.1]:{port}']}\n"
                                       for port, far_port in zip(near.ssh, far.ssh)))
    pairs = [f"{a}:{b}" for a, b in zip(far.ssh + far.web, near.ssh + near.web)]
    proxy = subprocess.Popen([sys.executable, str(Path(__file__).with_name("delay.py")), "--one-way-ms", f"{rtt_ms / 2:g}",
                              *pairs], stdout=subprocess.PIPE, text=True)
    try:
        if proxy.stdout.readline().strip() != "ready":
            raise RuntimeError("bench/delay.py did not start")
        yield far
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


def write_environment(farm: SshdFarm, reach: Reach, path: Path) -> Path:
    """An SSH environment over the farm as `reach` reaches it, host key checking on; the bench runs its web servers."""
    ports = reach.web
    lines = ['transport = "ssh"', "allow_go_live_now = true", "keep_releases = 3", "",
             "[ssh]", f'user = "{farm.user}"', f'key_file = "{farm.key_file}"', f'known_hosts = "{reach.known_hosts}"',
             "connect_timeout = 10.0", "",
             "[health]", 'path = "/healthz"', 'contains = "ok"', "timeout = 2.0", "attempts = 1", "",
             "[sandbox]", "serve = false", ""]
    for i, server in enumerate(farm.servers):
        lines += ["[[servers]]", f'name = "{server.name}"', f'host = "{server.host}"', f"port = {reach.ssh[i]}",
                  f'root = "{server.root}"', f'live_url = "http://127.0.0.1:{ports[2 * i]}"',
                  f'staging_url = "http://127.0.0.1:{ports[2 * i + 1]}"', ""]
    path.write_text("\n".join(lines))
    return path


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


def sequential_fabric(farm: SshdFarm, reach: Reach, roots: list[str], repeat: int) -> float:
    """The flip as a plain loop over fabric.Connection, one server after the other; connections opened first."""
    import fabric
    import paramiko

    connections = []
    for server, port in zip(farm.servers, reach.ssh):
        connection = fabric.Connection(server.host, user=farm.user, port=port, connect_timeout=10,
                                       config=fabric.Config(overrides={"load_ssh_configs": False}),
                                       connect_kwargs={"key_filename": str(farm.key_file), "look_for_keys": False,
                                                       "allow_agent": False})
        connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        connection.client.load_host_keys(str(reach.known_hosts))
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


def ssh_floor(farm: SshdFarm, reach: Reach, roots: list[str], repeat: int, base: Path) -> float:
    """The flip by OpenSSH over already-open ControlMaster connections, all servers at once."""
    ssh = shutil.which("ssh")
    if ssh is None:
        return float("nan")
    common = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
              "-o", f"UserKnownHostsFile={reach.known_hosts}", "-o", "IdentitiesOnly=yes", "-i", str(farm.key_file),
              "-l", farm.user]
    sockets = [base / f"cm-{server.name}" for server in farm.servers]
    masters = []
    for server, sock, port in zip(farm.servers, sockets, reach.ssh):
        masters.append(subprocess.Popen([ssh, *common, "-p", str(port), "-M", "-S", str(sock), "-N", server.host],
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
                jobs = [subprocess.Popen([ssh, *common, "-p", str(port), "-S", str(sock), server.host,
                                          flip_command(root, target)], stdin=subprocess.DEVNULL)
                        for server, sock, root, port in zip(farm.servers, sockets, roots, reach.ssh)]
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


def show(mode: str, rtt_ms: float, rows: list[dict], repeat: int) -> None:
    rc = "skipped (sshd SetEnv SHLVL=1)" if mode == "skip" else "kept (root's ~/.bashrc runs pyenv init)"
    far = f"{rtt_ms:g} ms round trip (bench/delay.py)" if rtt_ms else "plain loopback"
    web = "one nginx" if WEB_SERVERS == "nginx" else "the sandbox's Python web servers, in a process of their own"
    print(f"\n{far}; shell rc {rc}; URLs answered by {web}; medians of {repeat}; {os.cpu_count()} CPUs")
    head = ("N", "switch s", "at-T s", "go-live cmd s", "rollback cmd s", "skew ms", "seq fabric s", "ratio", "ssh floor s",
            "cmd ms", "connect s", "cold rollback s", "cold status s", "--list s", "trips go-live", "trips rollback",
            "T->rename med ms", "worst ms", "earliest ms", "skew@T ms")
    print(" | ".join(head))
    print(" | ".join("-" * len(h) for h in head))
    for r in rows:
        cells = (r["n"], f"{r['switch']:.3f}", f"{r['at_t']:.3f}", f"{r['go_live']:.3f}", f"{r['rollback']:.3f}",
                 f"{r['skew_ms']:.1f}", f"{r['sequential']:.3f}", f"{r['sequential'] / r['switch']:.1f}x", f"{r['floor']:.3f}", f"{r['command'] * 1000:.1f}",
                 f"{r['connect']:.3f}", f"{r['cold_rollback']:.3f}", f"{r['cold_status']:.3f}", f"{r['list']:.3f}",
                 f"{r['trips_go_live']:g}", f"{r['trips_rollback']:g}",
                 f"{r['after_t']['median_ms']:.1f}", f"{r['after_t']['worst_ms']:.1f}", f"{r['after_t']['earliest_ms']:.1f}",
                 f"{r['after_t']['skew_ms']:.1f}")
        print(" | ".join(str(c) for c in cells))
    print("switch: prepare + commit + HTTP verification of every live URL (FleetResult.seconds['switch']); at-T: commit +"
          " verification, what a scheduled go-live does after the second; go-live/rollback cmd: the whole Fleet call"
          " (status read, lock, switch, unlock, journal), connections open; seq fabric: one `ln -sfn && mv -T` per server"
          " in a loop, no lock, no verification; ratio = seq fabric / switch; cmd ms: one `true` over an open connection;"
          " connect: paramiko, all N in parallel; cold: whole `invoke` processes, imports and connecting included;"
          " trips: SSH round trips per server of one go-live / rollback, connections open (bench/trips.py);"
          " T->rename: scheduled go-lives, each server's rename minus T (median, worst, earliest over all servers and"
          " runs; negative would be early), skew@T: median first-to-last rename of those runs")
    for r in rows[:1]:
        print(f"round trips per server at N={r['n']}: go-live: {r['trips_go_live_kinds']}; rollback: {r['trips_rollback_kinds']}")
    print_per_server(rows)


def print_per_server(rows: list[dict]) -> None:
    """What each server beyond the fewest costs: the slope between the smallest and the largest N measured."""
    if len(rows) < 2:
        return
    low, high = min(rows, key=lambda r: r["n"]), max(rows, key=lambda r: r["n"])
    extra = high["n"] - low["n"]
    costs = ", ".join(f"{label} {(high[key] - low[key]) / extra * 1000:.1f} ms"
                      for label, key in (("switch", "switch"), ("go-live cmd", "go_live"), ("ssh floor", "floor"),
                                         ("connect", "connect"), ("cold rollback", "cold_rollback")))
    print(f"each server beyond {low['n']} (up to {high['n']}) adds: {costs}; every server here shares this machine's CPUs")


if __name__ == "__main__":
    sys.exit(main())
