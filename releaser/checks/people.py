"""people: a release manager, at least two people able to roll back on duty at release time, an escalation route.

In 2014 the two people who knew the system were on leave. This check reads the environment's [people]
and the release time; it reads no server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from releaser.checks import ALL, CheckResult, Limits, ReleaseView
from releaser.datasets import moment_text

NAME = "people"


@dataclass(frozen=True)
class PeopleFacts:
    """When the release is due (None: unknown, so today is judged) and the zone to read its day in."""

    due: datetime | None
    timezone: str = "Europe/London"


def gather(fleet, view: ReleaseView, limits: Limits) -> PeopleFacts:
    """Nothing to read: the rota is in the environment; the release time comes from the view."""
    zone = next((p.timezone for p in limits.environment.publications if p.name in view.publications), "Europe/London")
    return PeopleFacts(view.due, zone)


def judge(facts: PeopleFacts, limits: Limits, now: datetime) -> list[CheckResult]:
    """FAIL without a release manager, enough people able to roll back on duty that day, or an escalation route."""
    people = limits.environment.people
    moment = (facts.due or now).astimezone(ZoneInfo(facts.timezone))
    day = moment.date()
    when = moment_text(moment) if facts.due else f"today ({moment:%a} {day.day} {moment:%b}; release time unknown)"
    needed = limits.environment.thresholds.min_on_call
    results = []

    if not people.release_manager:
        results.append(CheckResult(NAME, ALL, "FAIL", "no release manager named: set [people] release_manager"))
    else:
        manager = next((p for p in people.on_call if p.name == people.release_manager), None)
        if manager is not None and not manager.is_on_duty(day):
            results.append(CheckResult(NAME, ALL, "WARN", f"release manager {manager.name} is not on duty {when}: "
                                                          "name who runs the go-live instead"))

    able = [p for p in people.on_call if p.can_rollback]
    on_duty = [p for p in able if p.is_on_duty(day)]
    away = [p.name for p in able if p not in on_duty]
    names = ", ".join(p.name for p in on_duty) or "nobody"
    if len(on_duty) < needed:
        absent = f"; not on duty or on leave: {', '.join(away)}" if away else ""
        results.append(CheckResult(NAME, ALL, "FAIL", f"{len(on_duty)} of the {needed} people needed who can roll back "
                                                      f"are on duty {when} ({names}){absent}: fix the [[people.on_call]] rota"))
    else:
        no_contact = [p.name for p in on_duty if not p.contact]
        if no_contact:
            results.append(CheckResult(NAME, ALL, "WARN", f"on call {when}: {names}, but no contact for {', '.join(no_contact)}"))

    if not people.escalation:
        results.append(CheckResult(NAME, ALL, "FAIL", "no escalation route: list who to call, in order, in [people] escalation"))

    reached = ", ".join(_reach(p) for p in on_duty) or "nobody"
    if not results:
        manager = next((p for p in people.on_call if p.name == people.release_manager), None)
        route = " -> ".join(_escalation_step(step, people.on_call, on_duty) for step in people.escalation)
        results.append(CheckResult(NAME, ALL, "PASS", f"release manager {_reach(manager) if manager else people.release_manager}; "
                                                      f"able to roll back {when}: {reached}; escalation: {route}"))
    elif all(r.status != "FAIL" for r in results) and len(on_duty) >= needed:
        results.insert(0, CheckResult(NAME, ALL, "PASS", f"able to roll back {when}: {reached}"))
    return results


def _reach(person) -> str:
    """A person with how to reach them, as the people file gives it: 'ben (07700 900001)'."""
    return f"{person.name} ({person.contact})" if person.contact else f"{person.name} (no contact in [[people.on_call]])"


def _escalation_step(step: str, rota, on_duty) -> str:
    """One escalation step with the contacts the file holds: the on-call step names who is on duty, a name its contact."""
    if "on-call" in step.lower() or "on call" in step.lower():
        return f"{step}: {', '.join(p.name for p in on_duty) or 'nobody on duty'}"
    named = [p for p in rota if p.contact and p.name.lower() in step.lower().replace(":", " ").split()]
    return step + "".join(f" ({p.contact})" for p in named if p.contact not in step)
