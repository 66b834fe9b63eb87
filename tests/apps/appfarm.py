"""An sshd farm whose servers run real application instances (gunicorn) behind real nginx fronts, and wrk load.

Used by tests/shell/test_front_nginx.py and bench/front.py. Every process started here is stopped by its PID:
nginx masters by the Popen we hold, instances through their pid files, wrk by its Popen.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from conftest import PROJECT, free_ports, read_slots, write_environment
from releaser import instances
from releaser.config import Environment, load_environment
from releaser.participants import SwitchContext, participants_for
from releaser.slots import plan_go_live, plan_rollback, plan_stage
from releaser.switch import Deadlines, SwitchReport, run_switch
from releaser.transport import make_hosts

APPS = Path(__file__).resolve().parent
SUPERVISE = APPS / "supervise"
TALLY = APPS / "tally.lua"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def missing_tools() -> list[str]:
    """What this machine lacks to run instances behind nginx under load (empty when all is there)."""
    missing = [name for name, path in (("nginx", NGINX), ("wrk", WRK), ("curl", shutil.which("curl") or ""))
               if not os.access(path, os.X_OK)]
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        missing.append("gunicorn (pip install -e '.[test]')")
    return missing


def put_release(root: Path, release: str) -> None:
    """Unpack a tiny release into root/releases/<id> with its checksum file, as stage would."""
    directory = root / "releases" / release
    (directory / "public").mkdir(parents=True, exist_ok=True)
    (directory / "public" / "index.html").write_text(f"<p>release {release}</p>\n")
    (directory / "config").mkdir(exist_ok=True)
    (directory / "config" / "app.toml").write_text('[app]\nname = "phof"\n')
    sums = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(directory)}"
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".releaser-sha256sums"]
    (directory / ".releaser-sha256sums").write_text("\n".join(sums) + "\n")


class Front:
    """One nginx master serving a server's public port, stopped by its PID: its upstream is the unix socket link
    releaser keeps (`socket`), or else the include releaser replaces, first naming `first_upstream`."""

    def __init__(self, directory: Path, port: int, first_upstream: int, socket: Path | None = None) -> None:
        self.directory = directory
        self.port = port
        (directory / "logs").mkdir(parents=True, exist_ok=True)
        self.include = directory / "live.upstream"
        if socket is None:
            self.include.write_text(f"server 127.0.0.1:{first_upstream};\n")
        self.upstream = f"server unix:{socket};" if socket is not None else f"include {self.include};"
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "".join(f"    {kind}_temp_path {directory / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf = directory / "nginx.conf"
        self.conf.write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\nerror_log {directory / 'logs/error.log'};\n"
            f"events {{ worker_connections 1024; }}\nhttp {{\n    access_log off;\n{temp}"
            f"    upstream app_live {{ {self.upstream} }}\n"
            f"    server {{\n        listen 127.0.0.1:{port};\n"
            f"        location = /nginx-status {{ stub_status; }}\n"
            f"        location / {{ proxy_pass http://app_live; }}\n    }}\n}}\n")
        self.start()

    def start(self) -> None:
        """Start the master (again, after stop)."""
        self.process = subprocess.Popen([NGINX, "-p", str(self.directory), "-c", str(self.conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def argv(self) -> list[str]:
        """The [application.front] nginx argv for this front, relative to the server's app root (root/../nginx)."""
        return [NGINX, "-p", "../nginx/", "-c", "nginx.conf"]  # -c is taken from the prefix

    def wait_until_answering(self, deadline_seconds: float = 10.0) -> None:
        """Poll the status page until nginx answers, or raise with its error log."""
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            try:
                _OPENER.open(f"http://127.0.0.1:{self.port}/nginx-status", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.02)
        log = (self.directory / "logs" / "error.log").read_text(errors="replace")
        raise RuntimeError(f"nginx did not answer on {self.port}: {log}")

    def requests(self) -> int:
        """The number of requests this nginx has handled (stub_status)."""
        with _OPENER.open(f"http://127.0.0.1:{self.port}/nginx-status", timeout=2) as response:
            return int(response.read().decode().splitlines()[2].split()[2])

    def stop(self) -> None:
        """Stop the master (and so its workers) by PID."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def answer(url: str) -> tuple[int, str | None]:
    """GET url on a new connection: its status and the release it names."""
    try:
        with _OPENER.open(url, timeout=5) as response:
            response.read()
            return response.status, response.headers.get("X-Release-Id")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("X-Release-Id")


# [application.front] socket, relative to each server's app root
SOCKET = ".releaser/front/live.sock"


class AppFarm:
    """Servers of an sshd farm, each with a front (nginx), three instance ports and the releases r1, r2, r3 on disk.

    `way` is how the front moves: "socket" (a link to the live instance's unix socket, no reload) or "include"
    (the include file and a graceful reload). Each server's app root is reached through a short link under
    /tmp (pytest's directories are deeper than the 107 bytes a unix socket's path may have).
    """

    def __init__(self, farm, base: Path, *, workers: int = 2, way: str = "socket") -> None:
        self.farm = farm
        self.base = base
        self.fronts: dict[str, Front] = {}
        self.short = Path(tempfile.mkdtemp(prefix="rf-", dir="/tmp"))
        ports = free_ports(5 * len(farm.servers))
        servers = []
        for i, server in enumerate(farm.servers):
            public, staging, *app_ports = ports[5 * i:5 * i + 5]
            root = self.short / server.name
            root.symlink_to(server.root)
            socket = root / SOCKET if way == "socket" else None
            self.fronts[server.name] = Front(server.root.parent / "nginx", public, app_ports[0], socket)
            servers.append({"name": server.name, "host": server.host, "port": server.port, "root": str(root),
                            "live_url": f"http://127.0.0.1:{public}", "staging_url": f"http://127.0.0.1:{staging}",
                            "app_ports": app_ports})
            for release in ("r1", "r2", "r3"):
                put_release(server.root, release)
        front = next(iter(self.fronts.values()))
        nginx_argv = ", ".join(json.dumps(part) for part in front.argv())
        ssh = f'user = "{farm.user}"\nkey_file = "{farm.key_file}"\nknown_hosts = "{farm.known_hosts}"\nconnect_timeout = 5.0\n'
        command = f"RELEASER_TEST_WORKERS={workers} {SUPERVISE} {sys.executable}"
        extra = f"""
[application]
start = "{command} start"
stop = "{command} stop"
ports = [1, 2, 3]
health_path = "/healthz"
start_timeout = 30.0

[application.front]
""" + (f'socket = "{SOCKET}"\n' if way == "socket" else f'include = "../nginx/live.upstream"\nnginx = [{nginx_argv}]\n')
        path = write_environment(base / "app-env.toml", servers=servers, transport="ssh", ssh=ssh, extra=extra)
        self.environment: Environment = load_environment(str(path), PROJECT)
        self.hosts = make_hosts(self.environment)
        for front_ in self.fronts.values():
            front_.wait_until_answering()

    # -- slots and switches --

    def roots(self):
        return {server.name: self.environment.app_root(server) for server in self.environment.servers}

    def switch(self, action: str, *, before_commit=None, until_commit=None, deadlines: Deadlines = Deadlines(),
               release: str | None = None, links_only: bool = False) -> SwitchReport:
        """Run a stage (of `release`), go-live or rollback through the coordinator with every kind of participant;
        with `until_commit` (seconds `before_commit` will wait) the participants that can are armed meanwhile.

        `links_only` leaves the fronts out (the bench's comparison: what the front adds at the second)."""
        states = read_slots(self.environment)
        planner = {"go-live": plan_go_live, "rollback": plan_rollback}.get(action)
        plans = {name: plan_stage(state, release) if action == "stage" else planner(state) for name, state in states.items()}
        first = next(iter(plans.values()))
        slot = "staging" if action == "stage" else "live"
        context = SwitchContext(environment=self.environment, hosts=self.hosts, roots=self.roots(), action=action,
                                slot=slot, plans=plans, target=first.after.slot(slot), previous=first.before.slot(slot))
        # a stage's links are checked by the staging instance's health wait, not through the public front
        chosen = [p for p in participants_for(context) if not (links_only and p.name.endswith(":front"))]
        return run_switch(chosen, deadlines=deadlines, before_commit=before_commit, until_commit=until_commit,
                          verify=action != "stage", keep_unhealthy=action == "rollback")

    def start_staging(self, release: str) -> dict[str, instances.Instance]:
        """Start `release`'s staging instance on every server at once (what deploy --stage does after the links)."""
        started, errors = {}, {}

        def one(name: str) -> None:
            try:
                started[name] = instances.start_staging_instance(self.hosts[name], self.environment,
                                                                 self.roots()[name], release)
            except Exception as error:  # handed back below
                errors[name] = error

        threads = [threading.Thread(target=one, args=(name,)) for name in self.hosts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise next(iter(errors.values()))
        return started

    def stage(self, release: str) -> None:
        """Point staging at `release` everywhere, then start its instances."""
        report = self.switch("stage", release=release)
        assert report.decision.value == "committed", report
        self.start_staging(release)

    def stop_front(self, name: str) -> None:
        """Stop one server's nginx (a front that is down)."""
        self.fronts[name].stop()

    def start_front(self, name: str) -> None:
        """Start one server's nginx again and wait until it answers."""
        self.fronts[name].start()
        self.fronts[name].wait_until_answering()

    def read(self) -> dict[str, instances.ServerInstances]:
        """Every server's slots and instances, read back over SSH."""
        return {name: instances.read_instances(host, self.environment, self.roots()[name]) for name, host in self.hosts.items()}

    def served(self, name: str, count: int = 50) -> set[tuple[int, str | None]]:
        """What `count` requests to a server's front on new connections got: {(status, release)}."""
        url = self.environment.server(name).live_url + "/"
        return {answer(url) for _ in range(count)}

    def close(self) -> None:
        """Stop every instance by its pid file, every front by its PID, and close the connections."""
        for host in self.hosts.values():
            host.close()
        pids = []
        for server in self.farm.servers:
            for pidfile in (server.root / ".releaser" / "instances").glob("*.pid"):
                try:
                    pids.append(int(pidfile.read_text().strip()))
                except (OSError, ValueError):
                    continue
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        for front in self.fronts.values():
            front.stop()
        shutil.rmtree(self.short, ignore_errors=True)  # the links to the roots only


class Load:
    """wrk sending requests to one front until stopped; its tally (per status, per release) comes back at the end."""

    def __init__(self, front: Front, *, connections: int = 6, threads: int = 1, keepalive: bool = False) -> None:
        """Without `keepalive` every request comes on a new connection (see the README's "Instances and the front":
        nginx's graceful reload closes idle keep-alive connections, and a client that does not retry, like wrk,
        loses the request it sent at that very moment; browsers retry it)."""
        self.front = front
        self.start_count = front.requests()
        header = [] if keepalive else ["-H", "Connection: close"]
        self.process = subprocess.Popen([WRK, f"-t{threads}", f"-c{connections}", "-d300s", "-s", str(TALLY), *header,
                                         f"http://127.0.0.1:{front.port}/"],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def served(self) -> int:
        """Requests the front has handled since the load began."""
        return self.front.requests() - self.start_count

    def wait_for(self, count: int, deadline_seconds: float = 60.0) -> None:
        """Poll until the front has handled `count` requests since the load began."""
        deadline = time.monotonic() + deadline_seconds
        while self.served() < count:
            if self.process.poll() is not None:
                raise RuntimeError(f"wrk ended early: {self.process.stdout.read()}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"only {self.served()} of {count} requests within {deadline_seconds:g} s")
            time.sleep(0.05)

    def stop(self) -> dict:
        """Stop wrk (SIGINT: it prints its report) and return the tally, with 'failed' = socket errors + non-2xx/3xx."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=30)
        line = next((line for line in out.splitlines() if line.startswith("TALLY ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no tally: {out}")
        tally = json.loads(line.removeprefix("TALLY "))
        tally["failed"] = sum(tally[kind] for kind in ("connect", "read", "write", "status", "timeout"))
        tally["rate"] = tally["requests"] / tally["seconds"] if tally["seconds"] else 0.0
        return tally

    def kill(self) -> None:
        """Stop wrk by its PID if it still runs (after a failure)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
