"""A tiny web application for `invoke demo-app`: one instance of a release, as [application] starts it.

    python phof_app.py start    start an instance in the background (its own session), pid in $RELEASER_PID_FILE
    python phof_app.py stop     SIGTERM that instance and wait until it has ended
    python phof_app.py serve    run the instance in the foreground (what `start` runs)

Everything about the instance comes from the RELEASER_* variables releaser sets (release id, port, address,
pid file, and the unix socket nginx reaches it on, RELEASER_SOCKET, when [application.front] has a socket);
nothing is pasted into a command. Every answer names the release in an X-Release-Id header.
With $PHOF_DATABASE_URL set, `/` also says which release's data it reads: the data slot schema whose
comment names this instance's release (`releaser release <id>`), so each instance reads its own release's
data wherever that is (phof__staging before go-live, phof after it, phof__backup once it is the backup).
Only the standard library, and psycopg when there is a database.
"""

from __future__ import annotations

import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RELEASE = os.environ.get("RELEASER_RELEASE_ID", "unknown")
STOP_DEADLINE_S = 20.0


def data_line() -> str:
    """Which release's data this instance reads, and how many indicator rows; '' without a database."""
    dsn = os.environ.get("PHOF_DATABASE_URL")
    if not dsn:
        return ""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as connection:
            row = connection.execute("SELECT nspname FROM pg_namespace WHERE obj_description(oid, 'pg_namespace') = %s",
                                     (f"releaser release {RELEASE}",)).fetchone()
            if row is None:
                return "data: none loaded for this release\n"
            released, count = connection.execute(sql.SQL("SELECT min(release), count(*) FROM {}").format(
                sql.Identifier(row[0], "indicators"))).fetchone()
            return f"data: release {released}, {count} indicators, schema {row[0]}\n"
    except psycopg.Error as error:
        return f"data: unreadable ({str(error).strip().splitlines()[0]})\n"


class Handler(BaseHTTPRequestHandler):
    """Answer /healthz with ok and every other path with the release and its data."""

    def do_GET(self) -> None:
        body = f"ok release={RELEASE}\n" if self.path == "/healthz" else f"release {RELEASE}\n{data_line()}"
        payload = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Release-Id", RELEASE)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The same handler on a unix socket: where nginx reaches the instance when the front switches by socket."""

    daemon_threads = False


def serve() -> None:
    """Serve on $RELEASER_ADDRESS:$RELEASER_PORT (and $RELEASER_SOCKET when set) until SIGTERM; requests in flight
    finish first."""
    servers = [ThreadingHTTPServer((os.environ["RELEASER_ADDRESS"], int(os.environ["RELEASER_PORT"])), Handler)]
    if os.environ.get("RELEASER_SOCKET"):
        Path(os.environ["RELEASER_SOCKET"]).unlink(missing_ok=True)
        servers.append(UnixHTTPServer(os.environ["RELEASER_SOCKET"], Handler))
    for server in servers:
        server.daemon_threads = False

    def shut_down(*_) -> None:
        for server in servers:
            threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, shut_down)
    threads = [threading.Thread(target=server.serve_forever) for server in servers[1:]]
    for thread in threads:
        thread.start()
    Path(os.environ["RELEASER_PID_FILE"]).write_text(f"{os.getpid()}\n")
    servers[0].serve_forever()
    for thread in threads:
        thread.join()
    for server in servers:
        server.server_close()
    if len(servers) > 1:
        Path(os.environ["RELEASER_SOCKET"]).unlink(missing_ok=True)


def start() -> None:
    """Start `serve` in its own session (it outlives the command that started it), output to a log file."""
    log = Path(os.environ["RELEASER_PID_FILE"]).with_suffix(".log")
    with open(log, "ab") as output:
        subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve"], stdin=subprocess.DEVNULL,
                         stdout=output, stderr=output, start_new_session=True)


def stop() -> None:
    """SIGTERM the instance named by the pid file and wait (with a deadline) until it has ended."""
    pidfile = Path(os.environ["RELEASER_PID_FILE"])
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reaps it when this process is its parent; harmless otherwise
        except ChildProcessError:
            pass
        if not _alive(pid):
            return
        time.sleep(0.05)
    sys.exit(f"instance {pid} did not stop within {STOP_DEADLINE_S:g} s")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


if __name__ == "__main__":
    commands = {"start": start, "stop": stop, "serve": serve}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit("usage: phof_app.py start|stop|serve")
    commands[sys.argv[1]]()
