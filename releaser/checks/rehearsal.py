"""rehearsal: the staged release passed a dress rehearsal (`invoke rehearse`) within the last N days.

The rehearsal times prepare, switch, verify and revert on the real servers without touching live, so on
release day go-live does what was already done once. This check reads what the servers hold: each keeps its
latest rehearsal in <root>/.releaser/rehearsal.json, written with the journal line (one line to read, not the
whole journal), and the facts' round trip carries it. A server journaled before summaries existed sends its
journal's rehearsal lines instead, in that same trip. A rehearsal only this machine's journal remembers
(servers since rebuilt) did not happen here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from releaser.checks import ALL, CheckResult, Limits, ReleaseView
from releaser.journal import is_on_servers

NAME = "rehearsal"
REHEARSAL = True  # the facts' round trip reads each server's rehearsal summary (or its journal's rehearsal lines)


@dataclass(frozen=True)
class RehearsalFacts:
    """The release under check and the latest rehearsal event in the journals (None when there is none)."""

    release: str | None
    last: dict | None


def gather(fleet, view: ReleaseView, limits: Limits) -> RehearsalFacts:
    """Keep the latest rehearsal of this environment among those the servers' facts carried.

    Servers written before the summary existed have none: their journal's rehearsal lines came instead.
    """
    if not limits.environment.go_live.rehearsal_required:
        return RehearsalFacts(view.release, None)
    name = limits.environment.name
    summaries = [event for server in view.servers.values() if server.facts is not None
                 for event in server.facts.rehearsals if event.get("action") == "rehearse" and is_on_servers(event)]
    rehearsals = sorted((e for e in summaries if e.get("environment", name) == name), key=lambda e: e["at"])
    return RehearsalFacts(view.release, rehearsals[-1] if rehearsals else None)


def judge(facts: RehearsalFacts, limits: Limits, now: datetime) -> list[CheckResult]:
    """FAIL without a passing rehearsal of this very release within `[go_live] rehearsal_max_age_days`."""
    max_age = limits.environment.go_live.rehearsal_max_age_days
    if max_age == 0:
        return [CheckResult(NAME, ALL, "PASS", "not required here ([go_live] rehearsal_max_age_days = 0)")]
    last = facts.last
    if last is None:
        return [CheckResult(NAME, ALL, "FAIL", "no rehearsal on record: run invoke rehearse (the day before)")]
    rehearsed = (last.get("releases") or {}).get("staging")
    when = datetime.fromisoformat(last["at"].replace("Z", "+00:00"))
    age = now - when
    if last.get("outcome") != "done":
        return [CheckResult(NAME, ALL, "FAIL", f"the last rehearsal ({rehearsed}, {when:%a %d %b %H:%M} UTC) failed: "
                                               f"{last.get('detail', 'see invoke history')}")]
    if facts.release is not None and rehearsed != facts.release:
        return [CheckResult(NAME, ALL, "FAIL", f"the last rehearsal was of {rehearsed}, but {facts.release} is staged: "
                                               "run invoke rehearse")]
    if age > timedelta(days=max_age):
        return [CheckResult(NAME, ALL, "FAIL", f"the last rehearsal was {age.days} days ago (limit {max_age:g}): "
                                               "run invoke rehearse")]
    timings = last.get("timings") or {}
    return [CheckResult(NAME, ALL, "PASS", f"{rehearsed} rehearsed {when:%a %d %b %H:%M} UTC: switch "
                                           f"{timings.get('switch', 0):.2f} s, revert {timings.get('revert', 0):.2f} s")]
