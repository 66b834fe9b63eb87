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
BODY_LIMIT = 65536  # bytes of a body read: enough for its first lines and a `contains`, never a whole download
HEAD_LINES = 5  # lines of the body a probe keeps to show why it failed


@dataclass(frozen=True)
class Probe:
    """The answer to one GET: did it pass, its status, a line saying why not, and the first lines of its body.

    The body is the server's, so it is untrusted text: `body_head` is kept as it came (releaser.ui escapes it
    when it shows it). `body_more` says how many lines of what was read follow the head, and `body_cut` that
    the body was longer than the BODY_LIMIT bytes read, so nothing of it is left out without saying so.
    """

    url: str
    ok: bool
    status: int | None
    detail: str
    body_head: str = ""
    served: Served | None = None  # the release marker the same site answered with (releaser.identity)
    body_more: int = 0
    body_cut: bool = False

    def body_lines(self) -> list[str]:
        """The first lines of the body as they came (a CR before each line's end dropped), untrusted."""
        return self.body_head.split("\n") if self.body_head else []


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


def body_summary(body: bytes) -> tuple[str, int, bool]:
    """A body as a Probe keeps it (read up to BODY_LIMIT + 1 bytes): its first HEAD_LINES lines as they came, how
    many lines of what was read follow them, and whether it was longer than BODY_LIMIT."""
    text = body[:BODY_LIMIT].decode("utf-8", errors="replace")
    lines = [line.removesuffix("\r") for line in text.strip().split("\n")] if text.strip() else []
    return "\n".join(lines[:HEAD_LINES]), max(0, len(lines) - HEAD_LINES), len(body) > BODY_LIMIT


def _probe_once(url: str, expected: int, contains: str | None, timeout: float, headers: dict[str, str]) -> Probe:
    request = urllib.request.Request(url, headers={"User-Agent": "releaser", **headers})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            code, body = response.status, response.read(BODY_LIMIT + 1)
    except urllib.error.HTTPError as error:
        code, body = error.code, error.read(BODY_LIMIT + 1) if error.fp else b""
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Probe(url, False, None, f"GET {url} -> no answer ({reason})")
    text = body[:BODY_LIMIT].decode("utf-8", errors="replace")
    head, more, cut = body_summary(body)
    if code != expected:
        return Probe(url, False, code, f"GET {url} -> {code}, expected {expected}", head, body_more=more, body_cut=cut)
    if contains is not None and contains not in text:
        return Probe(url, False, code, f"GET {url} -> {code} but the body lacks {contains!r}", head,
                     body_more=more, body_cut=cut)
    return Probe(url, True, code, f"GET {url} -> {code}", head, body_more=more, body_cut=cut)
