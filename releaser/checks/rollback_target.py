"""rollback-target: live exists and is intact on every server, so after go-live the backup is a real way back.

No rollback target is a FAIL, never a warning: that is how the data went out 135 minutes late in 2014.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from releaser.checks import CheckResult, Limits, ReleaseView, Unreadable, not_checked, server_facts
from releaser.facts import Verified
from releaser.order import counted

NAME = "rollback-target"
VERIFY = ("live",)  # the facts' round trip checks the live release's files against its sums


def gather(fleet, view: ReleaseView, limits: Limits) -> dict[str, object]:
    """What `sha256sum -c` said of each server's live release (read with the server's facts)."""
    found: dict[str, object] = {}
    for name in fleet.hosts:
        facts = server_facts(view, name)
        found[name] = facts if isinstance(facts, Unreadable) else facts.live or Unreadable("live was not verified")
    return found


def judge(facts: Mapping[str, object], limits: Limits, now: datetime) -> list[CheckResult]:
    """PASS where today's live is intact and the same everywhere; FAIL with no live, a missing or corrupt one."""
    lives = Counter(f.release for f in facts.values() if isinstance(f, Verified) and f.release)
    common = lives.most_common(1)[0][0] if lives else None
    results = []
    for server, fact in facts.items():
        if isinstance(fact, Unreadable):
            results.append(not_checked(NAME, server, fact))
            continue
        results.append(CheckResult(NAME, server, *_judge_one(fact, common, facts)))
    return results


def _judge_one(fact: Verified, common: str | None, facts: Mapping[str, object]) -> tuple[str, str]:
    if fact.outcome in ("noroot", "noslot") or fact.release is None:
        return "FAIL", "no live release: after go-live there would be NO rollback target"
    release = fact.release
    if release != common:
        elsewhere = ", ".join(counted(s for s, f in facts.items() if isinstance(f, Verified) and f.release == common))
        return "FAIL", f"live is {release} here but {common} on {elsewhere}: servers would roll back to different releases"
    if fact.outcome == "missing":
        return "FAIL", f"live points at {release}, which is not on disk: after go-live there would be NO rollback target"
    if fact.outcome == "nosums":
        return "WARN", f"live {release} has no checksums file: cannot tell the backup would be intact"
    if fact.outcome != "intact":
        return "FAIL", (f"live {release} fails its checksums ({fact.detail or 'unknown files'}): "
                        "the backup after go-live would not be intact")
    note = fact.read_note()
    return "PASS", f"after go-live the backup will be {release} ({fact.files} files intact" + (f", {note})" if note else ")")
