"""serving: each server's public URL serves the release its live link points at, before anything moves.

A web server that resolved the live link once at start, or a cache in front of it, keeps serving an older
release after the link moved (releaser.identity). Go-live's verification would catch such a server only
after the switch, at 09:30, and put the whole fleet back; this check finds it days earlier, when a reload is
all it takes. Each server's release marker (with [application], the instance's release header through the
front) is read over HTTP while the servers' facts are read, and compared with the live link once they are in.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from releaser.checks import CheckResult, Limits, ReleaseView, Unreadable, not_checked, server_facts, unreachable
from releaser.identity import Served, why_unknown

NAME = "serving"
USES_VIEW = False  # the GETs start at once, beside the facts' round trips; join() adds the live links
HTTP_PARALLEL = 16  # marker GETs in flight at once, all servers together


@dataclass(frozen=True)
class ServingFacts:
    """What one server's public URL serves, and the release its live link points at (None: no live link)."""

    served: Served
    live: str | None


def gather(fleet, view: ReleaseView | None, limits: Limits) -> dict[str, Served | Unreadable]:
    """GET every reachable server's release marker through its public URL, HTTP_PARALLEL at a time."""
    from releaser.participants.links import served_at

    environment = limits.environment
    found: dict[str, Served | Unreadable] = dict(unreachable(fleet, list(fleet.hosts)))
    asked = [name for name in fleet.hosts if name not in found]

    def read(name: str) -> Served:
        return served_at(environment, environment.server(name).live_url, timeout=environment.health.timeout)

    if asked:
        with ThreadPoolExecutor(max_workers=min(HTTP_PARALLEL, len(asked)), thread_name_prefix="serving") as pool:
            found.update(zip(asked, pool.map(read, asked)))
    return {name: found[name] for name in fleet.hosts}


def join(gathered: Mapping[str, Served | Unreadable], view: ReleaseView) -> dict[str, ServingFacts | Unreadable]:
    """Pair each server's answer with its live link from the facts (pure)."""
    joined: dict[str, ServingFacts | Unreadable] = {}
    for name, served in gathered.items():
        facts = server_facts(view, name)
        if isinstance(served, Unreadable) or isinstance(facts, Unreadable):
            joined[name] = served if isinstance(served, Unreadable) else facts
            continue
        live = facts.slots.get("live")
        joined[name] = ServingFacts(served, live.removeprefix("releases/") if live else None)
    return joined


def judge(facts: Mapping[str, object], limits: Limits, now: datetime) -> list[CheckResult]:
    """PASS where the public sees the live link's release; FAIL where it sees another or the URL fails, WARN where
    it answers 404 (no marker: nothing says which release it serves)."""
    results = []
    for server, fact in facts.items():
        if isinstance(fact, Unreadable):
            results.append(not_checked(NAME, server, fact))
        else:
            results.append(CheckResult(NAME, server, *_judge_one(fact)))
    return results


def _judge_one(fact: ServingFacts) -> tuple[str, str]:
    served = fact.served
    if fact.live is None:
        return "PASS", "no live release yet: nothing is served to compare"
    if served.release == fact.live:
        return "PASS", f"the public sees {served.release}, where live points"
    if served.release is not None:
        return "FAIL", (f"GET {served.url} -> release {served.release}, but live points at {fact.live}: the web "
                        "server serves a stale copy, and go-live's verification would fail here and put every "
                        "server back; reload the web server and purge any cache in front of it")
    if served.status == 404:
        return "WARN", (f"GET {served.url} -> 404: cannot tell which release the public sees; a release staged "
                        "before release markers has none until it next goes live, else the web server hides "
                        "each release's public/.releaser/ directory, which go-live's verification would fail on")
    return "FAIL", (f"GET {served.url} {served.problem}: cannot tell which release the public sees, and go-live's "
                    f"verification would fail here; {why_unknown(served)}")
