"""The local sandbox's web servers: one HTTP server per slot URL, serving <root>/<slot>/public.

Each request resolves the slot link afresh, as a real web server following the symlink would, so a
switch shows on the very next request. Used by the local environment (and by the SSH tests, whose
"servers" also live on this machine); production servers run their own web server instead.
"""

from __future__ import annotations

import errno
import html
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from releaser.config import Environment


class SlotHandler(SimpleHTTPRequestHandler):
    """Serve files from <root>/<slot>/public, with the slot link resolved per request."""

    server_version = "releaser-sandbox"

    def __init__(self, *args, root: Path, slot: str, **kwargs) -> None:
        self.app_root = root
        self.slot = slot
        super().__init__(*args, directory=str(root), **kwargs)

    def translate_path(self, path: str) -> str:
        """Map a URL path into the slot's public/ directory, never outside it."""
        public = os.path.realpath(self.app_root / self.slot / "public")
        wanted = os.path.normpath("/" + urlsplit(path).path).lstrip("/")
        full = os.path.realpath(os.path.join(public, wanted))
        return full if full == public or full.startswith(public + os.sep) else os.path.join(public, "\0missing")

    def do_GET(self) -> None:
        """Serve the page, with the delay notice as a banner on the home page of live."""
        notice = self.app_root / ".releaser" / "notice.txt"
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


@contextmanager
def serving(environment: Environment) -> Iterator[list[str]]:
    """Serve every server's live and staging URL while the block runs; yield the URLs this call started.

    A port already in use (say, by `invoke serve` in another terminal) is left to whoever holds it.
    """
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
    urls: list[str] = []
    try:
        for server in environment.servers:
            root = Path(str(environment.app_root(server)))
            for slot, url in (("live", server.live_url), ("staging", server.staging_url)):
                parts = urlsplit(url)
                handler = partial(SlotHandler, root=root, slot=slot)
                try:
                    httpd = ThreadingHTTPServer((parts.hostname or "127.0.0.1", parts.port or 80), handler)
                except OSError as error:
                    if error.errno == errno.EADDRINUSE:
                        continue
                    raise
                httpd.daemon_threads = True
                thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
                thread.start()
                started.append((httpd, thread))
                urls.append(url)
        yield urls
    finally:
        for httpd, thread in started:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
