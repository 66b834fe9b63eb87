"""The breach report a statistics producer sends the regulator, drafted from the journal. Pure.

Its sections follow the reports in shared/context/: the output, the producer and lead official, the
practice breached, when, the nature of the breach (scheduled time, actual time, minutes late or early),
the timeline of events, the reasons found in the journal, and the sections only a person can write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

FAILED_OUTCOMES = {"failed", "reverted", "mixed", "stopped", "refused", "unhealthy", "cancelled"}


@dataclass(frozen=True)
class BreachFacts:
    """What the journal says happened to one release against its scheduled time."""

    release_id: str
    scheduled: datetime
    actual: datetime | None
    timeline: tuple[dict, ...]
    reasons: tuple[str, ...]

    @property
    def minutes_late(self) -> int | None:
        """Whole minutes after the scheduled time (negative when early); None if it never went live."""
        if self.actual is None:
            return None
        return int((self.actual - self.scheduled).total_seconds() // 60)


def gather_breach_facts(release_id: str, scheduled: datetime, events: list[dict]) -> BreachFacts:
    """Pick from a merged journal the events about a release, when it really went live, and why it did not sooner."""
    related = [e for e in events if _mentions(e, release_id)]
    live = [e for e in related if e.get("action") == "go-live" and e.get("outcome") == "done"
            and (e.get("releases") or {}).get("live") == release_id]
    actual = _event_time(live[0], "switched_at") if live else None
    reasons = tuple(dict.fromkeys(
        f"{e['action']} {e['outcome']} at {_clock(_event_time(e), scheduled.tzinfo)}: {e.get('detail') or e.get('reason') or 'no detail'}"
        for e in related if e.get("outcome") in FAILED_OUTCOMES
    ))
    return BreachFacts(release_id, scheduled, actual, tuple(related), reasons)


def render_breach_report(facts: BreachFacts, *, metadata: dict, publication: str, today: date) -> str:
    """Render the report as Markdown, leaving impact and corrective actions for a person to complete."""
    zone = facts.scheduled.tzinfo
    scheduled = facts.scheduled.strftime("%A %d %B %Y at %H:%M %Z")
    if facts.actual is None:
        nature = f"The release {facts.release_id} due on {scheduled} has not been published."
    else:
        minutes = facts.minutes_late
        actual = facts.actual.astimezone(zone).strftime("%H:%M %Z on %d %B %Y")
        how = (f"a delay of {_minutes(minutes)}" if minutes > 0 else
               f"{_minutes(-minutes)} early" if minutes < 0 else "on time to the minute")
        nature = f"The release {facts.release_id} was due on {scheduled}. It was published at {actual}, {how}."
    field = lambda key, default="(to complete)": metadata.get(key) or default
    lines = [
        "# Breach of the Code of Practice for Statistics",
        "",
        "## 1. Background information",
        "",
        "| Information needed | Response |",
        "| --- | --- |",
        f"| Title and link to statistical output | {field('output_name', publication)} {field('output_url', '')} |",
        f"| Name of producer organisation | {field('producer')} |",
        f"| Head of Profession or Lead Official | {field('lead_official')} {field('lead_official_contact', '')} |",
        f"| Date of report | {today:%d %B %Y} |",
        "",
        *([f"> **To complete:** the environment's [breach] section leaves {', '.join(blank_fields(metadata))} blank.", ""]
          if blank_fields(metadata) else []),
        "## 2. Circumstances of breach",
        "",
        f"**Relevant principle and practice:** {field('practice', 'Principle T3 (Orderly release), practice T3.2: release at the pre-announced time')}",
        "",
        f"**Date of occurrence:** {facts.scheduled:%d %B %Y}",
        "",
        f"**Nature of breach:** {nature}",
        "",
        "**Reasons for breach (from the release journal):**",
        "",
        *([f"- {reason}" for reason in facts.reasons] or ["- No failure was journaled; state the reason here."]),
        "",
        "**Timeline of events:**",
        "",
        "| time | action | outcome | by | detail |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {_clock(_event_time(e), zone)} | {e.get('action', '')} | {e.get('outcome', '')} | {e.get('actor', '')} | "
          f"{_cell(e.get('detail') or e.get('reason') or '')} |" for e in facts.timeline],
        "",
        "## 3. Reactions and impact (both within the producer body and outside)",
        "",
        "(to complete: notices published, enquiries received, users affected)",
        "",
        "## 4. Corrective actions taken to prevent reoccurrence",
        "",
        "(to complete: short-term actions and long-term changes to procedures)",
        "",
        "## 5. Links to published statements about this breach",
        "",
        "(to complete)",
        "",
    ]
    return "\n".join(lines)


def blank_fields(metadata: dict) -> list[str]:
    """The [breach] fields the report needs that the environment leaves blank, so the report can say so."""
    return [key for key in ("producer", "lead_official", "lead_official_contact", "output_url") if not metadata.get(key)]


def _minutes(count: int) -> str:
    return f"{count} minute" if count == 1 else f"{count} minutes"


def _mentions(event: dict, release_id: str) -> bool:
    return release_id in (event.get("releases") or {}).values()


def _event_time(event: dict, preferred: str = "at") -> datetime:
    text = event.get(preferred) or event["at"]
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _clock(moment: datetime, zone) -> str:
    return moment.astimezone(zone or ZoneInfo("UTC")).strftime("%d %b %H:%M:%S")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
