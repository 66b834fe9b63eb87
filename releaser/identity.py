"""The release marker: which release a web server really serves, read through its public URL.

A health check proves a server answers, not which release it answers with: a web server that resolved the
live link once at start, or a cache in front of it, keeps serving the old release after the link moved and
still says "ok". So every release carries a marker that releaser writes on the server at stage time (and
prepare writes into a release staged before markers existed):

    <app root>/releases/<id>/public/.releaser/release.json
    {"release_id": "r2", "sums_sha256": "<sha256 of the release's .releaser-sha256sums>"}

The public root of a release is its `public/` directory (what the web server serves as `<app root>/live/public`),
so the marker answers at `<live URL>/.releaser/release.json`. The digest names the release's exact files. The
marker is not in the release's checksums (a bundle never carries it: bundle.py leaves it out), so writing it
changes nothing `sha256sum -c` checks. After a switch, verification reads it and must find the release just
switched to; `status` shows it beside where the link points. Pure apart from `read_served`, one GET.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from releaser.bundle import RELEASE_MARKER

PUBLIC_DIR = "public"  # a release's public root: <app root>/<slot>/public is what its web server serves
URL_PATH = "/.releaser/release.json"
FILE = RELEASE_MARKER  # public/.releaser/release.json, relative to the release directory; never in its checksums
READ_LIMIT = 4096

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback and intranet: never a proxy


@dataclass(frozen=True)
class Marker:
    """What a release marker says: the release id and the sha256 of the release's sums file."""

    release_id: str
    sums_sha256: str


@dataclass(frozen=True)
class Served:
    """What a public URL says it serves: the marker (None when it could not be read) and why not."""

    url: str
    marker: Marker | None
    status: int | None = None
    problem: str = ""

    @property
    def release(self) -> str | None:
        """The release the public sees there, or None when the marker could not be read."""
        return self.marker.release_id if self.marker else None


def marker_text(release_id: str, sums_sha256: str) -> str:
    """The marker's content, exactly as the server scripts write it (one line of JSON)."""
    return json.dumps({"release_id": release_id, "sums_sha256": sums_sha256}) + "\n"


def parse_marker(text: str) -> Marker | None:
    """Read a marker's JSON; None when it is not one (an HTML error page, a truncated file, another program)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("release_id"), str):
        return None
    sums = data.get("sums_sha256")
    return Marker(data["release_id"], sums if isinstance(sums, str) else "")


def marker_url(base_url: str) -> str:
    """Where a site's marker answers: the site's URL and the marker's path."""
    return base_url.rstrip("/") + URL_PATH


def read_served(base_url: str, *, timeout: float, headers: dict[str, str] | None = None) -> Served:
    """GET a site's release marker and say which release it serves; never raises for a server's answer."""
    url = marker_url(base_url)
    request = urllib.request.Request(url, headers={"User-Agent": "releaser", "Cache-Control": "no-cache",
                                                   **(headers or {})})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, body = response.status, response.read(READ_LIMIT)
    except urllib.error.HTTPError as error:
        return Served(url, None, error.code, f"-> {error.code}")
    except (urllib.error.URLError, OSError) as error:
        return Served(url, None, None, f"-> no answer ({getattr(error, 'reason', error)})")
    marker = parse_marker(body.decode("utf-8", errors="replace"))
    return Served(url, marker, status, "" if marker else f"-> {status} but not a release marker")


def read_release_header(url: str, header: str, *, timeout: float) -> Served:
    """GET `url` and say which release answered by its release header (an application instance names itself).

    The header names the release only, so the marker it gives has no digest ('').
    """
    request = urllib.request.Request(url, headers={"User-Agent": "releaser", "Cache-Control": "no-cache"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, named = response.status, response.headers.get(header)
            response.read(READ_LIMIT)
    except urllib.error.HTTPError as error:
        status, named = error.code, error.headers.get(header)
    except (urllib.error.URLError, OSError) as error:
        return Served(url, None, None, f"-> no answer ({getattr(error, 'reason', error)})")
    if not named:
        return Served(url, None, status, f"-> {status} without a {header} header")
    return Served(url, Marker(named.strip(), ""), status)


def judge_served(served: Served, expected: str) -> str | None:
    """None when the public URL serves `expected`; else the one line verification fails with, and what to do."""
    if served.release == expected:
        return None
    if served.marker is not None:
        return (f"GET {served.url} -> release {served.release}, expected {expected}: the web server is serving a "
                f"stale copy, not the release the live link points at; reload the web server (it may have resolved "
                f"the link once at start) and purge any cache in front of it")
    return f"GET {served.url} {served.problem}: cannot tell which release the public sees; {why_unknown(served)}"


def why_unknown(served: Served) -> str:
    """What an answer that names no release most likely means: the web server (or what it proxies to) is down or
    failing, or it hides the release marker."""
    if served.status is None:
        return "nothing answers there: is the web server running? (see: invoke runbook server-failure)"
    if served.status >= 500:
        return (f"the web server answers {served.status}: it, or the application instance behind it, is failing "
                "(see: invoke status, and its error log)")
    return (f"the web server must serve the release's {PUBLIC_DIR}/.releaser/ directory (a rule hiding "
            "dot-directories blocks it)")
