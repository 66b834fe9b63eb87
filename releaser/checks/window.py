"""window: the release is due on a valid release day, at the scheduled time, of every publication it carries.

Publishing late is a breach and so is publishing early; a go-live at a moment the calendar does not allow
is refused here, saying which moment would be right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from releaser.calendar import ScheduledRelease, format_until, next_release, release_day_verdict, releases_between
from releaser.checks import ALL, CheckResult, Limits, ReleaseView
from releaser.config import Environment
from releaser.errors import ReleaserError
from releaser.datasets import moment_text

NAME = "window"


@dataclass(frozen=True)
class WindowFacts:
    """The release under check and the publications its manifest says it carries (None: manifest unknown)."""

    release: str | None
    publications: Sequence[str] | None
    problem: str | None = None


def upcoming_releases(environment: Environment, now: datetime, *, months: int = 3,
                      publication: str | None = None) -> list[ScheduledRelease]:
    """List every declared publication's releases (or one's) from `now` for `months` months, soonest first."""
    if months < 1:
        raise ReleaserError(f"--months must be at least 1, got {months}")
    chosen = [environment.publication(publication)] if publication else list(environment.publications)
    end = now + relativedelta(months=months)
    found = [release for p in chosen for release in releases_between(p.schedule(), now, end)]
    return sorted(found, key=lambda release: (release.at, release.publication))


def gather(fleet, view: ReleaseView, limits: Limits) -> WindowFacts:
    """Nothing to read: the manifest in the release view names the publications."""
    return WindowFacts(view.release, view.publications if view.manifest else None, view.problem)


def judge(facts: WindowFacts, limits: Limits, now: datetime) -> list[CheckResult]:
    """Per publication: PASS on a release day at its time; FAIL when unknown, off-calendar or at another time."""
    if facts.publications is None:
        return [CheckResult(NAME, ALL, "FAIL", f"not checked: {facts.problem or 'no release to check'}")]
    if not facts.publications:
        return [CheckResult(NAME, ALL, "WARN", f"{facts.release} carries no publication: nothing to check against the calendar")]
    declared = {p.name: p for p in limits.environment.publications}
    results, moments = [], {}
    for name in facts.publications:
        publication = declared.get(name)
        if publication is None:
            known = ", ".join(declared) or "none"
            results.append(CheckResult(NAME, ALL, "FAIL", f"{facts.release} carries {name!r}, which the environment's "
                                                          f"[[publications]] does not declare (declared: {known})"))
            continue
        schedule = publication.schedule()
        if limits.at is None:
            coming = next_release(schedule, now)
            if coming is None:
                results.append(CheckResult(NAME, ALL, "FAIL", f"{name}: no release day in the next two years"))
                continue
            moments[name] = coming.at
            note = f" ({coming.note})" if coming.note else ""
            results.append(CheckResult(NAME, ALL, "PASS", f"{name}: next release {moment_text(coming.at)}{note}, "
                                                          f"{format_until(now, coming.at)}"))
            continue
        local = limits.at.astimezone(ZoneInfo(schedule.timezone))
        verdict = release_day_verdict(schedule, local.date())
        if verdict is not None:
            results.append(CheckResult(NAME, ALL, "FAIL", verdict))
            continue
        due = [r.at for r in releases_between(schedule, local.replace(hour=0, minute=0, second=0, microsecond=0),
                                                    local.replace(hour=23, minute=59, second=59)) if not r.refused]
        if due and all(abs((moment - local).total_seconds()) >= 1 for moment in due):
            results.append(CheckResult(NAME, ALL, "FAIL", f"{name} is due {moment_text(due[0])}, not "
                                                          f"{moment_text(local)}: early or late is a breach"))
            continue
        moments[name] = limits.at
        results.append(CheckResult(NAME, ALL, "PASS", f"{name}: {moment_text(local)} is a release day and time"))
    if len({moment.timestamp() for moment in moments.values()}) > 1:
        shown = "; ".join(f"{name} {moment_text(moment)}" for name, moment in moments.items())
        results.append(CheckResult(NAME, ALL, "FAIL", f"the publications it carries are due at different times ({shown}): "
                                                      "one release goes live once; split it"))
    return results
