"""`invoke demo-app`: application instances behind nginx and data slots in PostgreSQL, on this machine.

Two "servers" under sandbox/app/ each run the release as an instance of examples/app/phof_app.py (one port
per slot) behind their own nginx front, and one private PostgreSQL cluster under sandbox/app/postgres holds
the data slots. The story: r1 goes live with its data; r2 is staged days ahead (its instance started, its
data loaded into phof__staging) and the smoke checks ask the staging instance; r2 goes live (nginx moves
to r2's instance by a renamed link to its unix socket, with no reload; r1's keeps running as the warm backup,
the schemas are renamed in the same switch); the on-call engineer rolls back (the front moves back to the same
r1 process; nothing is started; r1's data is live again). With no nginx the instances part is skipped, with no
PostgreSQL the data part, each said in one
line. Everything it started (instances, nginx, the cluster) is stopped at the end, also on failure; a step
that does not end as the story says stops the demo with a ReleaserError (exit 1) naming the step.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from releaser import ui
from releaser.bundle import Bundle, seal_directory
from releaser.clock import SystemClock
from releaser.config import Environment, load_environment
from releaser.errors import ReleaserError

DSN_ENV = "PHOF_DATABASE_URL"
SERVERS = ("web-1", "web-2")
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ROWS = {"r1": 400, "r2": 500}
EXPECT_DEADLINE_S = 5.0


def find_nginx() -> str | None:
    """nginx on PATH or where Debian and source builds put it."""
    return shutil.which("nginx") or next((p for p in NGINX_CANDIDATES if os.access(p, os.X_OK)), None)


def run_demo_app(project: Path) -> None:
    """Run the demo in sandbox/app/ (reset first); raise ReleaserError naming the step that went wrong."""
    from releaser.pgsandbox import ClusterUnavailable, SandboxCluster

    started = time.perf_counter()
    base = project / "sandbox" / "app"
    _stop_leftovers(base)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    nginx, curl = find_nginx(), shutil.which("curl")
    with ExitStack() as cleanup:
        cluster = None
        try:
            cluster = SandboxCluster(base / "postgres")
            cluster.start()
            cleanup.callback(cluster.stop)
            os.environ[DSN_ENV] = cluster.dsn  # the instances inherit it, as a unit's EnvironmentFile would give it
        except ClusterUnavailable as why:
            ui.say(f"skipping the data slots: {why}")
            cluster = None
        if nginx is None or curl is None:
            ui.say(f"skipping the application instances: {'nginx' if nginx is None else 'curl'} is not installed "
                   "(Debian: apt-get install nginx curl); the releases are served as static sites")
            nginx = None
        if nginx is None and cluster is None:
            ui.say("nothing left to show without nginx and PostgreSQL; `invoke demo` needs neither")
            return
        by_socket = nginx is not None and _sockets_fit(base)
        if nginx is not None and not by_socket:
            ui.say(f"the fronts move by include and nginx reload: {base} is too deep for a unix socket's path")
        environment = _write_environment(project, base, nginx=nginx, data=cluster is not None, by_socket=by_socket)
        if nginx is not None:
            fronts = [_Front(base / name / "nginx", nginx, _server(environment, name),
                             environment.front_socket(_server(environment, name))) for name in SERVERS]
            cleanup.callback(lambda: [front.stop() for front in fronts])
            cleanup.callback(_stop_instances, environment)
            for front in fronts:
                front.wait_until_answering()
        _story(project, base, environment, instances=nginx is not None, data=cluster is not None)
    ui.say(ui.plain(f"demo-app finished in {time.perf_counter() - started:.1f} s", style="bold")
           + ui.plain("; everything it started is stopped; its files are in sandbox/app/"))


def _story(project: Path, base: Path, environment: Environment, *, instances: bool, data: bool) -> None:
    from releaser.checks import Limits, check_release
    from releaser.datastatus import read_data_status
    from releaser.fleet import connected

    bundles = {release: _bundle(project, base, release, data=data) for release in ("r1", "r2")}
    clock = SystemClock()
    url = _server(environment, "web-1").live_url + "/"
    with connected(environment, actor="demo@releaser", clock=clock, journal_path=base / "journal.jsonl") as fleet:
        def status() -> None:
            reports = fleet.read_status()
            ui.show_status(environment.name, reports, data=read_data_status(
                environment, {r.server: r.state for r in reports}))

        ui.narrate("1. r1 goes live", "invoke deploy --stage --release r1 && invoke go-live --now"
                   + ("\n   its instance starts on a port and a unix socket of its own, and nginx points at it" if instances
                      else "")
                   + ("\n   its data loads into schema phof__staging, and the go-live renames it to phof" if data else ""))
        fleet.stage(bundles["r1"])
        fleet.go_live(reason="demo-app: first release")
        _expect(1, url, "r1", data)

        ui.narrate("2. Days ahead, r2 is staged",
                   "invoke deploy --stage --release r2 && invoke check --only smoke,data-slots"
                   + ("\n   its instance starts beside r1's; the smoke checks ask it on its private port" if instances
                      else "")
                   + ("\n   its data loads into phof__staging (COPY), rows counted and smoke-queried" if data else ""))
        fleet.stage(bundles["r2"])
        status()
        now = clock.now()
        run = check_release(fleet, Limits(environment, actor="demo@releaser"), now=now, only="smoke,data-slots")
        ui.show_checks(run.results, environment=environment.name, release=run.release)
        if run.failed:
            raise _failed(2, "a check of the staged r2 failed (the checks above show which)")
        _expect(2, url, "r1", data)  # staging is private: the public still gets r1
        warm = _pids(fleet, "r1") if instances else {}

        ui.narrate("3. r2 goes live", "invoke go-live --now"
                   + ("\n   nginx moves to r2's instance (a link is renamed, nginx is not reloaded); r1's keeps running as "
                      "the warm backup" if instances else "")
                   + ("\n   in the same switch phof__staging becomes phof, and phof becomes phof__backup" if data else ""))
        fleet.go_live(reason="demo-app: monthly update")
        _expect(3, url, "r2", data)
        status()

        ui.narrate("4. On call rolls back", "invoke rollback --yes --reason 'wrong figures in table 3'"
                   + ("\n   the front moves back to the very same r1 process: nothing is started" if instances else "")
                   + ("\n   phof__backup is renamed back to phof" if data else ""))
        fleet.rollback(reason="demo-app: wrong figures")
        _expect(4, url, "r1", data)
        if instances:
            after = _pids(fleet, "r1")
            if after != warm:
                raise _failed(4, f"r1's instances were {warm} before the rollback and {after} after it")
            ui.say(f"r1 answers from the same processes as before r2 went live (pids {_joined(after)}): "
                   "a warm backup, nothing was started")
        status()


def _expect(step: int, url: str, release: str, data: bool) -> None:
    """The public front (web-1) serves `release`, and with data, that release's data from schema phof."""
    deadline = time.monotonic() + EXPECT_DEADLINE_S  # an old nginx worker may answer one last request
    while not _serves(body := _get(url), release) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _serves(body, release):
        raise _failed(step, f"{url} should serve {release} and answered: {body.strip()}")
    ui.say(f"GET {url} -> release {release}" + (f"; {_live_data()}" if data else ""))
    if data and f"release {release}," not in _live_data():
        raise _failed(step, f"schema phof should hold {release}'s data: {_live_data()}")


def _serves(body: str, release: str) -> bool:
    return body.startswith(f"release {release}\n") or f"Release <strong>{release}</strong>" in body


def _live_data() -> str:
    import psycopg

    with psycopg.connect(os.environ[DSN_ENV], connect_timeout=5, autocommit=True) as connection:
        released, count = connection.execute("SELECT min(release), count(*) FROM phof.indicators").fetchone()
    return f"schema phof holds release {released}, {count} indicators"


def _pids(fleet, release: str) -> dict[str, int | None]:
    from releaser.instances import read_instances

    found = {}
    for name in SERVERS:
        instance = read_instances(fleet.hosts[name], fleet.environment, fleet.root(name)).of_release(release)
        found[name] = instance.pid if instance else None
    return found


def _joined(pids: dict[str, int | None]) -> str:
    return ", ".join(f"{name} {pid}" for name, pid in pids.items())


def _get(url: str) -> str:
    try:
        with _OPENER.open(urllib.request.Request(url, headers={"Connection": "close"}), timeout=5) as response:
            return response.read().decode("utf-8", errors="replace")
    except OSError as error:
        return f"no answer ({error})"


def _bundle(project: Path, base: Path, release: str, *, data: bool) -> Bundle:
    """The example release's files, plus (with data) a schema and two CSV tables whose rows name the release."""
    source = base / "bundles" / release
    shutil.copytree(project / "examples" / "releases" / release, source)
    (source / "manifest.json").unlink()
    if not data:
        return seal_directory(source, release, now=datetime.now(timezone.utc))
    (source / "data").mkdir()
    (source / "data" / "schema.sql").write_text(
        "CREATE TABLE areas (code text PRIMARY KEY, name text NOT NULL, release text NOT NULL);\n"
        "CREATE TABLE indicators (id integer PRIMARY KEY, area text NOT NULL REFERENCES areas (code), "
        "release text NOT NULL, value double precision);\n")
    (source / "data" / "areas.csv").write_text(
        "code,name,release\n" + "".join(f"E{i:02d},Area {i},{release}\n" for i in range(9)))
    (source / "data" / "indicators.csv").write_text(
        "id,area,release,value\n" + "".join(f"{i},E{i % 9:02d},{release},{i * 0.25}\n" for i in range(ROWS[release])))
    return seal_directory(source, release, now=datetime.now(timezone.utc), data_files=[
        {"file": "data/schema.sql", "format": "sql"},
        {"file": "data/areas.csv", "format": "csv", "table": "areas", "rows": 9},
        {"file": "data/indicators.csv", "format": "csv", "table": "indicators", "rows": ROWS[release]},
    ])


# [application.front] socket: each demo server's nginx connects to this link, relative to the server's root
SOCKET = ".releaser/front/live.sock"


def _sockets_fit(base: Path) -> bool:
    """Whether every demo server's instance sockets fit a unix socket's path (a deep checkout may not)."""
    from releaser.config import UNIX_PATH_MAX

    return all(len(str((base / name / "root" / SOCKET).parent / "instance-65535.sock").encode()) <= UNIX_PATH_MAX
               for name in SERVERS)


def _write_environment(project: Path, base: Path, *, nginx: str | None, data: bool,
                       by_socket: bool = False) -> Environment:
    """The demo's environment file, sandbox/app/demo-app.toml, on free ports of this machine."""
    ports = iter(_free_ports(5 * len(SERVERS)))
    blocks = ['description = "demo-app: application instances behind nginx, data slots in PostgreSQL"',
              'transport = "local"', "allow_go_live_now = true", "keep_releases = 3"]
    for name in SERVERS:
        public, staging, *app_ports = (next(ports) for _ in range(5))
        blocks.append(f'[[servers]]\nname = "{name}"\nroot = {json.dumps(str(base / name / "root"))}\n'
                      f'live_url = "http://127.0.0.1:{public}"\nstaging_url = "http://127.0.0.1:{staging}"'
                      + (f"\napp_ports = {app_ports}" if nginx else ""))
    blocks.append('[health]\npath = "/healthz"\ncontains = "ok"\ntimeout = 2.0\nattempts = 3')
    blocks.append(f"[sandbox]\nserve = {'false' if nginx else 'true'}")
    blocks.append('[[smoke]]\npath = "/"\ncontains = "release "' if nginx else
                  '[[smoke]]\npath = "/"\ncontains = "Public Health Outcomes Framework"')
    if nginx:
        app = shlex.join([sys.executable, str(project / "examples" / "app" / "phof_app.py")])
        blocks.append(f"[application]\nstart = {json.dumps(app + ' start')}\nstop = {json.dumps(app + ' stop')}\n"
                      'ports = [1, 2, 3]\nhealth_path = "/healthz"\nstart_timeout = 20.0\nstop_timeout = 20.0\n'
                      'release_header = "X-Release-Id"\n\n[application.front]\n'
                      + (f'socket = "{SOCKET}"' if by_socket else 'include = "../nginx/live.upstream"\n'
                         f"nginx = {json.dumps([nginx, '-p', '../nginx/', '-c', 'nginx.conf'])}"))
    if data:
        blocks.append(f'[database]\nschema = "phof"\ndsn_env = "{DSN_ENV}"\n\n[[database.smoke]]\n'
                      'name = "every indicator has an area"\n'
                      'sql = "SELECT count(*) FROM indicators i LEFT JOIN areas a ON a.code = i.area WHERE a.code IS NULL"\n'
                      "expect = 0")
    path = base / "demo-app.toml"
    path.write_text("\n\n".join(blocks) + "\n")
    return load_environment(str(path), project)


def _server(environment: Environment, name: str):
    return environment.server(name)


class _Front:
    """One nginx master for a demo server: its public port proxies to the socket link releaser keeps, or to the
    include releaser replaces."""

    def __init__(self, directory: Path, nginx: str, server, socket=None) -> None:
        self.directory = directory
        self.port = int(server.live_url.rsplit(":", 1)[1])
        (directory / "logs").mkdir(parents=True, exist_ok=True)
        first = server.app_ports[0]
        if socket is None:
            (directory / "live.upstream").write_text(f"server 127.0.0.1:{first};\n")
        upstream = f"server unix:{socket};" if socket is not None else f"include {directory / 'live.upstream'};"
        temp = "".join(f"    {kind}_temp_path {directory / kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;\n" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'logs/error.log'};\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    access_log off;\n{temp}    upstream phof_live {{ {upstream} }}\n"
            f"    server {{\n        listen 127.0.0.1:{self.port};\n"
            f"        location / {{ proxy_pass http://phof_live; }}\n    }}\n}}\n")
        self.process = subprocess.Popen([nginx, "-p", str(directory), "-c", str(directory / "nginx.conf")],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_until_answering(self, deadline_seconds: float = 10.0) -> None:
        """Poll the public port until nginx accepts connections, or raise with its error log."""
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                import socket

                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        log = (self.directory / "logs" / "error.log")
        raise ReleaserError(f"nginx did not start on port {self.port}: "
                            f"{log.read_text(errors='replace').strip()[-300:] if log.exists() else 'no log'}",
                            hint="see sandbox/app/*/nginx/logs/error.log")

    def stop(self) -> None:
        """Stop this nginx master (and its workers) by its PID: SIGQUIT, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _stop_instances(environment: Environment) -> None:
    """Stop every instance the demo's servers recorded, through the declared stop command."""
    from releaser import instances
    from releaser.transport import make_hosts

    hosts = make_hosts(environment)
    for server in environment.servers:
        root = environment.app_root(server)
        for port in environment.instance_ports(server):
            hosts[server.name].run(instances.stop_argv(environment.application, root, port, retired_only=False),
                                   timeout=environment.application.stop_timeout + 10)


def _stop_leftovers(base: Path) -> None:
    """A demo killed half-way may have left instances running: stop them by their pid files before the reset."""
    for pidfile in base.glob("*/root/.releaser/instances/*.pid"):
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            continue


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _failed(step: int, what: str) -> ReleaserError:
    return ReleaserError(f"demo-app failed at step {step}: {what}",
                         hint="the files are left in sandbox/app/; everything it started was stopped")
