"""A private PostgreSQL cluster on loopback, for the data slot tests and bench/data.py.

    with PgCluster(tmp_path) as cluster:
        cluster.dsn           # postgresql://postgres@127.0.0.1:PORT/postgres
        cluster.stop()        # the database goes away, open sessions included (prepared transactions stay)
        cluster.start()       # same port, same data directory

initdb and postgres refuse to run as root, so when the tests run as root both run as the package's
`postgres` user (runuser) in a directory that user owns. `max_prepared_transactions` is raised above its
default of 0 for two-phase commit. The postmaster is found and stopped by the PID it writes, never by name.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 20.0
PG_MISSING = "PostgreSQL server binaries not found; install postgresql (apt-get install postgresql)"


def pg_bindir() -> Path | None:
    """The directory holding initdb and postgres (Debian puts them under /usr/lib/postgresql/N/bin)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class PgCluster:
    """One throwaway PostgreSQL cluster: initdb'd into a fresh directory, listening on a free loopback port."""

    def __init__(self, base: Path | None = None, *, port: int | None = None) -> None:
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise RuntimeError(PG_MISSING)
        # A directory the postgres user can write: /tmp-based, as pytest's tmp_path may sit under root's home.
        self.base = Path(tempfile.mkdtemp(prefix="releaser-pg-", dir=str(base) if base else None))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = port or _free_port()
        self.pid: int | None = None
        self._as_user = os.geteuid() == 0
        if self._as_user:
            user = pwd.getpwnam("postgres")
            os.chmod(self.base, 0o755)
            os.chown(self.base, user.pw_uid, user.pw_gid)
            parent = self.base.parent
            while parent != parent.parent:  # every parent must let the postgres user through
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
                parent = parent.parent

    @property
    def dsn(self) -> str:
        """A libpq URL for the superuser `postgres` on database `postgres`."""
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def initdb(self) -> None:
        """Create the cluster (trust authentication on loopback only: nobody else can reach the port)."""
        self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--no-sync", "--no-instructions"])

    def start(self) -> None:
        """Start the postmaster and wait (polling, with a deadline) until it accepts connections."""
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", HOST,
                "-k", str(self.base), "-c", "max_prepared_transactions=10", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=60",
                "-c", "shared_buffers=64MB", "-c", "max_wal_size=1GB"]
        log = open(self.log, "ab")
        if self._as_user:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_DEADLINE_S
        pidfile = self.data / "postmaster.pid"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"postgres exited with {process.returncode}:\n{self.log.read_text()[-2000:]}")
            if pidfile.exists() and self._accepts():
                self.pid = int(pidfile.read_text().split()[0])
                self._process = process
                return
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections within {START_DEADLINE_S:g} s:\n"
                           f"{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop the postmaster by its PID (fast shutdown: sessions are cut, prepared transactions are kept)."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_DEADLINE_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        self._process.wait(5)

    def __enter__(self) -> "PgCluster":
        self.initdb()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def _accepts(self) -> bool:
        done = subprocess.run([str(self.bindir / "pg_isready"), "-h", HOST, "-p", str(self.port), "-q"],
                              check=False)
        return done.returncode == 0

    def _run(self, argv: list[str]) -> None:
        if self._as_user:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[-1]} failed: {done.stderr or done.stdout}")
