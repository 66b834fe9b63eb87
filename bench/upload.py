"""Staging a large built bundle on 3 real sshd servers: wall time and peak memory, against parallel scp.

    python bench/upload.py [--mb 1024] [--servers 3] [--repeat 2] [--step 120]

Builds (once, outside the timings) a .tar.gz bundle under /tmp holding one file of --mb MB of random bytes,
stored with gzip level 1 (random bytes do not compress, so the archive is as large as the file). Then, in
turns, each --repeat times:

- releaser: a child process that reads the bundle (read_bundle: verify every file's sha256, take the archive's
  own) and stages it on every server (the archive streamed through `ssh` into each server's hasher and tar
  at once, or over SFTP without an ssh client; then the links), its peak RSS from the kernel (ru_maxrss of
  that child);
- scp: OpenSSH `scp` of the same file to every server at once, nothing else (no check, no unpack), with
  OpenSSH's default cipher, and again with releaser's (AES-GCM first, openssh.CIPHERS);
- ssh | tar: the file streamed by `ssh` into `tar -xzf -` on every server at once, with releaser's cipher:
  what a tool that unpacks with the server's tar and gzip costs here (nothing hashed, nothing checked). releaser
  inflates with the server's python3 zlib where there is one (remote.INFLATE), so it can come in under this.

The staged release is removed between runs, so every run uploads. All servers and the client share this
machine's CPUs and disk, so the figures are for comparing the two, not for a real network.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT), str(PROJECT / "tests"), str(Path(__file__).resolve().parent)]

from sshfarm import SshdFarm, sshd_path  # noqa: E402
from switch import Reach, write_environment, free_ports  # noqa: E402  (bench/switch.py)
from releaser.openssh import CIPHERS  # noqa: E402

STAGE = """
import json, sys, time
from datetime import datetime, timezone
from pathlib import Path
from releaser.bundle import read_bundle
from releaser.clock import FakeClock
from releaser.config import load_environment
from releaser.fleet import connected
env = load_environment(sys.argv[1], Path(sys.argv[3]))
started = time.perf_counter()
bundle = read_bundle(Path(sys.argv[2]))
read = time.perf_counter() - started
with connected(env, actor="bench@releaser", clock=FakeClock(datetime(2026, 11, 30, 9, tzinfo=timezone.utc)),
               journal_path=Path(sys.argv[1]).with_suffix(".jsonl")) as fleet:
    result = fleet.stage(bundle)
print(json.dumps({"read": read, "stage": result.seconds["total"], "upload": result.seconds["upload"]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="size of the bundle's one file in MB (default 1024)")
    parser.add_argument("--servers", type=int, default=3, help="sshd servers (default 3)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (default 2); medians shown")
    parser.add_argument("--step", type=float, default=0,
                        help="[deadlines] step for the run, in s (default: the environment's 20 s); the unpack of a "
                             "large bundle on servers sharing this machine's cores can take longer")
    args = parser.parse_args()
    if sshd_path() is None or shutil.which("scp") is None:
        print("sshd or scp not found; install openssh-server and openssh-client", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="releaser-upload-", dir="/tmp") as scratch:
        base = Path(scratch)
        bundle = make_bundle(base, args.mb)
        size = bundle.stat().st_size
        with SshdFarm(base / "farm", args.servers, skip_shell_rc=True) as farm:
            reach = Reach([s.port for s in farm.servers], farm.known_hosts, free_ports(2 * args.servers))
            env = write_environment(farm, reach, base / "bench.toml")
            if args.step:  # over SFTP the unpack (sha256, tar, sha256 of every file) comes after the upload
                env.write_text(env.read_text() + f"\n[deadlines]\nstep = {args.step:g}\n")
            ours, peaks, reads, uploads, theirs, theirs_gcm, untar = [], [], [], [], [], [], []
            for round_ in range(args.repeat):
                print(f"... round {round_ + 1} of {args.repeat}", file=sys.stderr, flush=True)
                for server in farm.servers:
                    shutil.rmtree(server.root, ignore_errors=True)
                    server.root.mkdir(parents=True)
                wall, peak, figures = stage_process(env, bundle)
                ours.append(wall), peaks.append(peak), reads.append(figures["read"]), uploads.append(figures["upload"])
                theirs.append(parallel_scp(farm, bundle))
                theirs_gcm.append(parallel_scp(farm, bundle, ["-c", CIPHERS]))
                untar.append(parallel_untar(farm, bundle))
    mb = size / 1e6
    print(f"\n{args.servers} sshd servers on loopback, a {mb:.0f} MB .tar.gz, medians of {args.repeat}; {os.cpu_count()} CPUs")
    print("what | s | MB/s per server | peak RSS MB")
    print("--- | ---: | ---: | ---:")
    print(f"releaser stage (whole process: start, read_bundle, lock, upload + check + unpack, links) | {statistics.median(ours):.2f} | "
          f"{mb / statistics.median(ours):.0f} | {statistics.median(peaks):.0f}")
    print(f"  of which read_bundle (verify every file, hash the archive) | {statistics.median(reads):.2f} | |")
    print(f"  of which the lock, upload, hashing and unpacking on every server | {statistics.median(uploads):.2f} | |")
    for label, runs in (("parallel scp of the same file (OpenSSH's default cipher)", theirs),
                        ("parallel scp, releaser's cipher (AES-GCM first)", theirs_gcm),
                        ("parallel ssh | tar -xzf - on each server, releaser's cipher (no checks)", untar)):
        print(f"{label} | {statistics.median(runs):.2f} | {mb / statistics.median(runs):.0f} | ")
    print(f"ratio releaser / scp: {statistics.median(ours) / statistics.median(theirs):.2f}x; "
          f"releaser / ssh | tar: {statistics.median(ours) / statistics.median(untar):.2f}x")
    return 0


def make_bundle(base: Path, mb: int) -> Path:
    """A bundle .tar.gz with one random file of `mb` MB, gzip level 1, and a manifest saying its sha256."""
    import hashlib

    data = base / "data.bin"
    digest = hashlib.sha256()
    with open(data, "wb") as handle:
        for _ in range(mb):
            block = os.urandom(1 << 20)
            digest.update(block)
            handle.write(block)
    manifest = base / "manifest.json"
    manifest.write_text(json.dumps({"release_id": "big", "files": {"data.bin": digest.hexdigest()}}))
    out = base / "big.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=1) as archive:
        archive.add(manifest, arcname="manifest.json")
        archive.add(data, arcname="data.bin")
    data.unlink()
    return out


def stage_process(env: Path, bundle: Path) -> tuple[float, float, dict]:
    """Wall seconds and peak RSS (MB) of one child process that reads the bundle and stages it."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", STAGE, str(env), str(bundle), str(PROJECT)], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "NO_COLOR": "1"})
    out, _ = child.communicate()
    wall = time.perf_counter() - started
    if child.returncode:
        raise RuntimeError(f"staging exited {child.returncode}")
    return wall, peak_rss_mb(), json.loads(out.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """The largest peak RSS among the children waited for so far (Linux: KiB): the stage child's, the largest here."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _ssh_options(farm: SshdFarm) -> list[str]:
    return ["-q", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={farm.known_hosts}", "-o", "IdentitiesOnly=yes", "-i", str(farm.key_file)]


def parallel_scp(farm: SshdFarm, bundle: Path, extra: list[str] = ()) -> float:
    """Seconds for scp of the bundle to every server at once."""
    started = time.perf_counter()
    jobs = [subprocess.Popen(["scp", *_ssh_options(farm), *extra, "-P", str(server.port), str(bundle),
                              f"{farm.user}@{server.host}:{server.root}/scp-copy.tar.gz"]) for server in farm.servers]
    codes = [job.wait() for job in jobs]
    seconds = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"scp failed: {codes}")
    return seconds


def parallel_untar(farm: SshdFarm, bundle: Path) -> float:
    """Seconds for `ssh host tar -xzf -` of the bundle on every server at once (the bare unpack, no checks)."""
    started = time.perf_counter()
    jobs = []
    for server in farm.servers:
        with open(bundle, "rb") as source:
            jobs.append(subprocess.Popen(["ssh", *_ssh_options(farm), "-c", CIPHERS, "-p", str(server.port),
                                          f"{farm.user}@{server.host}",
                                          "rm -rf {0} && mkdir {0} && tar -xzf - -C {0}".format(
                                              shlex.quote(f"{server.root}/untar"))], stdin=source))
    codes = [job.wait() for job in jobs]
    seconds = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"ssh | tar failed: {codes}")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
