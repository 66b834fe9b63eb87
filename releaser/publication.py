"""One publication in the journal: its calendar slot, every attempt at it whatever the release id, and what
happened around it (overrides, refusals, notices, rollbacks). Pure: journal events and times in, events out.

A go-live journals the slot it was for (`slot`, and `planned_at` for a scheduled one) and one `attempt` id
on every event of the command (override, stopped, refused, done). The breach report and `history --release`
start from a release id, find its slot, and from the slot every event that belongs to the publication: a
failed release and the fix published under a new id tell one story. Events that carry no slot (notices,
rollbacks, and journals written before slots were recorded) belong when they fall on the release day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

RELEASE_DAY = timedelta(hours=12)  # events without a slot count from this long before the slot to this long after
LATE_WINDOW = timedelta(hours=24)  # an off-calendar go-live this soon after an unpublished slot is late for it
# (so is one later, while the unpublished slot is no further away than the next: see choose_slot)
GRACE = timedelta(seconds=59)  # a go-live started within a minute of its slot is for that slot


@dataclass(frozen=True)
class Slot:
    """The calendar slot a go-live was for, and how far off it the release went live (negative: early)."""

    publication: str
    at: datetime

    def minutes_off(self, moment: datetime) -> int:
        """Whole minutes from the slot to `moment` (see minutes_between): late is positive, early negative."""
        return minutes_between(self.at, moment)


def minutes_between(scheduled: datetime, actual: datetime) -> int:
    """Whole minutes from `scheduled` to `actual`, rounded down: 30 s early is 1 minute early, 59 s late on time."""
    return int((actual - scheduled).total_seconds() // 60)


def event_time(event: dict, *, published: bool = False) -> datetime:
    """When an event happened; with published=True a go-live's `switched_at` (the second of the rename)."""
    text = (event.get("switched_at") if published else None) or event["at"]
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def slot_of(event: dict) -> datetime | None:
    """The slot an event says it was for (`slot`, or a scheduled go-live's `planned_at`), else None."""
    text = event.get("slot") or event.get("planned_at")
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def releases_about(event: dict) -> set[str]:
    """The release ids an event is about: what it made live, staged or attempted (never the backup it kept).

    A rollback is about the release it took down, and a reverted go-live about the one it attempted, not
    the one they put back live.
    """
    releases = event.get("releases") or {}
    keys = ("rolled_back", "staging") if event.get("action") == "rollback" else (
        ("attempted", "staging") if releases.get("attempted") else ("live", "staging"))
    return {releases[key] for key in keys if releases.get(key)}


def is_publication(event: dict) -> bool:
    """True for a go-live that put a release live on every server."""
    return event.get("action") == "go-live" and event.get("outcome") == "done"


def choose_slot(previous: datetime | None, following: datetime | None, moment: datetime,
                events: Sequence[dict], *, publication: str | None = None) -> datetime | None:
    """The slot an off-calendar go-live at `moment` is for: the last slot while it is unpublished, else the next.

    While no go-live journaled before `moment` published the last slot, the release is late for it when a
    go-live was tried for it, when it passed at most a day ago, or when it is no further from `moment` than
    the next slot: a fix two days after a missed slot is that slot's publication, late, not the next one's,
    weeks early. Otherwise (the last slot published, or the next one nearer) it is early for the next slot.
    Events journaled for another `publication` do not count.
    """
    if previous is None or following is None:
        return following or previous
    ours = [e for e in events if event_time(e) < moment
            and (publication is None or e.get("publication") in (None, publication))]
    if previous in {slot_of(e) for e in ours if is_publication(e)}:
        return following
    tried = previous in {slot_of(e) for e in ours}
    return previous if tried or moment - previous <= max(LATE_WINDOW, following - moment) else following


def find_slot(release_id: str, events: Sequence[dict]) -> datetime | None:
    """The earliest slot any event about `release_id` says it was for, or None when none says."""
    slots = [slot_of(e) for e in events if release_id in releases_about(e) or _attempt_of(e) in
             _attempts_about(release_id, events)]
    slots = [slot for slot in slots if slot is not None]
    return min(slots) if slots else None


def first_attempt(release_id: str, events: Sequence[dict]) -> dict | None:
    """The first go-live event about `release_id`, whatever its outcome, or None."""
    return next((e for e in events if e.get("action") == "go-live" and release_id in releases_about(e)), None)


def publication_events(slot: datetime, events: Sequence[dict], *, release_id: str | None = None,
                       until: datetime | None = None) -> list[dict]:
    """Every event that belongs to the publication due at `slot`, in journal order.

    An event belongs when it says it was for this slot; when it is a go-live of `release_id` after the
    slot and before `until`, whatever slot it says (asked about that release and slot, its late go-lives
    are the slot's); when it shares a go-live command (`attempt`) with one of those; when it is about a
    release attempted for the slot (or `release_id`) and says no other slot; or, saying no slot, when it
    falls on the publication's day: from 12 hours before the slot (or before its first attempt, for an
    early one) to 12 hours after the publication (or, unpublished, until 12 hours before the next slot,
    `until`).
    """
    adopted = {id(e) for e in _go_lives_adopted(slot, events, release_id=release_id, until=until)}
    mine = [e for e in events if slot_of(e) == slot or id(e) in adopted]
    elsewhere = set().union(*(releases_about(e) for e in events if e.get("action") == "go-live"
                              and slot_of(e) not in (None, slot)))
    attempts = {_attempt_of(e) for e in mine} - {None}
    involved = set().union(*(releases_about(e) for e in mine if e.get("action") == "go-live")) | (
        {release_id} if release_id else set())
    elsewhere -= involved
    start = min([slot, *(event_time(e) for e in mine)]) - RELEASE_DAY
    published = publication_of(slot, events, until=until, release_id=release_id)
    end = event_time(published, published=True) + RELEASE_DAY if published else None
    if until is not None:
        end = min(end, until - RELEASE_DAY) if end else until - RELEASE_DAY

    def belongs(event: dict) -> bool:
        if id(event) in adopted or _attempt_of(event) in attempts:
            return True
        said = slot_of(event)
        if said is not None:
            return said == slot
        moment = event_time(event)
        if end is not None and moment > end:
            return False
        about = releases_about(event)
        if involved & about:
            return True
        # about another slot's release only; a rollback on the release day belongs whatever it took down
        if about and about <= elsewhere and event.get("action") != "rollback":
            return False
        return moment >= start

    return [e for e in events if belongs(e)]


def publication_of(slot: datetime, events: Sequence[dict], *, until: datetime | None = None,
                   release_id: str | None = None) -> dict | None:
    """The go-live that published the slot: the first done go-live for it, or one saying no slot between it and `until`.

    A go-live saying no slot is not the publication when a go-live for the slot was tried after it. With
    `release_id`, a done go-live of that release between the slot and `until` is the publication whatever
    slot it says (see publication_events).
    """
    tried = [event_time(e) for e in events if slot_of(e) == slot and e.get("action") == "go-live"]
    adopted = {id(e) for e in _go_lives_adopted(slot, events, release_id=release_id, until=until)}
    for event in events:
        if not is_publication(event):
            continue
        said, moment = slot_of(event), event_time(event, published=True)
        if said == slot or id(event) in adopted:
            return event
        if said is None and moment >= slot - GRACE and (until is None or moment < until) and \
                not any(later > event_time(event) for later in tried):
            return event
    return None


def events_about_release(release_id: str, events: Sequence[dict]) -> list[dict]:
    """What `history --release` shows: the release's own events and those of its go-live commands without an id.

    An override, a stopped go-live or a refusal carries the `attempt` of the go-live command it belongs to;
    a notice or a rollback without a release id belongs through the publication slot the release was for.
    """
    attempts = _attempts_about(release_id, events)
    slot = find_slot(release_id, events)
    day = set()
    if slot is not None:
        day = {id(e) for e in publication_events(slot, events, release_id=release_id)
               if not releases_about(e) and e.get("action") in ("notice", "override", "go-live", "rollback")}
    return [e for e in events if release_id in (e.get("releases") or {}).values() or _attempt_of(e) in attempts
            or id(e) in day]


def _go_lives_adopted(slot: datetime, events: Sequence[dict], *, release_id: str | None,
                      until: datetime | None) -> list[dict]:
    """The go-lives of `release_id` from the slot (a minute's grace) until `until` that journaled another slot.

    Asked about a release and a slot (`breach-report --release ID --scheduled T`), the release's go-lives
    after T are T's, late, even when they journaled the next slot: a fix nearer the next slot than the
    missed one is journaled for the next, and so, in journals written before choose_slot looked at the
    nearer slot, is a fix more than a day late.
    """
    if release_id is None:
        return []
    return [e for e in events if e.get("action") == "go-live" and release_id in releases_about(e)
            and slot_of(e) not in (None, slot) and event_time(e) >= slot - GRACE
            and (until is None or event_time(e) < until)]


def _attempt_of(event: dict) -> str | None:
    return event.get("attempt")


def _attempts_about(release_id: str, events: Iterable[dict]) -> set[str]:
    return {e["attempt"] for e in events if e.get("attempt") and release_id in releases_about(e)}
