"""`releaser dashboard`: a read-only release-day page on 127.0.0.1 that updates itself.

It shows the next publication with a live countdown, every server's live, backup and staging, the last
check run, the lock, notices and today's journal. One thread reads the servers through the fleet every
few seconds and keeps the newest board; the page gets it over server-sent events whenever it changes.

Why the standard library's http.server and server-sent events: the page has a handful of viewers on one
machine and one stream of updates from server to browser, which SSE is exactly for (EventSource
reconnects by itself). It needs no new dependency and no event loop beside the fleet's threads, and the
sandbox's web servers already use http.server. Polling would fetch the whole board every second from
every open page; SSE sends it only when something moved. Every asset is served from this package and
a Content-Security-Policy of 'self' makes the browser refuse anything else: no CDN, no outbound call.
The server answers GET and HEAD only; it has no route that changes anything.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from releaser.config import Environment
from releaser.errors import ReleaserError, UsageError
from releaser.journal_tail import JournalTail
from releaser.order import counted_items

if TYPE_CHECKING:
    from releaser.dataslots import DataSlots
    from releaser.fleet import Fleet, ServerReport
    from releaser.instances import ServerInstances

ASSETS = {  # URL path -> (file in releaser/dashboard_assets, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEARTBEAT_SECONDS = 15.0  # an SSE comment line now and then, so a proxy or the browser keeps the stream open


# ---- the board: data in, one JSON-ready dict out ----

def board_state(environment: Environment, reports: list[ServerReport], *, notices: Mapping[str, str],
                events: list[dict], now: datetime, read_seconds: float = 0.0,
                instances: Mapping[str, ServerInstances | str] | None = None, data: DataSlots | str | None = None) -> dict:
    """Return everything the page shows, as plain data: next release, servers, checks, lock, notices, today's journal.

    `notices` maps a server to the notice text its live site shows; `events` is the merged journal, and
    only the events of `now`'s day in the environment's zone are kept. `instances` (per server) and `data`
    are given when the environment declares an application or a database; a string there is why it could
    not be read. Pure.
    """
    zone = ZoneInfo(zone_name(environment))
    today = now.astimezone(zone).date()
    todays = [e for e in events if _moment(e["at"]).astimezone(zone).date() == today]
    checks = [e for e in events if e.get("action") == "check"]
    locks = [{"server": r.server, **_lock_json(r, zone)} for r in reports if r.locked]
    return {
        "environment": environment.name,
        "description": environment.description,
        "zone": str(zone),
        "now": now.isoformat(),
        "read_seconds": round(read_seconds, 3),
        "next_release": next_release_json(environment, now),
        "servers": [_server_json(r, notices.get(r.server), (instances or {}).get(r.server)) for r in reports],
        "data": _data_json(data),
        "mixed": len({r.state.live for r in reports if r.state}) > 1,
        "checks": _check_json(checks[-1], zone, [s.name for s in environment.servers]) if checks else None,
        "lock": locks,
        "notices": [{"server": server, "text": text} for server, text in counted_items(notices)],
        "timeline": [_event_json(e, zone) for e in todays],
    }


def next_release_json(environment: Environment, now: datetime) -> dict | None:
    """The next scheduled release of any publication, with its moment as ISO and as wall-clock text in its zone."""
    from releaser.checks.window import upcoming_releases

    if not environment.publications:
        return None
    upcoming = [r for r in upcoming_releases(environment, now, months=3) if not r.refused and r.at > now]
    if not upcoming:
        return None
    release = upcoming[0]
    titles = {p.name: p.title for p in environment.publications}
    return {
        "publication": release.publication,
        "title": titles.get(release.publication) or release.publication,
        "at": release.at.isoformat(),
        "at_text": f"{release.at:%a %d %b %Y %H:%M:%S} {release.at.tzinfo}",
        "upload_deadline": f"{release.upload_deadline:%a %d %b %H:%M}",
    }


def zone_name(environment: Environment) -> str:
    """The zone the page speaks in: the first publication's, as the rest of releaser does."""
    return environment.publications[0].timezone if environment.publications else "Europe/London"


def board_changed(before: dict | None, after: dict) -> bool:
    """True when anything a viewer sees moved (the read time and duration alone do not count)."""
    if before is None:
        return True
    ignore = {"now", "read_seconds"}
    return {k: v for k, v in before.items() if k not in ignore} != {k: v for k, v in after.items() if k not in ignore}


# ---- reading the servers ----

def read_board(fleet: Fleet, journals: JournalTail | None = None) -> dict:
    """Read every server's status, notice and journal through the fleet and return the board.

    With `journals` (kept from one read to the next) only what each journal gained since is read.
    """
    started = time.perf_counter()
    reports = fleet.read_status()
    notices = {}
    for report in reports:
        if report.notice:
            try:
                text = fleet.hosts[report.server].read(fleet.root(report.server) / fleet.environment.notice_file)
                notices[report.server] = text.decode("utf-8", errors="replace").strip()
            except ReleaserError as error:  # the server went away since its status: show the rest, and why
                notices[report.server] = f"(a notice is up, but it could not be read: {error})"
    events = journals.read(fleet) if journals is not None else fleet.read_history()
    answering = [r.server for r in reports if r.state is not None]
    state = board_state(fleet.environment, reports, notices=notices, events=events, now=fleet.clock.now(),
                        instances=_read_instances(fleet, answering), data=_read_data_slots(fleet.environment),
                        read_seconds=time.perf_counter() - started)
    _retry_silent_servers(fleet, [r.server for r in reports if r.state is None])
    return state


class Board:
    """The newest board, shared by the reading thread and every page's event stream."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._state: dict | None = None
        self._version = 0
        self.error: str | None = None

    def publish(self, state: dict) -> None:
        """Keep `state`; wake every stream when something a viewer sees moved."""
        with self._changed:
            if board_changed(self._state, state):
                self._version += 1
                self._state = state
                self._changed.notify_all()
            else:
                self._state = state

    def newest(self) -> tuple[int, dict | None]:
        """The version number and the board."""
        with self._changed:
            return self._version, self._state

    def wait_newer(self, version: int, timeout: float) -> tuple[int, dict | None]:
        """Wait until the board is newer than `version` or `timeout` seconds pass; return what is there."""
        with self._changed:
            self._changed.wait_for(lambda: self._version > version, timeout=timeout)
            return self._version, self._state


def keep_reading(fleet: Fleet, board: Board, stop: threading.Event, every: float,
                 on_error: Callable[[str], None] | None = None, journals: JournalTail | None = None) -> None:
    """Read the board every `every` seconds until `stop` is set (runs in its own thread).

    `journals` carries each journal's read position from one read to the next (a new one when not given).

    A read that fails keeps the dashboard up: the page says so over the previous board, and `on_error` gets
    the traceback (an unexpected one is a bug to report), once per new failure, not every few seconds.
    """
    journals = journals if journals is not None else JournalTail()
    while not stop.is_set():
        try:
            board.publish(read_board(fleet, journals))
            board.error = None
        except Exception as error:  # noqa: BLE001  (the page says the read failed; the next one may work)
            text = f"{type(error).__name__}: {error}"
            if on_error is not None and text != board.error:
                on_error(f"dashboard: reading the servers failed:\n{traceback.format_exc()}")
            board.error = text
            _, last = board.newest()
            board.publish({**(last or {}), "read_error": text})
        stop.wait(every)


# ---- serving ----

class DashboardHandler(BaseHTTPRequestHandler):
    """GET the page, its script and style, /board.json, and /events (server-sent events). Nothing else."""

    server_version = "releaser-dashboard"
    board: Board
    stopping: threading.Event
    allowed_hosts: frozenset[str]  # Host headers this server answers; see _is_for_us

    def do_GET(self) -> None:
        """Serve an asset, the board as JSON, or the stream of boards."""
        path = self.path.split("?", 1)[0]
        if not self._is_for_us():
            self._send(421, "text/plain; charset=utf-8", b"this is releaser's dashboard; open it by its own address\n")
        elif path in ASSETS:
            name, kind = ASSETS[path]
            self._send(200, kind, resources.files("releaser").joinpath("dashboard_assets", name).read_bytes())
        elif path == "/board.json":
            _, state = self.board.newest()
            self._send(200 if state else 503, "application/json", json.dumps(state or {"error": self.board.error}).encode())
        elif path == "/events":
            self._stream()
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def do_HEAD(self) -> None:
        """Answer HEAD like GET for the page, without a body."""
        self._send(200 if self.path in ASSETS else 404, "text/plain", b"", head=True)

    def _is_for_us(self) -> bool:
        """True when the request names this server's own address (a page of another site never does).

        Another site open in the same browser could point its own name at 127.0.0.1 (DNS rebinding) and
        read the board through the browser; its requests carry that site's name in Host, so they are refused.
        """
        return self.headers.get("Host", "") in self.allowed_hosts

    def _refuse(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse  # read-only: nothing on this page changes a server

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self._security_headers()
        self.end_headers()
        version, state = self.board.newest()
        last_sent = time.monotonic()
        try:
            if state is not None:
                self._event(state)
            while not self.stopping.is_set():  # wake each second, so stopping the dashboard ends every stream
                newer, state = self.board.wait_newer(version, timeout=1.0)
                if newer != version and state is not None:
                    version = newer
                    self._event(state)
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent > HEARTBEAT_SECONDS:
                    self.wfile.write(b": still here\n\n")
                    self.wfile.flush()
                    last_sent = time.monotonic()
        except (BrokenPipeError, ConnectionResetError):
            return  # the page was closed

    def _event(self, state: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(state).encode() + b"\n\n")
        self.wfile.flush()

    def _send(self, code: int, kind: str, body: bytes, *, head: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self._security_headers()
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _security_headers(self) -> None:
        self.send_header("Content-Security-Policy", POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")

    def log_message(self, format: str, *args) -> None:
        """Stay quiet: the terminal shows only where the page is."""


@contextmanager
def serving_dashboard(fleet: Fleet, *, bind: str = "127.0.0.1", port: int = 8700, every: float = 2.0,
                      on_error: Callable[[str], None] | None = None) -> Iterator[str]:
    """Serve the dashboard of an open fleet while the block runs; yield its URL (port 0 picks a free one).

    The first board is read before the URL is yielded, so the page never opens on nothing. `on_error`
    hears of a later read that failed (see keep_reading).
    """
    board, stop, journals = Board(), threading.Event(), JournalTail()
    board.publish(read_board(fleet, journals))
    handler = type("Handler", (DashboardHandler,), {"board": board, "stopping": stop})
    try:
        httpd = ThreadingHTTPServer((bind, port), handler)
    except OSError as error:  # a name that does not resolve, a port taken or not ours to bind
        raise UsageError(f"cannot serve the dashboard on {bind}:{port}: {error.strerror or error}",
                         hint="pick another --port, or a --bind address of this machine (default 127.0.0.1)") from None
    bound = httpd.server_address[1]
    handler.allowed_hosts = frozenset(f"{name}:{bound}" for name in ("127.0.0.1", "localhost", "[::1]", bind))
    httpd.daemon_threads = True
    threads = [threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True),
               threading.Thread(target=keep_reading, args=(fleet, board, stop, every, on_error, journals), daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield f"http://{httpd.server_address[0]}:{bound}/"
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        for thread in threads:
            thread.join(timeout=every + 5)


# ---- private helpers ----

def _retry_silent_servers(fleet: Fleet, silent: list[str]) -> None:
    """Open a new connection to each server that did not answer, so the page shows it again once it is back.

    A one-shot command keeps a server that did not answer out for its whole run; a page left open all
    morning must not. A server still gone stays marked, and is tried again at the next read.
    """
    from releaser.errors import HostUnreachable

    for name in silent:
        try:
            fleet.hosts[name].reconnect(even_if_unanswered=True)
        except HostUnreachable:
            continue
        fleet.unreachable.pop(name, None)


def _read_instances(fleet: Fleet, names: list[str]) -> dict[str, ServerInstances | str]:
    """Each answering server's application instances (none without [application]); a string says why not."""
    if fleet.environment.application is None:
        return {}
    from releaser.instances import read_instances

    outcomes = fleet.each(lambda name: read_instances(fleet.hosts[name], fleet.environment, fleet.root(name)), names)
    return {name: outcome if not isinstance(outcome, BaseException) else f"not read: {outcome}"
            for name, outcome in outcomes.items()}


def _read_data_slots(environment: Environment) -> DataSlots | str | None:
    """The database's data slots (None without [database]); a string says why they could not be read."""
    if environment.database is None:
        return None
    from releaser.datastore import read_data_slots

    try:
        return read_data_slots(environment)
    except Exception as error:  # noqa: BLE001  (a database that does not answer must not blank the whole page)
        return f"not read: {type(error).__name__}: {error}"


def _instances_json(view: ServerInstances | str | None) -> list[dict] | str | None:
    if view is None or isinstance(view, str):
        return view
    return [{"slot": i.slot or "retired", "release": i.release, "port": i.port, "running": i.pid is not None,
             "healthy": i.is_healthy} for i in view.in_slot_order()]


def _data_json(data: DataSlots | str | None) -> dict | None:
    if data is None:
        return None
    if isinstance(data, str):
        return {"error": data}
    return {"schema": data.schema, "live": data.live, "backup": data.backup, "staging": data.staging,
            "pending": list(data.pending), "error": None}


def _server_json(report: ServerReport, notice: str | None, instances: ServerInstances | str | None = None) -> dict:
    state = report.state
    return {
        "server": report.server,
        "answered": state is not None,
        "live": state.live if state else None,
        "backup": state.backup if state else None,
        "staging": state.staging if state else None,
        "on_disk": sorted(state.on_disk) if state else [],
        "free_bytes": report.free_bytes,
        "locked": report.locked,
        "health": None if report.health is None else {"ok": report.health.ok, "detail": report.health.detail},
        "notice": notice,
        "instances": _instances_json(instances),
        "error": report.error,
    }


def _lock_json(report: ServerReport, zone: ZoneInfo) -> dict:
    lock = report.lock
    if lock is None:
        return {"owner": None, "reason": None, "since": None, "expires": None}
    return {"owner": lock.owner, "reason": lock.reason, "since": f"{lock.since.astimezone(zone):%a %d %b %H:%M}",
            "expires": f"{lock.expires.astimezone(zone):%H:%M}" if lock.expires else None}


def _check_json(event: dict, zone: ZoneInfo, every_server: list[str]) -> dict:
    checked = event.get("servers") or every_server
    return {"at": f"{_moment(event['at']).astimezone(zone):%a %d %b %H:%M:%S}", "outcome": event.get("outcome"),
            "summary": event.get("detail", ""), "actor": event.get("actor"),
            "release": (event.get("releases") or {}).get("staging"), "not_passing": event.get("checks", []),
            "only": sorted(checked) if set(checked) != set(every_server) else None}  # a check run with --hosts


def _event_json(event: dict, zone: ZoneInfo) -> dict:
    releases = event.get("releases") or {}
    return {"time": f"{_moment(event['at']).astimezone(zone):%H:%M:%S}", "action": event.get("action"),
            "outcome": event.get("outcome"), "actor": event.get("actor"),
            "release": releases.get("live") or releases.get("staging") or next(iter(releases.values()), None),
            "detail": event.get("detail") or event.get("reason") or "", "servers": event.get("seen_on", [])}


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
