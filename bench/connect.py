"""Cold connections: releaser's SSH connect against OpenSSH's own `ssh`, on the same real sshd farm.

    .venv/bin/python bench/connect.py [--sizes 1,20] [--repeat 7]

For each N it starts N sshd on loopback (tests/sshfarm.py) and times, in alternating rounds, opening a new
connection to every server at once and running `true` there:

- releaser: `SshHost.open()` + one `run(["true"])` per server, in threads (what every cold command pays);
- ssh default: `ssh -F /dev/null ... true` per server, in parallel processes, with OpenSSH's default key
  exchange (sntrup761x25519 on OpenSSH 9.2);
- ssh curve25519: the same with `-o KexAlgorithms=curve25519-sha256`, the exchange paramiko settles on with
  these servers (paramiko would take mlkem768x25519 first, which OpenSSH 9.2 does not offer).

It also prints which key exchange, host key and cipher releaser's connection negotiated.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ssh_environment_for  # noqa: E402
from sshfarm import SshdFarm  # noqa: E402
from releaser.transport import make_hosts  # noqa: E402


def releaser_connect(environment) -> tuple[float, str]:
    """Open every server's connection in parallel and run `true` on each; seconds, and what was negotiated."""
    hosts = make_hosts(environment)
    started = time.perf_counter()
    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(lambda host: (host.open(), host.run(["true"])), hosts.values()))
    seconds = time.perf_counter() - started
    first = next(iter(hosts.values()))
    transport = first._connection.client.get_transport() if getattr(first, "_connection", None) else None
    negotiated = (f"{transport.local_cipher}, host key {transport.host_key_type}" if transport else "?")
    for host in hosts.values():
        host.close()
    return seconds, negotiated


def openssh_connect(farm, *extra: str) -> float:
    """`ssh ... true` to every server at once, each its own process; the seconds until the last one ended."""
    started = time.perf_counter()
    processes = [subprocess.Popen(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "GSSAPIAuthentication=no",
                                   "-o", f"UserKnownHostsFile={farm.known_hosts}", *extra, "-i", str(farm.key_file),
                                   "-p", str(server.port), f"{farm.user}@{server.host}", "true"])
                 for server in farm.servers]
    if any(process.wait(timeout=60) for process in processes):
        raise SystemExit("ssh failed")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,20")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print("| N | releaser s | ssh default kex s | ssh curve25519 s | releaser negotiated |")
    print("|---|---|---|---|---|")
    for size in (int(n) for n in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-connect-") as scratch, \
                SshdFarm(Path(scratch) / "farm", size, skip_shell_rc=True) as farm:
            environment = ssh_environment_for(farm, Path(scratch) / "env.toml")
            rounds = {"releaser": [], "default": [], "curve": []}
            negotiated = "?"
            for _ in range(args.repeat):  # alternating, so a busy moment on this shared machine hits all three
                seconds, negotiated = releaser_connect(environment)
                rounds["releaser"].append(seconds)
                rounds["default"].append(openssh_connect(farm))
                rounds["curve"].append(openssh_connect(farm, "-o", "KexAlgorithms=curve25519-sha256"))
            median = {name: statistics.median(values) for name, values in rounds.items()}
            print(f"| {size} | {median['releaser']:.3f} | {median['default']:.3f} | {median['curve']:.3f} | {negotiated} |")


if __name__ == "__main__":
    main()
