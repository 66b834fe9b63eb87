"""HTTP probes of a server's live or staging URL: the status, and the first lines of the body when it fails."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from releaser.identity import Served

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback and intranet: never a proxy


@dataclass(frozen=True)
class Probe:
    """The answer to one GET: did it pass, its status, and a line saying why not."""

    url: str
    ok: bool
    status: int | None
    detail: str
    body_head: str = ""
    served: Served | None = None  # the release marker the same site answered with (releaser.identity)


def probe(url: str, *, status: int = 200, contains: str | None = None, timeout: float = 5.0,
          attempts: int = 1, pause: float = 0.2, headers: dict[str, str] | None = None) -> Probe:
    """GET `url` and judge it: expected status, and `contains` in the body when given. Retries `attempts` times."""
    result = None
    for attempt in range(attempts):
        result = _probe_once(url, status, contains, timeout, headers or {})
        if result.ok:
            return result
        if attempt + 1 < attempts:
            time.sleep(pause)
    return result


def _probe_once(url: str, expected: int, contains: str | None, timeout: float, headers: dict[str, str]) -> Probe:
    request = urllib.request.Request(url, headers={"User-Agent": "releaser", **headers})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            code, body = response.status, response.read(65536)
    except urllib.error.HTTPError as error:
        code, body = error.code, error.read(65536) if error.fp else b""
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Probe(url, False, None, f"GET {url} -> no answer ({reason})")
    text = body.decode("utf-8", errors="replace")
    head = "\n".join(text.strip().splitlines()[:5])
    if code != expected:
        return Probe(url, False, code, f"GET {url} -> {code}, expected {expected}", head)
    if contains is not None and contains not in text:
        return Probe(url, False, code, f"GET {url} -> {code} but the body lacks {contains!r}", head)
    return Probe(url, True, code, f"GET {url} -> {code}", head)
