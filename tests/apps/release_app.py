"""A WSGI application that names the release it runs, for the instance and front tests (run under gunicorn).

Every answer carries the release id (from RELEASER_RELEASE_ID, which releaser gives the instance) in an
X-Release-Id header and in its body, so a load generator can tell which instance served each request.
/healthz answers 503 while the release directory holds a file `unhealthy`: a release that fails its health; or
while the app root holds `unhealthy-RELEASE` (outside the release: it can fail after prepare checked the release).
/.releaser/release.json answers with the release's marker (public/.releaser/release.json), as a site serving
its public directory would.
"""

from __future__ import annotations

import os
from pathlib import Path

RELEASE = os.environ.get("RELEASER_RELEASE_ID", "unknown")
RELEASE_DIR = Path(os.environ.get("RELEASER_RELEASE_DIR", "."))


MARKER = "/.releaser/release.json"


def app(environ, start_response):
    """Answer every path with the release id; /healthz fails when the release is marked unhealthy."""
    if environ.get("PATH_INFO") == MARKER:
        return marker(start_response)
    status = "200 OK"
    if environ.get("PATH_INFO") == "/healthz" and ((RELEASE_DIR / "unhealthy").exists()
                                                   or (RELEASE_DIR.parent.parent / f"unhealthy-{RELEASE}").exists()):
        status = "503 Service Unavailable"
    body = f"{'ok' if status.startswith('200') else 'unhealthy'} release={RELEASE} pid={os.getpid()}\n".encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                            ("X-Release-Id", RELEASE)])
    return [body]


def marker(start_response):
    """The release marker from the release's public directory (404 before releaser wrote one)."""
    try:
        body = (RELEASE_DIR / "public" / MARKER.lstrip("/")).read_bytes()
        status = "200 OK"
    except OSError:
        body, status = b"no marker\n", "404 Not Found"
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            ("X-Release-Id", RELEASE)])
    return [body]
