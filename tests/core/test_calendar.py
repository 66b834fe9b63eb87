"""Release calendar: rules, bank holidays, upload deadlines, clock changes and the iCalendar feed."""

import re
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releaser.calendar import (
    CalendarError,
    DeadlineRule,
    ReleaseRule,
    Schedule,
    check_timezone,
    format_until,
    is_working_day,
    next_release,
    parse_deadline_rule,
    parse_release_rule,
    release_day_verdict,
    releases_between,
    ICS_EVENT_MINUTES,
    deadline_move,
    parse_day_flag,
    refused_count,
    to_ics,
    upload_deadline_for,
)
from releaser.errors import UsageError

LONDON = ZoneInfo("Europe/London")
UTC = timezone.utc


def schedule(rule="first Tuesday of every month at 09:30", deadline="Wednesday before at 17:00", **options):
    return Schedule("phof", parse_release_rule(rule), parse_deadline_rule(deadline), **options)


def london(*parts):
    return datetime(*parts, tzinfo=LONDON)


def year_2027(sched):
    return releases_between(sched, london(2027, 1, 1), london(2028, 1, 1))


# --- parsing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("first Tuesday of every month at 09:30", ReleaseRule("monthly", 1, 1, time(9, 30)), id="first-tue"),
        pytest.param("third Thursday of every month at 14:00", ReleaseRule("monthly", 3, 3, time(14)), id="third-thu"),
        pytest.param("last Friday of every month at 09:30", ReleaseRule("monthly", 4, -1, time(9, 30)), id="last-fri"),
        pytest.param("every Monday at 07:00", ReleaseRule("weekly", 0, None, time(7)), id="weekly-mon"),
        pytest.param("  FIRST   tuesday OF Every month AT 9:30 ", ReleaseRule("monthly", 1, 1, time(9, 30)), id="case-and-spaces"),
    ],
)
def test_parse_release_rule(text, expected):
    """Each accepted form parses to the same rule whatever its case and spacing."""
    assert parse_release_rule(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("first Tuesday of every month at 09:30", id="monthly"),
        pytest.param("last Sunday of every month at 23:59", id="last"),
        pytest.param("every Monday at 07:00", id="weekly"),
    ],
)
def test_release_rule_text_round_trips(text):
    """str() of a parsed rule gives back its canonical text, for tables and error messages."""
    assert str(parse_release_rule(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("first Tuesday", id="no-time"),
        pytest.param("fifth Monday of every month at 09:30", id="fifth"),
        pytest.param("every Funday at 07:00", id="bad-weekday"),
        pytest.param("first Tuesday of every month at 9.30", id="dot-time"),
        pytest.param("every other Monday at 07:00", id="fortnightly"),
    ],
)
def test_unreadable_release_rule_lists_accepted_forms(text):
    """A release rule outside the grammar fails with a message naming the text and every accepted form."""
    with pytest.raises(CalendarError) as error:
        parse_release_rule(text)
    message = str(error.value)
    assert repr(text) in message
    assert '"first Tuesday of every month at 09:30"' in message
    assert '"every Monday at 07:00"' in message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("first Tuesday of every month at 24:00", id="hour"),
        pytest.param("every Monday at 07:60", id="minute"),
    ],
)
def test_release_time_out_of_range_is_refused(text):
    """A time of day that does not exist on a 24-hour clock is named in the error."""
    with pytest.raises(CalendarError, match="00:00 to 23:59"):
        parse_release_rule(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("Wednesday before at 17:00", DeadlineRule(2, None, time(17)), id="weekday"),
        pytest.param("3 working days before at 17:00", DeadlineRule(None, 3, time(17)), id="working-days"),
        pytest.param("1 working day before at 12:00", DeadlineRule(None, 1, time(12)), id="one-day"),
        pytest.param("wednesday BEFORE at 17:00", DeadlineRule(2, None, time(17)), id="case"),
    ],
)
def test_parse_deadline_rule(text, expected):
    """Each accepted deadline form parses to the same rule whatever its case."""
    assert parse_deadline_rule(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Wednesday at 17:00", id="no-before"),
        pytest.param("0 working days before at 17:00", id="zero-days"),
        pytest.param("3 days before at 17:00", id="calendar-days"),
        pytest.param("the day before", id="prose"),
    ],
)
def test_unreadable_deadline_rule_lists_accepted_forms(text):
    """A deadline rule outside the grammar fails with a message naming every accepted form."""
    with pytest.raises(CalendarError) as error:
        parse_deadline_rule(text)
    assert '"Wednesday before at 17:00"' in str(error.value)
    assert '"3 working days before at 17:00"' in str(error.value)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Europe/Lndon", id="typo"),
        pytest.param("", id="empty"),
        pytest.param("../../etc/passwd", id="path"),
        pytest.param("BST", id="abbreviation"),
    ],
)
def test_unknown_timezone_is_refused(name):
    """A time zone that is not an IANA name fails when the schedule is built, not at release time."""
    with pytest.raises(CalendarError, match="expected an IANA name"):
        check_timezone(name)
    with pytest.raises(CalendarError):
        schedule(timezone=name)


def test_known_timezone_is_returned():
    """check_timezone hands back a valid name unchanged, so config validators can use it directly."""
    assert check_timezone("Europe/London") == "Europe/London"


def test_unknown_holiday_policy_is_refused():
    """on_holiday accepts only the two policies, and the message names them."""
    with pytest.raises(CalendarError, match='"next-working-day" or "refuse"'):
        schedule(on_holiday="skip")


# --- recurrence --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, days, hour_minute",
    [
        pytest.param(
            "first Tuesday of every month at 09:30",
            ["01-05", "02-02", "03-02", "04-06", "05-04", "06-01", "07-06", "08-03", "09-07", "10-05", "11-02", "12-07"],
            (9, 30),
            id="first-tuesday",
        ),
        pytest.param(
            "third Thursday of every month at 14:00",
            ["01-21", "02-18", "03-18", "04-15", "05-20", "06-17", "07-15", "08-19", "09-16", "10-21", "11-18", "12-16"],
            (14, 0),
            id="third-thursday",
        ),
    ],
)
def test_whole_year_of_monthly_releases(rule, days, hour_minute):
    """A monthly rule gives exactly the twelve expected 2027 days, at the same local time all year."""
    releases = year_2027(schedule(rule))
    assert [r.at.date() for r in releases] == [date.fromisoformat(f"2027-{d}") for d in days]
    assert {(r.at.hour, r.at.minute) for r in releases} == {hour_minute}
    assert not any(r.moved or r.refused or r.note for r in releases)


def test_last_tuesday_on_boxing_day_observed_moves_to_wednesday():
    """The last Tuesday of December 2027 is a bank holiday, so that release moves to Wednesday 29th."""
    (release,) = releases_between(schedule("last Tuesday of every month at 09:30"), london(2027, 12, 1), london(2028, 1, 1))
    assert release.rule_date == date(2027, 12, 28)
    assert release.at == london(2027, 12, 29, 9, 30)
    assert release.moved and not release.refused
    assert release.note == "moved from Tue 28 Dec (Boxing Day, observed)"


def test_first_monday_on_may_day_moves_to_tuesday():
    """The first Monday of May 2027 is the Early May bank holiday, so the release moves to Tuesday 4 May."""
    may = [r for r in year_2027(schedule("first Monday of every month at 09:30")) if r.rule_date.month == 5]
    assert [(r.at, r.moved, r.refused, r.note) for r in may] == [
        (london(2027, 5, 4, 9, 30), True, False, "moved from Mon 3 May (May Day)")
    ]


def test_refuse_policy_keeps_holiday_release_flagged():
    """With on_holiday="refuse" the May Day release stays on its day, flagged refused, and next_release skips it."""
    sched = schedule("first Monday of every month at 09:30", on_holiday="refuse")
    may = [r for r in year_2027(sched) if r.rule_date.month == 5]
    assert [(r.at, r.moved, r.refused) for r in may] == [(london(2027, 5, 3, 9, 30), False, True)]
    assert "refused" in may[0].note and "May Day" in may[0].note
    assert next_release(sched, london(2027, 5, 1)).at == london(2027, 6, 7, 9, 30)


def test_extra_date_on_christmas_moves_past_boxing_day():
    """An extra release on Christmas Day 2026 moves over Boxing Day (observed) to Tuesday 29 December."""
    sched = schedule(extra_dates=(date(2026, 12, 25),))
    releases = releases_between(sched, london(2026, 12, 1), london(2027, 1, 1))
    assert [(r.at, r.rule_date, r.moved, r.note) for r in releases] == [
        (london(2026, 12, 1, 9, 30), date(2026, 12, 1), False, ""),
        (london(2026, 12, 29, 9, 30), date(2026, 12, 25), True, "extra date, moved from Fri 25 Dec (Christmas Day)"),
    ]


@pytest.mark.parametrize(
    "options, expected_days",
    [
        pytest.param({}, [date(2027, 8, 3), date(2027, 9, 7)], id="plain"),
        pytest.param({"cancelled_dates": (date(2027, 8, 3),)}, [date(2027, 9, 7)], id="cancelled"),
        pytest.param(
            {"extra_dates": (date(2027, 8, 19),)}, [date(2027, 8, 3), date(2027, 8, 19), date(2027, 9, 7)], id="extra"
        ),
        pytest.param({"extra_dates": (date(2027, 8, 3),)}, [date(2027, 8, 3), date(2027, 9, 7)], id="extra-duplicates-rule"),
        pytest.param(
            {"extra_dates": (date(2027, 8, 19),), "cancelled_dates": (date(2027, 8, 19),)},
            [date(2027, 8, 3), date(2027, 9, 7)],
            id="extra-and-cancelled",
        ),
    ],
)
def test_extra_and_cancelled_dates(options, expected_days):
    """Extra dates join the list at the rule's time, cancelled dates leave it, and a day is never listed twice."""
    releases = releases_between(schedule(**options), london(2027, 8, 1), london(2027, 10, 1))
    assert [r.at.date() for r in releases] == expected_days
    assert all(r.at.time() == time(9, 30) for r in releases)


def test_release_moved_into_window_is_listed():
    """A window starting after a holiday rule date still lists the release that moved into it."""
    sched = schedule("last Tuesday of every month at 09:30")
    releases = releases_between(sched, london(2027, 12, 29), london(2027, 12, 30))
    assert [(r.rule_date, r.at) for r in releases] == [(date(2027, 12, 28), london(2027, 12, 29, 9, 30))]


def test_window_is_half_open_and_sorted():
    """releases_between includes a release exactly at start and excludes one exactly at end."""
    sched = schedule()
    at = london(2027, 6, 1, 9, 30)
    assert [r.at for r in releases_between(sched, at, at + timedelta(seconds=1))] == [at]
    assert releases_between(sched, at - timedelta(days=1), at) == []


def test_naive_datetimes_are_rejected():
    """A naive start is a caller bug, so it raises instead of guessing a zone."""
    with pytest.raises(ValueError, match="timezone-aware"):
        releases_between(schedule(), datetime(2027, 1, 1), london(2027, 2, 1))


# --- deadlines ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "deadline, release_day, expected",
    [
        pytest.param("Wednesday before at 17:00", date(2027, 3, 2), london(2027, 2, 24, 17), id="wed-before-tue"),
        pytest.param("Wednesday before at 17:00", date(2027, 12, 29), london(2027, 12, 22, 17), id="wed-before-wed"),
        pytest.param("3 working days before at 17:00", date(2027, 6, 17), london(2027, 6, 14, 17), id="plain-days"),
        pytest.param("3 working days before at 17:00", date(2027, 6, 3), london(2027, 5, 28, 17), id="skips-spring-bank"),
        pytest.param("3 working days before at 17:00", date(2027, 5, 4), london(2027, 4, 28, 17), id="skips-may-day"),
        pytest.param("3 working days before at 17:00", date(2027, 3, 31), london(2027, 3, 24, 17), id="skips-easter"),
        pytest.param("1 working day before at 12:00", date(2027, 12, 29), london(2027, 12, 24, 12), id="skips-christmas"),
    ],
)
def test_upload_deadline(deadline, release_day, expected):
    """Deadlines fall strictly before release day, and working-day counts skip weekends and bank holidays."""
    assert upload_deadline_for(schedule(deadline=deadline), release_day) == expected


def test_deadline_across_clock_change_keeps_local_time():
    """A deadline in GMT for a release in BST still reads 17:00 local."""
    deadline = upload_deadline_for(schedule(deadline="3 working days before at 17:00"), date(2027, 3, 31))
    assert deadline.utcoffset() == timedelta(0)
    assert deadline.astimezone(UTC) == datetime(2027, 3, 24, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    "day, working",
    [
        pytest.param(date(2027, 5, 3), False, id="may-day"),
        pytest.param(date(2027, 5, 4), True, id="tuesday"),
        pytest.param(date(2027, 5, 8), False, id="saturday"),
        pytest.param(date(2027, 12, 27), False, id="christmas-observed"),
        pytest.param(date(2027, 3, 26), False, id="good-friday"),
    ],
)
def test_is_working_day(day, working):
    """Weekends and England & Wales bank holidays are not working days."""
    assert is_working_day(day) is working


# --- clock changes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, options, start, end, expected",
    [
        pytest.param(
            "every Monday at 09:30", {}, london(2027, 3, 20), london(2027, 4, 6),
            [(date(2027, 3, 22), 0), (date(2027, 3, 30), 1), (date(2027, 4, 5), 1)],
            id="spring-monday",  # Monday 29 March 2027 is Easter Monday: moved to Tuesday
        ),
        pytest.param(
            "every Monday at 09:30", {}, london(2027, 10, 20), london(2027, 11, 5),
            [(date(2027, 10, 25), 1), (date(2027, 11, 1), 0)],
            id="autumn-monday",
        ),
        pytest.param(
            "every Sunday at 09:30", {"on_holiday": "refuse"}, london(2027, 3, 27), london(2027, 3, 29),
            [(date(2027, 3, 28), 1)],
            id="spring-change-day",
        ),
        pytest.param(
            "every Sunday at 09:30", {"on_holiday": "refuse"}, london(2027, 10, 30), london(2027, 11, 1),
            [(date(2027, 10, 31), 0)],
            id="autumn-change-day",
        ),
    ],
)
def test_local_time_survives_clock_changes(rule, options, start, end, expected):
    """09:30 stays 09:30 Europe/London on both sides of each clock change; only the UTC offset moves."""
    releases = releases_between(schedule(rule, **options), start, end)
    assert [(r.at.date(), r.at.utcoffset() // timedelta(hours=1)) for r in releases] == expected
    assert all(r.at.time() == time(9, 30) for r in releases)
    assert all(r.at.astimezone(UTC).hour == 9 - offset for r, (_, offset) in zip(releases, expected))


def test_time_skipped_by_spring_change_moves_an_hour_on():
    """01:30 does not exist on 28 March 2027 in London, so that release is at 02:30 BST, the same instant."""
    (release,) = releases_between(
        schedule("every Sunday at 01:30", on_holiday="refuse"), london(2027, 3, 27), london(2027, 3, 29)
    )
    assert release.at.astimezone(UTC) == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert (release.at.hour, release.at.minute, release.at.tzname()) == (2, 30, "BST")


# --- next release and verdicts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now, expected",
    [
        pytest.param(london(2027, 3, 2, 9, 29, 59), london(2027, 3, 2, 9, 30), id="one-second-before"),
        pytest.param(london(2027, 3, 2, 9, 30), london(2027, 3, 2, 9, 30), id="same-second"),
        pytest.param(datetime(2027, 3, 2, 9, 30, tzinfo=UTC), london(2027, 3, 2, 9, 30), id="same-second-utc"),
        pytest.param(london(2027, 3, 2, 9, 30, 0, 1), london(2027, 4, 6, 9, 30), id="just-after"),
        pytest.param(datetime(2027, 6, 1, 8, 30, tzinfo=UTC), london(2027, 6, 1, 9, 30), id="bst-same-instant"),
    ],
)
def test_next_release(now, expected):
    """The next release is the first at or after now: at == now still counts, a microsecond later does not."""
    assert next_release(schedule(), now).at == expected


def test_next_release_none_when_everything_refused():
    """A weekly Sunday rule that refuses holidays never has a releasable day, so there is no next release."""
    assert next_release(schedule("every Sunday at 09:30", on_holiday="refuse"), london(2027, 1, 1)) is None


@pytest.mark.parametrize(
    "options, day, expected",
    [
        pytest.param({}, date(2026, 12, 1), None, id="release-day"),
        pytest.param(
            {}, date(2026, 11, 7),
            "Sat 7 Nov 2026 is not a release day of phof (next: Tue 1 Dec 2026 09:30 GMT)",
            id="ordinary-day",
        ),
        pytest.param(
            {"rule": "first Monday of every month at 09:30"}, date(2027, 5, 3),
            "Mon 3 May 2027 is not a release day of phof: its release moved to Tue 4 May 2027 09:30 BST (May Day)",
            id="moved-from",
        ),
        pytest.param({"rule": "first Monday of every month at 09:30"}, date(2027, 5, 4), None, id="moved-to"),
        pytest.param(
            {"rule": "first Monday of every month at 09:30", "on_holiday": "refuse"}, date(2027, 5, 3),
            'Mon 3 May 2027 is not a release day of phof: not a working day (May Day) and on_holiday is "refuse"'
            " (next: Mon 7 Jun 2027 09:30 BST)",
            id="refused",
        ),
        pytest.param(
            {"cancelled_dates": (date(2027, 8, 3),)}, date(2027, 8, 3),
            "Tue 3 Aug 2027 is not a release day of phof: cancelled (next: Tue 7 Sep 2027 09:30 BST)",
            id="cancelled",
        ),
        pytest.param({"extra_dates": (date(2027, 8, 19),)}, date(2027, 8, 19), None, id="extra"),
    ],
)
def test_release_day_verdict(options, day, expected):
    """A release day gets None; any other day gets a reason and the next real release time."""
    assert release_day_verdict(schedule(**options), day) == expected


# --- iCalendar ---------------------------------------------------------------------------------------------


def unfold(text):
    """Split iCalendar text into logical lines, undoing RFC 5545 folding."""
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    physical = text[:-2].split("\r\n")
    assert all(len(line.encode()) <= 75 for line in physical)
    logical = []
    for line in physical:
        if line.startswith(" "):
            logical[-1] += line[1:]
        else:
            logical.append(line)
    return logical


def events(text):
    """Return each VEVENT of an iCalendar text as a dict of its properties."""
    found, current = [], None
    for line in unfold(text):
        name, _, value = line.partition(":")
        if line == "BEGIN:VEVENT":
            current = {}
        elif line == "END:VEVENT":
            found.append(current)
            current = None
        elif current is not None:
            current[name] = value
    return found


ICS_LINE = re.compile(r"^(?P<name>[A-Z][A-Z0-9-]*)(?P<params>(?:;[A-Z0-9-]+=[^;:]*)*):(?P<value>.*)$")
TITLES = {"phof": "Public Health Outcomes Framework"}


def components(text):
    """Parse iCalendar text into nested components: {"name", "props": [(name, params, value)], "children"}.

    Checks the structure on the way: every line is NAME[;PARAM=VALUE]:VALUE, and BEGIN and END pair up.
    """
    root = {"name": None, "props": [], "children": []}
    stack = [root]
    for line in unfold(text):
        match = ICS_LINE.match(line)
        assert match, f"not a content line: {line!r}"
        name, value = match["name"], match["value"]
        params = dict(part.split("=", 1) for part in match["params"].split(";")[1:])
        if name == "BEGIN":
            component = {"name": value, "props": [], "children": []}
            stack[-1]["children"].append(component)
            stack.append(component)
        elif name == "END":
            assert stack[-1]["name"] == value, f"END:{value} closes {stack[-1]['name']}"
            stack.pop()
        else:
            assert len(stack) > 1, f"{line!r} outside any component"
            stack[-1]["props"].append((name, params, value))
    assert len(stack) == 1, "a component is never closed"
    [calendar] = root["children"]
    assert calendar["name"] == "VCALENDAR"
    return calendar


def prop(component, name):
    """The one (params, value) of `name` in a component: it must appear exactly once."""
    found = [(params, value) for n, params, value in component["props"] if n == name]
    assert len(found) == 1, f"{component['name']} has {len(found)} {name}"
    return found[0]


def offset(text):
    sign = -1 if text[0] == "-" else 1
    hours, minutes, seconds = int(text[1:3]), int(text[3:5]), int(text[5:7] or 0)
    return sign * timedelta(hours=hours, minutes=minutes, seconds=seconds)


def resolve(moment, params, zones):
    """The UTC instant of a DTSTART/DTEND, using only the VTIMEZONE in the file (never this machine's zoneinfo)."""
    if "TZID" not in params:
        assert moment.endswith("Z")
        return datetime.strptime(moment, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    local = datetime.strptime(moment, "%Y%m%dT%H%M%S")
    observances = zones[params["TZID"]]  # the VTIMEZONE must be there
    in_effect = [(start_local - before + after, after) for start_local, before, after in observances
                 if start_local - before + after <= local]
    assert in_effect, f"{moment} is before every observance of {params['TZID']}"
    return (local - max(in_effect)[1]).replace(tzinfo=UTC)


def timezones(calendar):
    """TZID -> [(DTSTART local, TZOFFSETFROM, TZOFFSETTO)] for every VTIMEZONE."""
    zones = {}
    for component in calendar["children"]:
        if component["name"] != "VTIMEZONE":
            continue
        observances = []
        for block in component["children"]:
            assert block["name"] in ("STANDARD", "DAYLIGHT")
            prop(block, "TZNAME")
            observances.append((datetime.strptime(prop(block, "DTSTART")[1], "%Y%m%dT%H%M%S"),
                                offset(prop(block, "TZOFFSETFROM")[1]), offset(prop(block, "TZOFFSETTO")[1])))
        assert observances, "a VTIMEZONE needs at least one STANDARD or DAYLIGHT"
        zones[prop(component, "TZID")[1]] = observances
    return zones


def vevents(text):
    """Each VEVENT as a dict: its properties' values, and start/end as UTC instants resolved through VTIMEZONE."""
    calendar = components(text)
    assert prop(calendar, "VERSION")[1] == "2.0" and prop(calendar, "PRODID")[1]
    zones = timezones(calendar)
    found = []
    for event in (c for c in calendar["children"] if c["name"] == "VEVENT"):
        values = {name: prop(event, name)[1] for name in ("UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "STATUS")}
        values["start"] = resolve(*reversed(prop(event, "DTSTART")), zones)
        values["end"] = resolve(*reversed(prop(event, "DTEND")), zones)
        values["TZID"] = prop(event, "DTSTART")[0].get("TZID")
        values["DESCRIPTION"] = dict((n, v) for n, _, v in event["props"]).get("DESCRIPTION", "")
        assert values["end"] > values["start"]
        found.append(values)
    return found


def test_ics_is_well_formed_and_each_event_is_at_its_moment_through_its_vtimezone():
    """Two years of releases across clock changes: every event's wall time and TZID, read only through the
    file's own VTIMEZONE, is the release or deadline instant; each lasts ICS_EVENT_MINUTES."""
    releases = releases_between(schedule(), london(2026, 1, 1), london(2028, 1, 1))
    text = to_ics(releases, now=london(2027, 1, 15, 12), titles=TITLES)
    found = vevents(text)
    assert len(found) == 2 * len(releases) == 48 and len({e["UID"] for e in found}) == 48
    expected = sorted(moment.astimezone(UTC) for r in releases for moment in (r.at, r.upload_deadline))
    assert sorted(e["start"] for e in found) == expected
    assert all(e["end"] - e["start"] == timedelta(minutes=ICS_EVENT_MINUTES) for e in found)
    assert {e["TZID"] for e in found} == {"Europe/London"} and {e["DTSTAMP"] for e in found} == {"20270115T120000Z"}
    assert {e["STATUS"] for e in found} == {"CONFIRMED"}
    summer = next(e for e in found if e["start"] == datetime(2027, 6, 1, 8, 30, tzinfo=UTC))
    assert summer["DTSTART"] == "20270601T093000" and summer["SUMMARY"] == "Public Health Outcomes Framework: release"
    assert to_ics(releases, now=london(2027, 1, 15, 12), titles=TITLES) == text


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_ics_vtimezone_is_right_for_other_zones(zone):
    """A zone with other change dates, one with none (one STANDARD block) and one that moves half an hour."""
    sched = Schedule("ny", parse_release_rule("every Monday at 09:30"), parse_deadline_rule("Friday before at 17:00"), zone)
    tz = ZoneInfo(zone)
    releases = releases_between(sched, datetime(2026, 1, 1, tzinfo=tz), datetime(2027, 1, 1, tzinfo=tz))
    found = vevents(to_ics(releases, now=datetime(2026, 1, 1, tzinfo=UTC)))
    assert sorted(e["start"] for e in found) == sorted(m.astimezone(UTC) for r in releases for m in (r.at, r.upload_deadline))
    assert all(e["DTSTART"].endswith("T093000") or e["DTSTART"].endswith("T170000") for e in found)


def test_ics_uid_survives_a_move():
    """A moved release keeps the UID of its rule date, so subscribers see the event move, not a duplicate."""
    sched = schedule("first Monday of every month at 09:30")
    (release,) = releases_between(sched, london(2027, 5, 1), london(2027, 5, 10))
    (event, _) = vevents(to_ics([release], now=london(2027, 1, 1)))
    assert event["UID"] == "20270503-phof-release@releaser"
    assert event["DTSTART"] == "20270504T093000" and event["start"] == datetime(2027, 5, 4, 8, 30, tzinfo=UTC)
    assert event["DESCRIPTION"] == "publication phof\\; moved from Mon 3 May (May Day)"


def test_ics_escapes_text_and_folds_long_lines():
    """Commas, semicolons, backslashes and newlines in titles are escaped, and long lines fold at 75 octets."""
    name = "crime, justice; and \\ policing\nstatistics für England " + "x" * 60
    text = to_ics(releases_between(schedule(), london(2027, 6, 1), london(2027, 6, 2)), now=london(2027, 1, 1),
                  titles={"phof": name})
    (release_event, _) = vevents(text)
    assert release_event["SUMMARY"] == (
        "crime\\, justice\\; and \\\\ policing\\nstatistics für England " + "x" * 60 + ": release"
    )


def test_ics_without_a_title_uses_the_publication_name():
    (release_event, deadline_event) = vevents(to_ics(releases_between(schedule(), london(2027, 6, 1), london(2027, 6, 2)),
                                                     now=london(2027, 1, 1)))
    assert (release_event["SUMMARY"], deadline_event["SUMMARY"]) == ("phof: release", "phof: upload deadline")


def test_ics_leaves_out_a_refused_release():
    """A refused date has no release, so it is not in the feed at all: not even as TENTATIVE."""
    sched = schedule("first Monday of every month at 09:30", on_holiday="refuse")
    releases = releases_between(sched, london(2027, 4, 1), london(2027, 6, 10))
    assert [r.refused for r in releases] == [False, True, False]  # 5 Apr, 3 May (May Day), 7 Jun
    assert refused_count(releases) == 1
    text = to_ics(releases, now=london(2027, 1, 1))
    found = vevents(text)
    assert "TENTATIVE" not in text and "20270503" not in text
    assert sorted(e["UID"] for e in found) == ["20270405-phof-release@releaser", "20270405-phof-upload-deadline@releaser",
                                               "20270607-phof-release@releaser", "20270607-phof-upload-deadline@releaser"]


# --- upload deadlines on bank holidays --------------------------------------------------------------------


@pytest.mark.parametrize("rule, release_day, deadline_day, note", [
    pytest.param("every Tuesday at 09:30", date(2024, 12, 31), date(2024, 12, 24), "upload deadline moved from Wed 25 Dec (Christmas Day)",
                 id="christmas"),
    pytest.param("first Tuesday of every month at 09:30", date(2025, 1, 7), date(2024, 12, 31),
                 "upload deadline moved from Wed 1 Jan (New Year's Day)", id="new-year"),
    pytest.param("first Tuesday of every month at 09:30", date(2027, 6, 1), date(2027, 5, 26), "", id="ordinary-wednesday"),
])
def test_a_deadline_on_a_bank_holiday_moves_to_the_working_day_before(rule, release_day, deadline_day, note):
    """Nobody uploads on Christmas Day: the deadline comes a working day earlier, and the calendar says why."""
    sched = schedule(rule)
    assert upload_deadline_for(sched, release_day) == datetime.combine(deadline_day, time(17), tzinfo=LONDON)
    assert deadline_move(sched, release_day) == note
    [release] = [r for r in releases_between(sched, london(2024, 12, 1), london(2027, 7, 1)) if r.at.date() == release_day]
    assert release.upload_deadline.date() == deadline_day and release.deadline_note == note


def test_a_working_days_deadline_is_never_flagged():
    """Counted in working days it skips holidays by itself: no note."""
    sched = schedule(deadline="3 working days before at 17:00")
    assert upload_deadline_for(sched, date(2025, 1, 7)) == london(2025, 1, 2, 17)  # 6, 3, 2 Jan; 1 Jan skipped
    assert deadline_move(sched, date(2025, 1, 7)) == ""


def test_a_day_flag_is_midnight_in_the_zone_and_refuses_anything_else():
    assert parse_day_flag("2026-07-01", zone="Europe/London") == london(2026, 7, 1, 0, 0)
    with pytest.raises(UsageError, match="cannot read the day"):
        parse_day_flag("01/07/2026", zone="Europe/London")


# --- format_until ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now, moment, expected",
    [
        pytest.param(london(2027, 6, 1, 9, 25, 48), london(2027, 6, 1, 9, 30), "in 00:04:12", id="minutes"),
        pytest.param(london(2027, 6, 1, 9, 30), london(2027, 6, 1, 9, 30), "in 00:00:00", id="now"),
        pytest.param(london(2027, 5, 29, 5, 30), london(2027, 6, 1, 9, 30), "in 3 days 4 h", id="days"),
        pytest.param(london(2027, 5, 31, 9, 30), london(2027, 6, 1, 9, 30), "in 1 day", id="one-day"),
        pytest.param(london(2027, 3, 27, 12), london(2027, 3, 29, 9, 30), "in 1 day 20 h", id="across-spring-change"),
        pytest.param(london(2027, 6, 1, 11, 45), london(2027, 6, 1, 9, 30), "2 h ago", id="hours-ago"),
        pytest.param(london(2027, 6, 1, 9, 35), london(2027, 6, 1, 9, 30), "5 min ago", id="minutes-ago"),
        pytest.param(london(2027, 6, 1, 9, 30, 7), london(2027, 6, 1, 9, 30), "7 s ago", id="seconds-ago"),
        pytest.param(london(2027, 6, 3, 12), london(2027, 6, 1, 9, 30), "2 days 2 h ago", id="days-ago"),
    ],
)
def test_format_until(now, moment, expected):
    """Distances read as a countdown under a day, days and hours beyond, and "ago" once past, in real elapsed time."""
    assert format_until(now, moment) == expected


# --- properties --------------------------------------------------------------------------------------------

RULES = st.builds(
    "{} {} of every month at {:02d}:{:02d}".format,
    st.sampled_from(["first", "second", "third", "fourth", "last"]),
    st.sampled_from(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]),
    st.integers(0, 23),
    st.sampled_from([0, 15, 30, 45]),
) | st.builds(
    "every {} at {:02d}:{:02d}".format,
    st.sampled_from(["Monday", "Friday", "Saturday", "Sunday"]),
    st.integers(0, 23),
    st.sampled_from([0, 30]),
)
DEADLINES = st.sampled_from(
    ["Wednesday before at 17:00", "Friday before at 23:59", "1 working day before at 17:00", "5 working days before at 09:00"]
)
DAYS = st.dates(date(2025, 1, 1), date(2030, 12, 31))


@settings(max_examples=200, deadline=None)
@given(
    rule=RULES,
    deadline=DEADLINES,
    on_holiday=st.sampled_from(["next-working-day", "refuse"]),
    extra=st.lists(DAYS, max_size=4),
    cancelled=st.lists(DAYS, max_size=4),
    start=DAYS,
    length=st.integers(1, 120),
)
def test_releases_land_on_working_days_after_their_deadline(rule, deadline, on_holiday, extra, cancelled, start, length):
    """For any rule and window in 2025-2030, every non-refused release is on a working day after its deadline."""
    sched = schedule(rule, deadline, on_holiday=on_holiday, extra_dates=tuple(extra), cancelled_dates=tuple(cancelled))
    begin = london(start.year, start.month, start.day)
    releases = releases_between(sched, begin, begin + timedelta(days=length))
    instants = [r.at.astimezone(UTC) for r in releases]
    assert instants == sorted(set(instants))
    assert all(begin <= r.at < begin + timedelta(days=length) for r in releases)
    for release in releases:
        assert release.rule_date not in cancelled and release.at.date() not in cancelled
        assert release.upload_deadline.astimezone(UTC) < release.at.astimezone(UTC)
        if not release.refused:
            assert is_working_day(release.at.date())
