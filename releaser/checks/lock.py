"""lock: nobody else holds the deploy lock, and no publication the release does not carry is due within the minimum gap.

Two releases close together share one rollback target: in 2014 a release a week earlier used the backup
copy, so there was nothing to roll back to. The gap is checked from the environment's calendar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from releaser.calendar import releases_between
from releaser.checks import ALL, CheckResult, Limits, ReleaseView, Unreadable, not_checked, server_facts
from releaser.datasets import moment_text
from releaser.locks import LockInfo, describe_lock, is_expired, parse_lock

NAME = "lock"


@dataclass(frozen=True)
class HeldLock:
    """A lock found on a server; info is None when its info.json is missing or unreadable."""

    info: LockInfo | None


@dataclass(frozen=True)
class LockFacts:
    """Each server's lock (None: free), and when the release under check is due and what it carries."""

    locks: Mapping[str, object]
    due: datetime | None
    publications: Sequence[str]


def gather(fleet, view: ReleaseView, limits: Limits) -> LockFacts:
    """Every server's lock, from its facts; the calendar part needs no server."""
    locks: dict[str, object] = {}
    for name in fleet.hosts:
        facts = server_facts(view, name)
        if isinstance(facts, Unreadable):
            locks[name] = facts
        else:
            locks[name] = HeldLock(parse_lock(facts.lock)) if facts.locked else None
    return LockFacts(locks, view.due, view.publications)


def judge(facts: LockFacts, limits: Limits, now: datetime) -> list[CheckResult]:
    """FAIL a lock held by someone else, or a publication it does not carry due within the gap; WARN an expired lock."""
    results = []
    for server, lock in facts.locks.items():
        if isinstance(lock, Unreadable):
            results.append(not_checked(NAME, server, lock))
        elif lock is None:
            results.append(CheckResult(NAME, server, "PASS", "free"))
        elif lock.info is not None and is_expired(lock.info, now):
            results.append(CheckResult(NAME, server, "WARN", f"expired: {describe_lock(lock.info)}; the next command takes it over"))
        elif lock.info is not None and lock.info.owner == limits.actor and lock.info.kind == "manual":
            results.append(CheckResult(NAME, server, "PASS", f"held by you: {describe_lock(lock.info)}"))
        else:
            results.append(CheckResult(NAME, server, "FAIL", f"{describe_lock(lock.info)}; wait, or run: invoke unlock --reason TEXT"))
    results.append(judge_gap(facts, limits, now))
    return results


def judge_gap(facts: LockFacts, limits: Limits, now: datetime) -> CheckResult:
    """FAIL when a publication this release does not carry is (or was) due within the minimum gap of its release time.

    A late fix built without its publication meets that publication's missed slot here, so the FAIL also says
    how a release declares the publication it is for.
    """
    gap_days = limits.environment.thresholds.min_release_gap_days
    if facts.due is None:
        return CheckResult(NAME, ALL, "WARN", "release time unknown, so the gap to other publications was not checked")
    gap = timedelta(days=gap_days)
    close = []
    for publication in limits.environment.publications:
        if publication.name in facts.publications:
            continue
        for release in releases_between(publication.schedule(), facts.due - gap, facts.due + gap):
            if not release.refused:
                close.append((release.at, publication.name))
    if close:
        at, name = min(close, key=lambda pair: abs(pair[0] - facts.due))
        distance = abs(at - facts.due)
        side = "before" if at < facts.due else "after"
        tense = "was" if at < now else "is"
        return CheckResult(NAME, ALL, "FAIL", f"{name} {tense} due {moment_text(at)}, {_days(distance)} {side} this release "
                                              f"(minimum gap {gap_days:g} days): two releases that close share one "
                                              "rollback target; move one, or ship both in one release; a release "
                                              f"for {name} itself declares it: build it with --publication {name}")
    return CheckResult(NAME, ALL, "PASS", f"no other publication due within {gap_days:g} days of {moment_text(facts.due)}")


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.1f} days" if days >= 1 else f"{delta.total_seconds() / 3600:.1f} h"
