"""The breach report a statistics producer sends the regulator, drafted from the journal. Pure.

Its sections follow the reports in shared/context/: the output, the producer and lead official, the
practice breached, when, the nature of the breach (scheduled time, actual time, minutes late or early),
the timeline of events, the reasons found in the journal, and the sections only a person can write.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from releaser.clock import span_text
from releaser.free_text import escaped_text
from releaser.journal import event_detail
from releaser.publication import (event_time, is_publication, minutes_between, publication_events, publication_of,
                                  releases_about)

FAILED_OUTCOMES = {"failed", "reverted", "mixed", "stopped", "refused", "unhealthy", "cancelled"}


@dataclass(frozen=True)
class BreachFacts:
    """What the journal says happened to one publication against its scheduled slot, whatever the release ids.

    `release_id` is the release that went live for the slot (or, never published, the one asked about);
    `timeline` every event of the publication; `attempts` its go-lives and rollbacks of every outcome.
    """

    release_id: str
    scheduled: datetime
    actual: datetime | None
    timeline: tuple[dict, ...]
    reasons: tuple[str, ...]
    publication: str = ""
    attempts: tuple[dict, ...] = ()
    overrides: tuple[dict, ...] = ()
    notices: tuple[dict, ...] = ()

    @property
    def minutes_late(self) -> int | None:
        """Whole minutes after the scheduled time (negative when early); None if it never went live."""
        if self.actual is None:
            return None
        return minutes_between(self.scheduled, self.actual)


def gather_publication_facts(scheduled: datetime, events: list[dict], *, release_id: str, publication: str = "",
                             until: datetime | None = None) -> BreachFacts:
    """Gather the facts of the publication due at `scheduled` from a merged journal.

    Every attempt counts whatever its release id (the failed release and the fix under a new id are one
    publication), with every override, refusal and notice of the release day; `until` is the next slot,
    so its events stay out. The actual time is the rename's second of the go-live that published the slot.
    """
    related = publication_events(scheduled, events, release_id=release_id, until=until)
    published = publication_of(scheduled, related, until=until, release_id=release_id)
    actual = event_time(published, published=True) if published else None
    reasons = tuple(dict.fromkeys(
        f"{e['action']} {_of(e)}{e['outcome']} at {_clock(event_time(e), scheduled.tzinfo)}: {event_detail(e) or 'no detail'}"
        for e in related if e.get("outcome") in FAILED_OUTCOMES
    ))
    return BreachFacts(
        release_id=(published.get("releases") or {}).get("live", release_id) if published else release_id,
        scheduled=scheduled, actual=actual, timeline=tuple(related), reasons=reasons, publication=publication,
        attempts=tuple(e for e in related if e.get("action") == "rollback" or e is published
                       or (e.get("action") == "go-live" and not is_publication(e))),
        overrides=tuple(e for e in related if e.get("action") == "override"),
        notices=tuple(e for e in related if e.get("action") == "notice"),
    )


def gather_breach_facts(release_id: str, scheduled: datetime, events: list[dict]) -> BreachFacts:
    """The facts of the publication `release_id` was for, due at `scheduled` (see gather_publication_facts)."""
    return gather_publication_facts(scheduled, events, release_id=release_id)


def render_breach_report(facts: BreachFacts, *, metadata: dict, publication: str, today: date) -> str:
    """Render the report as Markdown, leaving impact and corrective actions for a person to complete."""
    zone = facts.scheduled.tzinfo
    scheduled = facts.scheduled.strftime("%A %d %B %Y at %H:%M %Z")
    what = f"release of {publication}" if publication else "release"
    if facts.actual is None:
        tried = sorted({release for e in facts.attempts for release in releases_about(e)})
        nature = (f"The {what} due on {scheduled} has not been published"
                  + (f" (attempted as release {', '.join(tried)})." if tried else "."))
    else:
        minutes = facts.minutes_late
        actual = facts.actual.astimezone(zone).strftime("%H:%M %Z on %d %B %Y")
        how = (f"a delay of {_minutes(minutes)}" if minutes > 0 else
               f"{_minutes(-minutes)} early" if minutes < 0 else "on time to the minute")
        nature = f"The {what} was due on {scheduled}. It was published at {actual} as release {facts.release_id}, {how}."
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
        *([f"- {_md(reason)}" for reason in facts.reasons] or ["- No failure was journaled; state the reason here."]),
        "",
        "**Go-live attempts and rollbacks:**",
        "",
        *([_md(f"- {_clock(event_time(e), zone)} {e['action']} {_of(e)}{e.get('outcome', '')}"
               f"{f': {event_detail(e)}' if event_detail(e) else ''} (by {e.get('actor', 'unknown')})") for e in facts.attempts]
          or ["- None journaled."]),
        "",
        "**Checks overridden:**",
        "",
        *([_md(f"- {_clock(event_time(e), zone)} {e.get('actor', 'unknown')} {event_detail(e)}") for e in facts.overrides]
          or ["- None."]),
        "",
        "**Notices to the public:**",
        "",
        *([_md(f"- {_clock(event_time(e), zone)} {_notice(e)} (by {e.get('actor', 'unknown')})") for e in facts.notices]
          or ["- None journaled."]),
        "",
        "**Timeline of events:**",
        "",
        "| time | action | outcome | release | by | detail |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {_clock(event_time(e), zone)} | {_cell(e.get('action', ''))} | {_cell(e.get('outcome', ''))} | "
          f"{_cell(', '.join(sorted(releases_about(e))))} | {_cell(e.get('actor', ''))} | {_cell(event_detail(e))} |"
          for e in facts.timeline],
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


def describe_offset(minutes: int) -> str:
    """How early or late, in words: "1 minute late", "35 minutes early", "50400 minutes (35 days) early"."""
    if minutes == 0:
        return "on time to the minute"
    count = abs(minutes)
    larger = (f" ({count // 1440} day{'s' if count // 1440 != 1 else ''})" if count % 1440 == 0 and count >= 1440 else
              f" ({span_text(count)})" if count >= 60 else "")
    return f"{_minutes(count)}{larger} {'late' if minutes > 0 else 'early'}"


def off_calendar_lines(*, release_id: str, publication: str, slot: datetime, published_at: datetime,
                       minutes: int, command: str) -> list[str]:
    """What a forced off-calendar publication must be told: how far off its slot, that it is a breach, what to run."""
    due = slot.strftime("%H:%M %Z on %A %d %B %Y")
    if minutes == 0:  # within the minute (publication.minutes_between rounds down): the slot is a minute, not a second
        return [f"{release_id} went live at {published_at.astimezone(slot.tzinfo):%H:%M:%S %Z}, within the minute of "
                f"{publication}'s release at {due}: on time to the minute"]
    return [
        f"{release_id} went live {describe_offset(minutes)} against {publication}'s scheduled release at {due} "
        f"(live at {published_at.astimezone(slot.tzinfo):%H:%M:%S %Z on %d %B %Y})",
        "publishing before or after the pre-announced time is a breach of the Code of Practice for Statistics "
        "(orderly release, T3.2), to be reported to the regulator",
        f"draft the report with: {command}",
    ]


def breach_report_command(release_id: str, env: str) -> str:
    """The exact breach-report command for a release, quoted for a shell; --env only when it is not the default."""
    import shlex

    words = ["invoke", "breach-report", "--release", release_id, *(["--env", env] if env != "local" else []),
             "--out", "breach.md"]
    return shlex.join(words)


def blank_fields(metadata: dict) -> list[str]:
    """The [breach] fields the report needs that the environment leaves blank, so the report can say so."""
    return [key for key in ("producer", "lead_official", "lead_official_contact", "output_url") if not metadata.get(key)]


def _minutes(count: int) -> str:
    return f"{count} minute" if count == 1 else f"{count} minutes"


def _of(event: dict) -> str:
    """'of r3 ' for an event about a release, '' for one about none (a refusal before the release was read)."""
    about = sorted(releases_about(event))
    return f"of {', '.join(about)} " if about else ""


def _notice(event: dict) -> str:
    if event.get("outcome") == "cleared":
        return "notice cleared"
    return f"notice published: \"{event.get('detail', '')}\"" if event.get("outcome") == "done" else \
        f"notice {event.get('outcome', '')}: {event_detail(event)}"


def _clock(moment: datetime, zone) -> str:
    return moment.astimezone(zone or ZoneInfo("UTC")).strftime("%d %b %H:%M:%S")


def _md(text: str) -> str:
    """Journal text as Markdown shows it and nothing more: no HTML (a <script> in a reason), no link or image
    ([x](javascript:...)), no emphasis; what a person typed reads the same in the file and in a viewer. A control
    character (a newline, ESC) from a server's journal is written as its escape (\\n, \\x1b): a newline would
    start a heading or end the list item, and ESC would drive the terminal the report is printed on."""
    marked = _MD_SPECIAL.sub(r"\\\g<0>", str(text))
    return escaped_text(marked)


_MD_SPECIAL = re.compile(r"[\\<\[\]`*]")  # backslash-escaped, as CommonMark reads them; breach_html undoes it


def _cell(text: str) -> str:
    """Journal text in a table cell: _md, and no '|' or newline to end the cell."""
    return _md(text).replace("|", "\\|").replace("\n", " ")
