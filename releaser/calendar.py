"""Release calendar: when each publication goes out and when its data must be uploaded. Pure: no I/O, no clock.

A publication's calendar is a `Schedule`: a recurrence rule ("first Tuesday of every month at 09:30"), an
upload deadline rule ("Wednesday before at 17:00"), an IANA time zone, a holiday policy and lists of extra and
cancelled days. Every function takes `now` (timezone-aware) from its caller and never reads the clock.

Wall times are built in the schedule's zone, so 09:30 stays 09:30 local on both sides of a clock change.
Working days are Monday to Friday minus England & Wales bank holidays, as the `holidays` package knows them
(one-off bank holidays appear there only once they are announced and the package is updated).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from releaser.errors import UsageError


class CalendarError(ValueError):
    """A rule text that cannot be understood; str() says what was expected."""


@dataclass(frozen=True)
class ReleaseRule:
    """When a publication's releases fall: a weekday each week, or the nth (or last) weekday of each month."""

    frequency: str  # "monthly" or "weekly"
    weekday: int  # 0 = Monday ... 6 = Sunday
    nth: int | None  # 1..4, or -1 for "last"; None when weekly
    time_of_day: time

    def __str__(self) -> str:
        when = f"{self.time_of_day:%H:%M}"
        day = _WEEKDAY_NAMES[self.weekday]
        if self.frequency == "weekly":
            return f"every {day} at {when}"
        return f"{_ORDINAL_NAMES[self.nth]} {day} of every month at {when}"


@dataclass(frozen=True)
class DeadlineRule:
    """When data for a release must be uploaded: the last given weekday before it, or N working days before."""

    weekday: int | None  # "Wednesday before": 2; None when counting working days
    working_days: int | None  # "3 working days before": 3; None when a weekday is given
    time_of_day: time

    def __str__(self) -> str:
        when = f"{self.time_of_day:%H:%M}"
        if self.weekday is not None:
            return f"{_WEEKDAY_NAMES[self.weekday]} before at {when}"
        unit = "working day" if self.working_days == 1 else "working days"
        return f"{self.working_days} {unit} before at {when}"


HOLIDAY_POLICIES = ("next-working-day", "refuse")


@dataclass(frozen=True)
class Schedule:
    """Everything needed to compute one publication's release times."""

    publication: str
    rule: ReleaseRule
    deadline: DeadlineRule
    timezone: str = "Europe/London"
    on_holiday: str = "next-working-day"
    extra_dates: tuple[date, ...] = ()
    cancelled_dates: tuple[date, ...] = ()

    def __post_init__(self) -> None:
        check_timezone(self.timezone)
        if self.on_holiday not in HOLIDAY_POLICIES:
            raise CalendarError(
                f'on_holiday: expected "next-working-day" or "refuse", got {self.on_holiday!r}'
            )


@dataclass(frozen=True)
class ScheduledRelease:
    """One release of one publication, with its upload deadline and why it is where it is."""

    publication: str
    at: datetime  # aware, in the schedule's zone
    upload_deadline: datetime  # aware, in the schedule's zone
    rule_date: date  # the date the rule (or extra_dates) produced, before moving
    moved: bool  # moved off a weekend or bank holiday
    refused: bool  # on_holiday == "refuse" and rule_date is not a working day; listed so it can be shown
    note: str  # "moved from Mon 3 May (May Day)", "extra date", ""
    deadline_note: str = ""  # "upload deadline moved from Wed 25 Dec (Christmas Day)", ""


RELEASE_RULE_FORMS = (
    '"first Tuesday of every month at 09:30" (first, second, third, fourth or last; any weekday)',
    '"every Monday at 07:00" (weekly)',
)
DEADLINE_RULE_FORMS = (
    '"Wednesday before at 17:00" (the last such weekday strictly before release day)',
    '"3 working days before at 17:00" (skipping weekends and England & Wales bank holidays)',
)


def parse_release_rule(text: str) -> ReleaseRule:
    """Read a release rule such as "third Thursday of every month at 14:00", case-insensitively.

    Raises CalendarError naming the accepted forms when the text is not one of them.
    """
    words = _normalise(text)
    monthly = _MONTHLY_RE.fullmatch(words)
    if monthly:
        ordinal, day, hour, minute = monthly.groups()
        return ReleaseRule("monthly", _WEEKDAYS[day], _ORDINALS[ordinal], _time_of_day(text, hour, minute, "release"))
    weekly = _WEEKLY_RE.fullmatch(words)
    if weekly:
        day, hour, minute = weekly.groups()
        return ReleaseRule("weekly", _WEEKDAYS[day], None, _time_of_day(text, hour, minute, "release"))
    raise CalendarError(_expected("release rule", text, RELEASE_RULE_FORMS))


def parse_deadline_rule(text: str) -> DeadlineRule:
    """Read an upload deadline rule such as "Wednesday before at 17:00" or "3 working days before at 17:00".

    Raises CalendarError naming the accepted forms when the text is not one of them.
    """
    words = _normalise(text)
    by_weekday = _DEADLINE_WEEKDAY_RE.fullmatch(words)
    if by_weekday:
        day, hour, minute = by_weekday.groups()
        return DeadlineRule(_WEEKDAYS[day], None, _time_of_day(text, hour, minute, "deadline"))
    by_count = _DEADLINE_COUNT_RE.fullmatch(words)
    if by_count:
        count, _unit, hour, minute = by_count.groups()
        if int(count) < 1:
            raise CalendarError(_expected("deadline rule", text, DEADLINE_RULE_FORMS))
        return DeadlineRule(None, int(count), _time_of_day(text, hour, minute, "deadline"))
    raise CalendarError(_expected("deadline rule", text, DEADLINE_RULE_FORMS))


def check_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone this machine knows, so a typo fails at load, not at 09:30."""
    try:
        if not isinstance(name, str) or not name:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as error:
        raise CalendarError(
            f'unknown time zone {name!r}; expected an IANA name such as "Europe/London"'
        ) from error
    return name


def is_working_day(day: date) -> bool:
    """Tell whether `day` is Monday to Friday and not an England & Wales bank holiday, when releases can happen."""
    return day.weekday() < 5 and day not in _bank_holidays(day.year)


def upload_deadline_for(schedule: Schedule, release_day: date) -> datetime:
    """Return when data for the release on `release_day` (after any move) must be uploaded, in the schedule's zone.

    A "Wednesday before" that is a bank holiday moves to the working day before it: nobody uploads or signs off
    on Christmas Day, so the deadline comes earlier, never later (`deadline_move` says why).
    """
    return _wall_time(_deadline_day(schedule.deadline, release_day), schedule.deadline.time_of_day, ZoneInfo(schedule.timezone))


def deadline_move(schedule: Schedule, release_day: date) -> str:
    """Say why the upload deadline of the release on `release_day` is not where its rule puts it, or ""."""
    rule = schedule.deadline
    if rule.weekday is None:
        return ""  # counted in working days: it never lands on a holiday
    planned = _rule_deadline_day(rule, release_day)
    if _deadline_day(rule, release_day) == planned:
        return ""
    return f"upload deadline moved from {_day_text(planned)} ({_closure_name(planned)})"


def releases_between(schedule: Schedule, start: datetime, end: datetime) -> list[ScheduledRelease]:
    """List the releases with start <= at < end, sorted by time, so the calendar and go-live agree on one list.

    Rule dates on a weekend or bank holiday move to the next working day, or are kept and flagged `refused`
    when the schedule's on_holiday is "refuse". Extra dates are included (and moved the same way); a release
    whose rule date or final day is in cancelled_dates is left out.
    """
    start_utc, end_utc = _as_utc(start, "start"), _as_utc(end, "end")
    if end_utc <= start_utc:
        return []
    zone = ZoneInfo(schedule.timezone)
    # A moved release can land up to four days after its rule date (Christmas, Easter), so look further back.
    first = start_utc.astimezone(zone).date() - timedelta(days=_LOOK_BACK_DAYS)
    last = end_utc.astimezone(zone).date() + timedelta(days=1)
    candidates = [(day, False) for day in _rule_dates(schedule.rule, first, last)]
    candidates += [(day, True) for day in set(schedule.extra_dates) if first <= day <= last]
    cancelled = set(schedule.cancelled_dates)
    found: dict[datetime, ScheduledRelease] = {}
    for rule_day, extra in sorted(candidates):
        release = _release_for(schedule, zone, rule_day, extra)
        key = release.at.astimezone(timezone.utc)
        if rule_day in cancelled or release.at.date() in cancelled or key in found:
            continue
        if start_utc <= key < end_utc:
            found[key] = release
    return [found[key] for key in sorted(found)]


def next_release(schedule: Schedule, now: datetime) -> ScheduledRelease | None:
    """Return the first non-refused release at or after `now` within about two years, or None if there is none."""
    start = _as_utc(now, "now")
    horizon = start + timedelta(days=_SEARCH_DAYS)
    while start < horizon:
        end = min(start + timedelta(days=_SEARCH_STEP_DAYS), horizon)
        for release in releases_between(schedule, start, end):
            if not release.refused:
                return release
        start = end
    return None


def release_day_verdict(schedule: Schedule, day: date) -> str | None:
    """Return None if `day` is a release day of the schedule, else a reason a user can act on.

    Used to refuse a go-live on a day the calendar does not allow, saying which day would be right.
    """
    zone = ZoneInfo(schedule.timezone)
    day_start = _wall_time(day, time(0), zone)
    nearby = releases_between(
        schedule, day_start - timedelta(days=_LOOK_BACK_DAYS), day_start + timedelta(days=_LOOK_BACK_DAYS)
    )
    if any(r.at.date() == day and not r.refused for r in nearby):
        return None
    shown = _day_text(day, year=True)
    for release in nearby:
        if release.rule_date == day and release.moved:
            return (
                f"{shown} is not a release day of {schedule.publication}: its release moved to "
                f"{_moment_text(release.at)} ({_closure_name(day)})"
            )
    reason = ""
    if day in schedule.cancelled_dates:
        reason = ": cancelled"
    elif any(r.at.date() == day and r.refused for r in nearby):
        reason = f': not a working day ({_closure_name(day)}) and on_holiday is "refuse"'
    coming = next_release(schedule, day_start)
    upcoming = f"next: {_moment_text(coming.at)}" if coming else "no release in the next two years"
    return f"{shown} is not a release day of {schedule.publication}{reason} ({upcoming})"


ICS_EVENT_MINUTES = 15  # a release and a deadline are moments; calendars need an end, so each event lasts this long


def to_ics(releases: list[ScheduledRelease], *, now: datetime, titles: Mapping[str, str] | None = None) -> str:
    """Render releases and their upload deadlines as RFC 5545 iCalendar text, for people to subscribe to.

    Each release gives two events, titled with the publication's title, in the publication's time zone
    (a VTIMEZONE for each zone, so 09:30 stays 09:30 in any calendar) and lasting ICS_EVENT_MINUTES. UIDs
    depend only on publication and rule date, so a moved release updates the same event in subscribers'
    calendars. A refused release does not happen, so it is left out (see `refused_count`).
    """
    titles = titles or {}
    kept = [release for release in releases if not release.refused]
    moments = [_as_utc(m, "release time") for r in kept for m in (r.at, r.upload_deadline)]
    stamp = _ics_utc(_as_utc(now, "now"))
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//releaser//release calendar//EN",
        "CALSCALE:GREGORIAN",
    ]
    for zone in sorted({_zone_name(m) for r in kept for m in (r.at, r.upload_deadline)} - {None}):
        lines += _vtimezone(zone, min(moments), max(moments))
    for release in kept:
        uid = f"{release.rule_date:%Y%m%d}-{quote(release.publication, safe='')}"
        title = titles.get(release.publication) or release.publication
        for kind, moment, note in (("release", release.at, release.note),
                                   ("upload deadline", release.upload_deadline, release.deadline_note)):
            end = _as_utc(moment, "release time") + timedelta(minutes=ICS_EVENT_MINUTES)
            lines += [
                "BEGIN:VEVENT",
                f"UID:{uid}-{kind.replace(' ', '-')}@releaser",
                f"DTSTAMP:{stamp}",
                _ics_moment("DTSTART", moment),
                _ics_moment("DTEND", end.astimezone(moment.tzinfo)),
                f"SUMMARY:{_ics_text(f'{title}: {kind}')}",
                "STATUS:CONFIRMED",
                f"DESCRIPTION:{_ics_text('; '.join(part for part in (f'publication {release.publication}', note) if part))}",
                "END:VEVENT",
            ]
    lines.append("END:VCALENDAR")
    return "".join(_ics_fold(line) + "\r\n" for line in lines)


def refused_count(releases: list[ScheduledRelease]) -> int:
    """How many of `releases` are refused dates, which the .ics export leaves out."""
    return sum(1 for release in releases if release.refused)


def format_until(now: datetime, moment: datetime) -> str:
    """Say how far `moment` is from `now` in table-friendly words: "in 3 days 4 h", "in 00:04:12", "2 h ago"."""
    # Subtract in UTC: two datetimes sharing one ZoneInfo subtract as wall times and lose the DST hour.
    seconds = math.trunc((_as_utc(moment, "moment") - _as_utc(now, "now")).total_seconds())
    if seconds >= 0:
        days, rest = divmod(seconds, 86400)
        hours, rest = divmod(rest, 3600)
        if days == 0:
            return f"in {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
        return f"in {_plural(days, 'day')}" + (f" {hours} h" if hours else "")
    ago = -seconds
    if ago < 60:
        return f"{ago} s ago"
    if ago < 3600:
        return f"{ago // 60} min ago"
    if ago < 86400:
        return f"{ago // 3600} h ago"
    days, rest = divmod(ago, 86400)
    return f"{_plural(days, 'day')}" + (f" {rest // 3600} h" if rest >= 3600 else "") + " ago"


# --- private helpers -------------------------------------------------------------------------------------

_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WEEKDAYS = {name.lower(): index for index, name in enumerate(_WEEKDAY_NAMES)}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_ORDINAL_NAMES = {value: name for name, value in _ORDINALS.items()}
_SHORT_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_SHORT_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_DAY = "(" + "|".join(_WEEKDAYS) + ")"
_TIME = r"at (\d{1,2}):(\d{2})"
_MONTHLY_RE = re.compile(r"(first|second|third|fourth|last) " + _DAY + r" of every month " + _TIME)
_WEEKLY_RE = re.compile(r"every " + _DAY + " " + _TIME)
_DEADLINE_WEEKDAY_RE = re.compile(_DAY + r" before " + _TIME)
_DEADLINE_COUNT_RE = re.compile(r"(\d{1,2}) working (days?) before " + _TIME)

_LOOK_BACK_DAYS = 14
_SEARCH_DAYS = 2 * 366
_SEARCH_STEP_DAYS = 93


def _normalise(text: str) -> str:
    if not isinstance(text, str):
        return ""
    return " ".join(text.lower().split())


def _expected(what: str, text: str, forms: tuple[str, ...]) -> str:
    return f"cannot read {what} {text!r}; expected one of: " + "; ".join(forms)


def _time_of_day(text: str, hour: str, minute: str, what: str) -> time:
    if int(hour) > 23 or int(minute) > 59:
        raise CalendarError(f"{what} rule {text!r}: expected a 24-hour time from 00:00 to 23:59, got {hour}:{minute}")
    return time(int(hour), int(minute))


def _bank_holidays(year: int) -> dict[date, str]:
    """England & Wales bank holidays of `year`, built the first time that year is asked about (bank_holidays)."""
    from releaser.bank_holidays import holidays_of  # only the paths that ask which days are holidays

    return holidays_of("GB", "ENG", year)


def _closure_name(day: date) -> str:
    """Name why `day` is not a working day: the bank holiday's name, or "weekend"."""
    # "Boxing Day (observed)" reads better as "Boxing Day, observed" inside a note's parentheses.
    return _bank_holidays(day.year).get(day, "weekend").replace(" (observed)", ", observed")


def _next_working_day(day: date) -> date:
    day += timedelta(days=1)
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def _previous_working_day(day: date) -> date:
    day -= timedelta(days=1)
    while not is_working_day(day):
        day -= timedelta(days=1)
    return day


def _rule_dates(rule: ReleaseRule, first: date, last: date) -> list[date]:
    # dateutil here, not at the top: validating an environment file parses rules but never lists dates
    from dateutil.rrule import FR, MO, MONTHLY, SA, SU, TH, TU, WE, WEEKLY, rrule

    weekday = (MO, TU, WE, TH, FR, SA, SU)[rule.weekday]
    if rule.frequency == "weekly":
        recurrence = rrule(WEEKLY, byweekday=weekday, dtstart=datetime.combine(first, time(0)))
    else:
        recurrence = rrule(MONTHLY, byweekday=weekday(rule.nth), dtstart=datetime.combine(first, time(0)))
    return [moment.date() for moment in recurrence.between(
        datetime.combine(first, time(0)), datetime.combine(last, time(0)), inc=True
    )]


def _rule_deadline_day(rule: DeadlineRule, release_day: date) -> date:
    back = (release_day.weekday() - rule.weekday) % 7 or 7
    return release_day - timedelta(days=back)


def _deadline_day(rule: DeadlineRule, release_day: date) -> date:
    """The day of the upload deadline: the rule's weekday before (a bank holiday moves earlier), or N working days."""
    if rule.weekday is not None:
        day = _rule_deadline_day(rule, release_day)
        return _previous_working_day(day) if _is_bank_holiday(day) else day
    day = release_day
    for _ in range(rule.working_days):
        day = _previous_working_day(day)
    return day


def _is_bank_holiday(day: date) -> bool:
    return day.weekday() < 5 and day in _bank_holidays(day.year)


def _release_for(schedule: Schedule, zone: ZoneInfo, rule_day: date, extra: bool) -> ScheduledRelease:
    day, moved, refused = rule_day, False, False
    notes = ["extra date"] if extra else []
    if not is_working_day(rule_day):
        closed = f"{_day_text(rule_day)} ({_closure_name(rule_day)})"
        if schedule.on_holiday == "refuse":
            refused = True
            notes.append(f"refused: {closed} is not a working day")
        else:
            day, moved = _next_working_day(rule_day), True
            notes.append(f"moved from {closed}")
    return ScheduledRelease(
        publication=schedule.publication,
        at=_wall_time(day, schedule.rule.time_of_day, zone),
        upload_deadline=upload_deadline_for(schedule, day),
        rule_date=rule_day,
        moved=moved,
        refused=refused,
        note=", ".join(notes),
        deadline_note=deadline_move(schedule, day),
    )


def _wall_time(day: date, time_of_day: time, zone: ZoneInfo) -> datetime:
    """Return `time_of_day` on `day` in `zone`; a time skipped by the spring clock change moves an hour on."""
    local = datetime.combine(day, time_of_day, tzinfo=zone)
    return local.astimezone(timezone.utc).astimezone(zone)


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(timezone.utc)


def _day_text(day: date, *, year: bool = False) -> str:
    text = f"{_SHORT_DAYS[day.weekday()]} {day.day} {_SHORT_MONTHS[day.month - 1]}"
    return f"{text} {day.year}" if year else text


def _moment_text(moment: datetime) -> str:
    return f"{_day_text(moment.date(), year=True)} {moment:%H:%M} {moment.tzname()}"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _ics_utc(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%SZ}"


def _zone_name(moment: datetime) -> str | None:
    """The IANA name of a moment's zone, or None for a zone without one (written in UTC instead)."""
    return getattr(moment.tzinfo, "key", None)


def _ics_moment(prop: str, moment: datetime) -> str:
    """DTSTART/DTEND as wall time with its TZID, or in UTC when the zone has no IANA name."""
    zone = _zone_name(moment)
    if zone is None:
        return f"{prop}:{_ics_utc(_as_utc(moment, prop))}"
    return f"{prop};TZID={zone}:{moment.astimezone(ZoneInfo(zone)):%Y%m%dT%H%M%S}"


def _vtimezone(name: str, first: datetime, last: datetime) -> list[str]:
    """A VTIMEZONE for `name` with every offset change from a year before `first` to `last` (RFC 5545 3.6.5).

    Each change is its own STANDARD or DAYLIGHT block whose DTSTART is the local time, in the offset before the
    change, at which it happens. A zone without changes in that span gets one STANDARD block from 1970.
    """
    zone = ZoneInfo(name)
    changes = _offset_changes(zone, first - timedelta(days=366), last + timedelta(days=1))
    lines = ["BEGIN:VTIMEZONE", f"TZID:{name}"]
    if not changes:
        offset = first.astimezone(zone).utcoffset()
        lines += ["BEGIN:STANDARD", "DTSTART:19700101T000000", f"TZOFFSETFROM:{_ics_offset(offset)}",
                  f"TZOFFSETTO:{_ics_offset(offset)}", f"TZNAME:{_ics_text(first.astimezone(zone).tzname() or name)}",
                  "END:STANDARD"]
    for instant, before, after in changes:
        local = instant.astimezone(zone)
        kind = "DAYLIGHT" if local.dst() else "STANDARD"
        lines += [f"BEGIN:{kind}", f"DTSTART:{(instant + before).replace(tzinfo=None):%Y%m%dT%H%M%S}",
                  f"TZOFFSETFROM:{_ics_offset(before)}", f"TZOFFSETTO:{_ics_offset(after)}",
                  f"TZNAME:{_ics_text(local.tzname() or name)}", f"END:{kind}"]
    lines.append("END:VTIMEZONE")
    return lines


def _offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, timedelta, timedelta]]:
    """Every (UTC instant, offset before, offset after) at which `zone` changes its UTC offset in [start, end]."""
    changes = []
    day = _as_utc(start, "start").replace(hour=0, minute=0, second=0, microsecond=0)
    end = _as_utc(end, "end")
    offset = day.astimezone(zone).utcoffset()
    while day < end:
        following = day + timedelta(days=1)
        after = following.astimezone(zone).utcoffset()
        if after != offset:
            low, high = day, following  # offset(low) is the old one, offset(high) the new: find the second
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            changes.append((high.replace(microsecond=0), offset, after))
            offset = after
        day = following
    return changes


def _ics_offset(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{seconds:02d}" if seconds else "")


def _ics_text(text: str) -> str:
    """Escape a TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines."""
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def _ics_fold(line: str) -> str:
    """Fold a content line into pieces of at most 75 octets (RFC 5545 3.1), never splitting a UTF-8 character."""
    pieces, current, size, limit = [], "", 0, 75
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            pieces.append(current)
            current, size, limit = "", 0, 74  # continuation lines start with one space
        current += char
        size += width
    pieces.append(current)
    return "\r\n ".join(pieces)


def parse_time_flag(text: str, *, zone: ZoneInfo, now: datetime, flag: str = "--at") -> datetime:
    """Read a time given on the command line: every --at (and --scheduled) goes through here.

    'HH:MM' or 'HH:MM:SS' is that time today in `zone`; a date and time ('2026-12-01 09:30' or
    '2026-12-01T09:30') without an offset is wall time in `zone`. Anything else is a UsageError (exit 2).
    """
    cleaned = text.strip()
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", cleaned):
            hour, rest = cleaned.split(":", 1)
            return datetime.combine(now.astimezone(zone).date(), time.fromisoformat(f"{int(hour):02d}:{rest}"), tzinfo=zone)
        moment = datetime.fromisoformat(cleaned.replace(" ", "T", 1))
    except ValueError as error:
        raise UsageError(f"{flag} {text!r}: cannot read the time",
                         hint='write HH:MM (today), or a date and time like "2026-12-01 09:30"') from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def parse_day_flag(text: str, *, zone: str, flag: str = "--from") -> datetime:
    """Read a day given on the command line ('2026-09-01') as midnight of that day in `zone`; else UsageError (exit 2)."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError as error:
        raise UsageError(f"{flag} {text!r}: cannot read the day", hint="write it as YYYY-MM-DD, e.g. 2026-09-01") from error
    if not FIRST_YEAR <= day.year <= LAST_YEAR:  # bank holiday tables and time zones are not known that far away
        raise UsageError(f"{flag} {text!r}: the calendar covers the years {FIRST_YEAR} to {LAST_YEAR}",
                         hint="give a day in that range, e.g. 2026-09-01")
    return _wall_time(day, time(0), ZoneInfo(zone))


FIRST_YEAR, LAST_YEAR = 1970, 2199
