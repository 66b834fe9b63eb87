"""A farm of real OpenSSH ``sshd`` processes on loopback, for the shell tests.

Each server gets its own port, host key, log file and empty app root; one client key is authorised on all of
them and one ``known_hosts`` file lists every host key, so host key checking can stay on in tests.

    with SshdFarm(tmp_path, 3) as farm:
        farm.stop("web-2")      # the server dies, open sessions included
        farm.restart("web-2")   # same port, same host key

Processes are found and stopped by PID only (the listener's PID, then its descendants found through the
``PPid`` field of ``/proc/<pid>/status``), never by name, so farms of parallel test runs do not interfere.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
START_DEADLINE_S = 10.0
TERM_GRACE_S = 3.0
SSHD_MISSING = "sshd not found; install openssh-server (apt-get install openssh-server)"


def sshd_path() -> str | None:
    """The absolute path of the OpenSSH server binary, or None when it is not installed."""
    found = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin")
    return os.path.abspath(found) if found else None


def _openssh_version(sshd: str) -> tuple[int, int]:
    out = subprocess.run([sshd, "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stdout + out.stderr)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for port 0; every socket stays bound until all are picked, so none repeats."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _parent_map() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    parents = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so split after the last ")"
        fields = stat.rpartition(")")[2].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an ended process nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _freeze_tree(root: int) -> list[int]:
    """SIGSTOP ``root`` and every descendant, scanning until no new child appears; returns them root first.

    Stopping before killing matters: sshd forks one process per connection and each session forks again, so a
    process found later could otherwise fork a child we never see, and children of a killed parent are
    re-parented away from the tree.
    """
    frozen = [root]
    _signal(root, signal.SIGSTOP)
    while True:
        parents = _parent_map()
        members = set(frozen)
        new = [pid for pid, ppid in parents.items() if ppid in members and pid not in members]
        if not new:
            return frozen
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        frozen.extend(new)


def _tree_of(proc: subprocess.Popen) -> list[int]:
    """The frozen process tree of a listener we started; empty once it has exited and been reaped, because its
    PID may then belong to somebody else."""
    return [] if proc.poll() is not None else _freeze_tree(proc.pid)


def _wait_gone(pids: list[int], deadline: float) -> list[int]:
    """Poll until every pid is gone or the deadline passes; returns those still alive."""
    while True:
        alive = [pid for pid in pids if pid_alive(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def _banner(port: int) -> bool:
    """True when something on ``port`` greets us with an SSH identification string."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            greeted = sock.recv(64).startswith(b"SSH-")
            if greeted:  # answer in kind, so sshd does not log a kex_exchange_identification error per probe
                sock.sendall(b"SSH-2.0-sshfarm-probe\r\n")
            return greeted
    except OSError:
        return False


@dataclass
class FarmServer:
    name: str  # "web-1", "web-2", ...
    host: str  # "127.0.0.1"
    port: int  # free port picked by binding port 0 first
    root: Path  # app root for this server: <base>/web-1/app (created, empty)
    pid: int | None  # the sshd listener pid while running


class SshdFarm:
    """K independent real sshd processes on loopback, each with its own host key, port and app root."""

    def __init__(self, base: Path, count: int, *, skip_shell_rc: bool = False):
        """`skip_shell_rc` stops bash from reading the login user's ~/.bashrc for each SSH command (sshd sets
        SHLVL=1, and bash reads .bashrc under sshd only at shell level 1): a slow rc file (pyenv init, ~120 ms)
        then no longer dominates every round trip. Off by default, so tests see the account as it is."""
        if count < 1:
            raise ValueError(f"a farm needs at least one server, got {count}")
        self.base = Path(base).resolve()
        self.count = count
        self.skip_shell_rc = skip_shell_rc
        # the account this process runs as: a non-root sshd can only log that one in (getpass.getuser() trusts
        # $USER/$LOGNAME, which su/setpriv/sudo may leave pointing at someone else)
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.key_file = self.base / "client_ed25519"
        self.known_hosts = self.base / "known_hosts"
        self.authorized_keys = self.base / "authorized_keys"
        self.servers: list[FarmServer] = []
        self._procs: dict[str, subprocess.Popen] = {}
        self._sshd: str | None = None

    # -- public API -------------------------------------------------------------------------------------------

    def server(self, name: str) -> FarmServer:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(f"no server {name!r} in this farm; have {[s.name for s in self.servers]}")

    def server_dir(self, name: str) -> Path:
        return self.base / name

    def log_path(self, name: str) -> Path:
        return self.server_dir(name) / "sshd.log"

    def start(self) -> SshdFarm:
        """Generate keys and configs, start every sshd in parallel and wait until each one greets."""
        self._sshd = sshd_path()
        if self._sshd is None:
            raise RuntimeError(SSHD_MISSING)
        if self.servers:
            raise RuntimeError("farm already started")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation dir
        self.base.mkdir(parents=True, exist_ok=True)
        names = [f"web-{i}" for i in range(1, self.count + 1)]
        for name in names:
            (self.server_dir(name) / "app").mkdir(parents=True, exist_ok=True)
        self._generate_keys(names)
        ports = _free_ports(self.count)
        self.servers = [FarmServer(n, HOST, p, self.server_dir(n) / "app", None) for n, p in zip(names, ports)]
        extra = ["PerSourcePenalties no"] if _openssh_version(self._sshd) >= (9, 8) else []
        known = []
        for server in self.servers:
            self._write_config(server, extra)
            pub = (self.server_dir(server.name) / "ssh_host_ed25519_key.pub").read_text().split()
            known.append(f"[{server.host}]:{server.port} {pub[0]} {pub[1]}\n")
        self.known_hosts.write_text("".join(known))
        atexit.register(self.close)
        try:
            for server in self.servers:
                self._spawn(server)
            self._await_banners(self.servers)
        except BaseException:
            self.close()
            raise
        return self

    def stop(self, name: str) -> None:
        """Simulate the server dying: SIGKILL its listener and every session process it forked."""
        server = self.server(name)
        proc = self._procs.pop(name, None)
        server.pid = None
        if proc is None:
            return
        pids = _tree_of(proc)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        proc.wait()
        alive = _wait_gone(pids, time.monotonic() + TERM_GRACE_S)
        if alive:
            raise RuntimeError(f"{name}: sshd processes {alive} survived SIGKILL")

    def drop_sessions(self, name: str) -> None:
        """Simulate a broken network path: SIGKILL every session process, keep the listener, so the server is up."""
        proc = self._procs.get(name)
        if proc is None:
            return
        tree = _tree_of(proc)  # frozen, listener first
        for pid in tree[1:]:
            _signal(pid, signal.SIGKILL)
        _signal(tree[0], signal.SIGCONT)
        alive = _wait_gone(tree[1:], time.monotonic() + TERM_GRACE_S)
        if alive:
            raise RuntimeError(f"{name}: sshd sessions {alive} survived SIGKILL")

    def freeze(self, name: str) -> list[int]:
        """Simulate a server gone silent: SIGSTOP its listener and every session, sockets left open (thaw() ends it).

        The kernel still accepts connections and acknowledges bytes, but nothing answers: no greeting, no output.
        """
        proc = self._procs.get(name)
        return [] if proc is None else _tree_of(proc)

    def thaw(self, name: str) -> None:
        """SIGCONT every process of a frozen server, listener first."""
        for pid in self.pids(name):
            _signal(pid, signal.SIGCONT)

    def restart(self, name: str) -> None:
        """Start a stopped server again on the same port with the same host key (stops it first if running)."""
        server = self.server(name)
        self.stop(name)
        try:
            self._spawn(server)
            self._await_banners([server])
        except BaseException:
            self.stop(name)
            raise

    def close(self) -> None:
        """Stop every server and its sessions by PID: SIGTERM, then SIGKILL after 3 s. Idempotent."""
        procs, self._procs = self._procs, {}
        for server in self.servers:
            server.pid = None
        everyone = [pid for proc in procs.values() for pid in _tree_of(proc)]
        for pid in everyone:
            _signal(pid, signal.SIGTERM)
            _signal(pid, signal.SIGCONT)  # a stopped process only acts on SIGTERM once continued
        alive = _wait_gone(everyone, time.monotonic() + TERM_GRACE_S)
        for pid in alive:
            _signal(pid, signal.SIGKILL)
        for proc in procs.values():
            proc.wait()
        _wait_gone(everyone, time.monotonic() + TERM_GRACE_S)
        atexit.unregister(self.close)

    def pids(self, name: str | None = None) -> list[int]:
        """Live processes of one server, or of the whole farm: listeners and all their descendants (a snapshot)."""
        parents = _parent_map()
        procs = [p for n, p in self._procs.items() if name is None or n == name]
        found = [proc.pid for proc in procs if proc.poll() is None]
        frontier = set(found)
        while frontier:
            frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
            found.extend(frontier)
        return found

    def __enter__(self) -> SshdFarm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------------------

    def _generate_keys(self, names: list[str]) -> None:
        """All host keys plus the client key, ssh-keygen running in parallel."""
        keygen = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
        targets = [self.key_file] + [self.server_dir(n) / "ssh_host_ed25519_key" for n in names]
        jobs = []
        for target in targets:
            for stale in (target, target.with_name(target.name + ".pub")):
                stale.unlink(missing_ok=True)
            cmd = [keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"sshfarm-{target.parent.name}", "-f", str(target)]
            jobs.append((target, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
        for target, job in jobs:
            out, _ = job.communicate()
            if job.returncode != 0:
                raise RuntimeError(f"ssh-keygen for {target} failed: {out.decode(errors='replace')}")
        self.authorized_keys.write_text(self.key_file.with_name(self.key_file.name + ".pub").read_text())

    def _write_config(self, server: FarmServer, extra: list[str]) -> None:
        d = self.server_dir(server.name)
        lines = [
            f"ListenAddress {server.host}",
            f"Port {server.port}",
            f"HostKey {d / 'ssh_host_ed25519_key'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"PidFile {d / 'sshd.pid'}",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}",
            "MaxSessions 100",
            "MaxStartups 100:30:200",
            "LoginGraceTime 30",
            "UseDNS no",
            "PrintMotd no",
            "LogLevel ERROR",
            "Subsystem sftp internal-sftp",  # fabric's put/get speak SFTP
            *(["SetEnv SHLVL=1"] if self.skip_shell_rc else []),
            *extra,
        ]
        (d / "sshd_config").write_text("\n".join(lines) + "\n")

    def _spawn(self, server: FarmServer) -> None:
        d = self.server_dir(server.name)
        with open(self.log_path(server.name), "ab") as log:  # append: a restart keeps the earlier history
            proc = subprocess.Popen(
                [self._sshd, "-D", "-e", "-f", str(d / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._procs[server.name] = proc
        server.pid = proc.pid

    def _await_banners(self, servers: list[FarmServer]) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        waiting = list(servers)
        while waiting:
            for server in list(waiting):
                proc = self._procs[server.name]
                if proc.poll() is not None:
                    self._fail(server, f"sshd exited with status {proc.returncode}")
                if _banner(server.port):
                    waiting.remove(server)
            if waiting and time.monotonic() >= deadline:
                self._fail(waiting[0], f"no SSH banner on {waiting[0].host}:{waiting[0].port} "
                                       f"within {START_DEADLINE_S:.0f} s")
            if waiting:
                time.sleep(0.02)

    def _fail(self, server: FarmServer, why: str) -> None:
        """Raise a RuntimeError naming the server, with the tail of its log; the caller cleans up."""
        try:
            tail = self.log_path(server.name).read_text(errors="replace").splitlines()[-20:]
        except OSError:
            tail = []
        log = "\n".join(tail) or "(log empty)"
        raise RuntimeError(f"{server.name}: {why}; last lines of {self.log_path(server.name)}:\n{log}")
