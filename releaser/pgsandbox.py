"""A private PostgreSQL cluster under sandbox/ for `invoke demo-app`: initdb, pg_ctl start, pg_ctl stop.

Only Debian's (or any) PostgreSQL server binaries are needed; nothing is installed or configured system-wide.
The cluster listens on 127.0.0.1 only, on a free port, with trust authentication for its own superuser, and
`max_prepared_transactions` above its default of 0, which the data slots' two-phase switch needs. initdb and
postgres refuse to run as root, so as root both run as the `postgres` user (runuser) when it exists.
Every step has a deadline; `stop` is a fast shutdown through pg_ctl, which signals the PID the server wrote.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

HOST = "127.0.0.1"
START_DEADLINE_S = 30
STEP_DEADLINE_S = 60


class ClusterUnavailable(Exception):
    """PostgreSQL cannot run here (binaries missing, no unprivileged user as root): say why in one line."""


def find_bindir() -> Path | None:
    """The directory with initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions and (versions[-1].parent / "initdb").exists() else None


class SandboxCluster:
    """One throwaway cluster in `directory` (made afresh), reachable at `dsn` between start() and stop()."""

    def __init__(self, directory: Path) -> None:
        self.bindir = find_bindir()
        if self.bindir is None:
            raise ClusterUnavailable("PostgreSQL is not installed (no initdb/pg_ctl; Debian: apt-get install postgresql)")
        self.directory = directory
        self.data = directory / "data"
        self.log = directory / "postgres.log"
        self.port = _free_port()
        self.started = False
        self._user = None
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError:
                raise ClusterUnavailable("PostgreSQL refuses to run as root and there is no 'postgres' user") from None

    @property
    def dsn(self) -> str:
        """A libpq URL for the cluster's superuser on its default database."""
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def start(self) -> None:
        """initdb a fresh data directory and start the server, waiting until it accepts connections."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        if self._user is not None:
            os.chown(self.directory, self._user.pw_uid, self._user.pw_gid)
            if not self._user_can_enter():
                raise ClusterUnavailable(f"the postgres user cannot reach {self.directory} (a parent directory "
                                         "is closed to other users)")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (f"-h {HOST} -p {self.port} -k {self.directory} -c max_prepared_transactions=10 "
                   "-c fsync=off -c max_connections=40")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", str(START_DEADLINE_S), "start")
        self.started = True

    def stop(self) -> None:
        """Stop the server (fast shutdown) if this object started it; the data directory stays for inspection."""
        if self.started:
            self.started = False
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(START_DEADLINE_S), "stop")

    def _run(self, program: str, *args: str) -> None:
        argv = [str(self.bindir / program), *args]
        if self._user is not None:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_DEADLINE_S, check=False,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ClusterUnavailable(f"{program} did not finish within {STEP_DEADLINE_S} s") from None
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()
            raise ClusterUnavailable(f"{program} failed: {last[-1] if last else f'exit {done.returncode}'}")

    def _user_can_enter(self) -> bool:
        probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.directory)],
                               capture_output=True, timeout=STEP_DEADLINE_S, check=False)
        return probe.returncode == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]
