"""The local sandbox's web servers: one HTTP server per slot URL, serving <root>/<slot>/public.

Each request resolves the slot link afresh, as a real web server following the symlink would, so a
switch shows on the very next request. Used by the local environment (and by the SSH tests, whose
"servers" also live on this machine); production servers run their own web server instead.

Every answer carries an `X-Releaser-Sandbox` header naming the app root and slot it serves, so a port
that is already taken is used only when this very sandbox holds it (`invoke serve` in another terminal).
Anything else on the port (another checkout's sandbox, some other program) is refused, naming the port:
a health check answered by somebody else's server would verify nothing.
"""

from __future__ import annotations

import errno
import hmac
import html
import http.client
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from releaser.config import Environment
from releaser.errors import ReleaserError

IDENTITY_HEADER = "X-Releaser-Sandbox"


class SlotHandler(SimpleHTTPRequestHandler):
    """Serve files from <root>/<slot>/public, with the slot link resolved per request."""

    server_version = "releaser-sandbox"

    def __init__(self, *args, root: Path, slot: str, notice_file: str = ".releaser/notice.txt", **kwargs) -> None:
        self.app_root = root
        self.slot = slot
        self.notice_file = notice_file
        super().__init__(*args, directory=str(root), **kwargs)

    def end_headers(self) -> None:
        """Say whose sandbox this is on every answer, errors included."""
        self.send_header(IDENTITY_HEADER, sandbox_identity(self.app_root, self.slot))
        super().end_headers()

    def translate_path(self, path: str) -> str:
        """Map a URL path into the slot's public/ directory, never outside it."""
        public = os.path.realpath(self.app_root / self.slot / "public")
        wanted = os.path.normpath("/" + urlsplit(path).path).lstrip("/")
        full = os.path.realpath(os.path.join(public, wanted))
        return full if full == public or full.startswith(public + os.sep) else os.path.join(public, "\0missing")

    def do_GET(self) -> None:
        """Serve the page, with the delay notice as a banner on the home page of live."""
        notice = self.app_root / self.notice_file
        if self.slot == "live" and urlsplit(self.path).path in ("/", "/index.html") and notice.is_file():
            page = Path(self.translate_path("/index.html"))
            body = page.read_text(encoding="utf-8") if page.is_file() else "<html><body></body></html>"
            banner = f'<div class="releaser-notice" role="alert">{html.escape(notice.read_text(encoding="utf-8"))}</div>'
            data = body.replace("<body>", "<body>" + banner, 1).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        super().do_GET()

    def log_message(self, format: str, *args) -> None:
        """Stay quiet: the sandbox must not scribble over releaser's own output."""


class _SandboxServer(ThreadingHTTPServer):
    """The sandbox's web server: a listen backlog of 128, not socketserver's 5, so a burst of load (wrk with 20
    connections) waits for a thread instead of for a SYN retry a second later."""

    request_queue_size = 128


@contextmanager
def serving(environment: Environment) -> Iterator[list[str]]:
    """Serve every server's live and staging URL while the block runs; yield the URLs this call started.

    A port already served by this same sandbox (say, `invoke serve` in another terminal) is left to it;
    a port held by anything else raises ReleaserError naming the port, before any server is touched.
    """
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
    urls: list[str] = []
    try:
        for server in environment.servers:
            root = Path(str(environment.app_root(server)))
            for slot, url in (("live", server.live_url), ("staging", server.staging_url)):
                parts = urlsplit(url)
                handler = partial(SlotHandler, root=root, slot=slot, notice_file=environment.notice_file)
                if slot == "staging":
                    handler = _protected_if_declared(handler, environment)
                httpd = _bind_or_share(parts.hostname or "127.0.0.1", parts.port or 80, handler, root, slot,
                                       server.name, environment)
                if httpd is None:
                    continue  # this very sandbox already serves it
                httpd.daemon_threads = True
                thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
                thread.start()
                started.append((httpd, thread))
                urls.append(url)
        yield urls
    finally:
        stoppers = [threading.Thread(target=httpd.shutdown) for httpd, _ in started]  # each waits one poll
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=5)
        for httpd, thread in started:
            httpd.server_close()
            thread.join(timeout=5)


def sandbox_identity(root: Path, slot: str) -> str:
    """What a sandbox web server says it serves: its app root, resolved, and the slot."""
    return f"{os.path.realpath(root)} {slot}"


def _bind_or_share(host: str, port: int, handler, root: Path, slot: str, server: str,
                   environment: Environment) -> ThreadingHTTPServer | None:
    """A new web server on the port, or None when this sandbox's own one already answers there.

    A port that is taken but does not answer (a server starting or stopping in another command) is
    tried again for up to two seconds before it is refused.
    """
    deadline = time.monotonic() + 2.0
    while True:
        try:
            return _SandboxServer((host, port), handler)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
        answer = _identity_on(host, port)
        if answer == sandbox_identity(root, slot):
            return None
        if answer is not None or time.monotonic() > deadline:
            _refuse_port(port, answer, slot, server, environment)
        time.sleep(0.05)  # polling a port being released, bounded by the deadline above


def _refuse_port(port: int, answer: str | None, slot: str, server: str, environment: Environment) -> None:
    holder = ("a program that does not answer HTTP" if answer is None else
              "another releaser sandbox (" + answer + ")" if answer else "a web server that is not releaser's sandbox")
    where = environment.path.name if environment.path else "the environment file"
    raise ReleaserError(
        f"port {port} ({server} {slot}_url) is already held by {holder}, so {server}'s {slot} site cannot be served "
        "and its checks would ask someone else's server",
        hint=f"stop what holds port {port} (see: lsof -i :{port}), or give {server} another {slot}_url in {where}")


def _identity_on(host: str, port: int) -> str | None:
    """The sandbox identity of whatever answers HTTP on the port: '' if it is not a sandbox, None if it does not answer."""
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("HEAD", "/")
        return connection.getresponse().getheader(IDENTITY_HEADER, "")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


class ProtectedSlotHandler(SlotHandler):
    """A staging slot that answers 403 unless the request carries the staging credential header (issue 5)."""

    def __init__(self, *args, required_header: tuple[str, str], **kwargs) -> None:
        self.required_header = required_header
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        """Serve the page only to a request carrying the credential."""
        if self._is_allowed():
            super().do_GET()

    def do_HEAD(self) -> None:
        """Answer HEAD only to a request carrying the credential."""
        if self._is_allowed():
            super().do_HEAD()

    def _is_allowed(self) -> bool:
        name, token = self.required_header
        if hmac.compare_digest(self.headers.get(name, "").encode(), token.encode()):
            return True
        self.send_error(403, "staging is private until release time")
        return False


def _protected_if_declared(handler: partial, environment: Environment) -> partial:
    """Require the [staging_access] header on staging when declared (and [sandbox] protect_staging is on).

    With the token's variable unset the sandbox still refuses everyone (a random token): it fails closed.
    """
    access = environment.staging_access
    if access is None or (environment.sandbox is not None and not environment.sandbox.protect_staging):
        return handler
    token = access.token(os.environ) or secrets.token_hex(16)
    return partial(ProtectedSlotHandler, *handler.args, **handler.keywords, required_header=(access.header, token))
