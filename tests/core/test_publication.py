"""Issue 12, items 7 and 13: the breach report and `history --release` follow the publication, not a release id.

Pure: journal events built by hand (the 2014 late release, with the fix under a new id) in, facts and text out.
"""

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from releaser.breach import describe_offset, gather_publication_facts, off_calendar_lines, render_breach_report
from releaser.calendar import next_release, releases_between
from releaser.config import load_environment
from releaser.journal import event_detail
from releaser.publication import choose_slot, events_about_release, find_slot, minutes_between, publication_events

LONDON = ZoneInfo("Europe/London")
PROJECT = Path(__file__).resolve().parents[2]
SLOT = datetime(2014, 11, 4, 9, 30, tzinfo=timezone.utc)  # 09:30 GMT
NOVEMBER_SLOT = "2014-10-07T08:30:00.000Z"  # the month before (BST)
SLOT_TEXT = "2014-11-04T09:30:00.000Z"


def event(at: str, action: str, outcome: str, **fields) -> dict:
    return {"id": f"{action}-{outcome}-{at}", "at": at, "action": action, "outcome": outcome, "actor": "ana@stats",
            "environment": "production", **fields}


JOURNAL = [
    # the previous publication: r6 in October, on time
    event("2014-10-07T08:30:00.100Z", "go-live", "done", releases={"live": "r6"}, slot=NOVEMBER_SLOT,
          planned_at=NOVEMBER_SLOT, switched_at="2014-10-07T08:30:00.000Z", attempt="a0"),
    event("2014-11-03T16:00:00.000Z", "stage", "done", releases={"staging": "r7"}),
    # 09:20: the T-10 checks fail on the deadline, overridden; 09:30 the switch fails and reverts
    event("2014-11-04T09:19:00.000Z", "override", "done", releases={"staging": "r7"}, reason="late figures approved",
          checks=["deadline"], attempt="a1", slot=SLOT_TEXT),
    event("2014-11-04T09:30:01.000Z", "go-live", "reverted", releases={"live": "r6", "attempted": "r7"},
          detail="GET /healthz -> 502 on web-2", attempt="a1", slot=SLOT_TEXT, planned_at=SLOT_TEXT),
    event("2014-11-04T09:35:00.000Z", "notice", "done", detail="Today's figures are delayed"),
    # 10:10 a retry is refused before anything is read: two servers are down (no release id, no slot)
    event("2014-11-04T10:10:00.000Z", "go-live", "refused", detail="web-2, web-3: cannot be reached",
          unreachable=["web-2", "web-3"], attempt="a2"),
    event("2014-11-04T11:20:00.000Z", "stage", "done", releases={"staging": "r8", "previous_staging": "r7"}),
    # 11:45 the fix, r8, goes live with --now --force, for the 09:30 slot
    event("2014-11-04T11:45:02.000Z", "go-live", "done", releases={"live": "r8", "backup": "r6"}, forced=True,
          switched_at="2014-11-04T11:45:00.000Z", attempt="a3", slot=SLOT_TEXT, publication="phof"),
    event("2014-11-04T11:50:00.000Z", "notice", "cleared"),
    # the next month's release is another publication
    event("2014-12-01T16:00:00.000Z", "stage", "done", releases={"staging": "r9"}),
    event("2014-12-02T09:30:00.500Z", "go-live", "done", releases={"live": "r9", "backup": "r8"},
          slot="2014-12-02T09:30:00.000Z", switched_at="2014-12-02T09:30:00.000Z", attempt="a4"),
]


def facts_for(release_id: str):
    slot = find_slot(release_id, JOURNAL)
    return gather_publication_facts(slot.astimezone(LONDON), JOURNAL, release_id=release_id, publication="phof",
                                    until=datetime(2014, 12, 2, 9, 30, tzinfo=timezone.utc))


def report_for(release_id: str) -> str:
    return render_breach_report(facts_for(release_id), metadata={}, publication="PHOF", today=date(2014, 11, 5))


def test_failed_and_fixed_release_ids_find_the_same_slot_and_report():
    """With r7 (failed) or r8 (the fix) the report is the one publication due at 09:30 on 4 November."""
    assert find_slot("r7", JOURNAL) == find_slot("r8", JOURNAL) == SLOT
    assert facts_for("r7") == facts_for("r8")
    assert report_for("r7") == report_for("r8")


def test_report_names_the_actual_publication_its_release_and_the_delay():
    """Published at 11:45 as r8: 135 minutes late, whichever id was asked."""
    facts = facts_for("r7")
    assert facts.release_id == "r8" and facts.minutes_late == 135
    assert "It was published at 11:45 GMT on 04 November 2014 as release r8, a delay of 135 minutes." in report_for("r7")


def test_report_lists_every_attempt_override_refusal_and_notice():
    """Reverted r7, the refusal for servers down (no release id), r8 done; the deadline override; notice and clear."""
    facts = facts_for("r8")
    assert [(e["action"], e["outcome"]) for e in facts.attempts] == [
        ("go-live", "reverted"), ("go-live", "refused"), ("go-live", "done")]
    text = report_for("r8")
    assert "go-live of r7 reverted: GET /healthz -> 502 on web-2" in text
    assert "go-live refused: web-2, web-3: cannot be reached" in text
    assert "ana@stats overrode deadline: late figures approved" in text
    assert 'notice published: "Today\'s figures are delayed"' in text and "notice cleared" in text


def test_other_publications_stay_out_of_the_report():
    """October's r6 and December's r9 are other publications: neither appears, though r8 is December's backup."""
    ids = {e["id"] for e in facts_for("r8").timeline}
    assert not any("2014-10" in i or "2014-12" in i for i in ids)
    assert facts_for("r8").timeline[0]["releases"] == {"staging": "r7"}  # the stage the afternoon before belongs


@pytest.mark.parametrize(("moment", "tried", "published", "expected"), [
    pytest.param("2014-11-04T11:45", False, False, SLOT, id="late-the-same-day"),
    pytest.param("2014-11-07T11:45", True, False, SLOT, id="late-for-a-slot-that-was-tried"),
    pytest.param("2014-11-07T11:45", False, False, SLOT, id="late-for-a-missed-slot-nearer-than-the-next"),
    pytest.param("2014-11-20T11:45", False, False, datetime(2014, 12, 2, 9, 30, tzinfo=timezone.utc),
                 id="early-for-the-next-when-it-is-nearer-than-the-missed-one"),
    pytest.param("2014-11-04T11:45", True, True, datetime(2014, 12, 2, 9, 30, tzinfo=timezone.utc),
                 id="early-for-the-next-once-the-last-is-published"),
])
def test_an_off_calendar_go_live_is_for_the_unpublished_slot_else_the_next(moment, tried, published, expected):
    """A forced go-live after a slot is late for it while it is unpublished (tried, within a day, or nearer than
    the next slot); otherwise early for the next one."""
    events = [event("2014-11-04T09:30:01.000Z", "go-live", "reverted", slot=SLOT_TEXT)] if tried else []
    events += [event("2014-11-04T10:00:00.000Z", "go-live", "done", slot=SLOT_TEXT)] if published else []
    at = datetime.fromisoformat(moment).replace(tzinfo=timezone.utc)
    assert choose_slot(SLOT, datetime(2014, 12, 2, 9, 30, tzinfo=timezone.utc), at, events) == expected


def test_history_of_a_release_keeps_its_overrides_refusals_and_notices():
    """`history --release r7` shows the override (naming the check), its go-live, the notices and the refusal."""
    rows = [(e["action"], e["outcome"]) for e in events_about_release("r7", JOURNAL)]
    assert rows == [("stage", "done"), ("override", "done"), ("go-live", "reverted"), ("notice", "done"),
                    ("go-live", "refused"), ("stage", "done"), ("notice", "cleared")]
    override = next(e for e in JOURNAL if e["action"] == "override")
    assert event_detail(override) == "overrode deadline: late figures approved"


def test_history_follows_an_attempt_whose_events_carry_no_release_id():
    """An override journaled without a release id belongs through its go-live command's attempt id."""
    bare = [event("2014-11-04T09:19:00.000Z", "override", "done", checks=["lock"], reason="r", attempt="x"),
            event("2014-11-04T09:20:00.000Z", "go-live", "stopped", detail="lock on web-1", attempt="x",
                  releases={"staging": "r7"})]
    assert [e["action"] for e in events_about_release("r7", bare)] == ["override", "go-live"]


@pytest.mark.parametrize(("minutes", "said"), [
    pytest.param(1, "1 minute late", id="one"),
    pytest.param(-35, "35 minutes early", id="many"),
    pytest.param(135, "135 minutes (2 h 15 min) late", id="hours"),
    pytest.param(-35 * 1440, "50400 minutes (35 days) early", id="days"),
])
def test_offsets_are_said_in_words_with_the_right_number(minutes, said):
    """'1 minute', '35 minutes', and days for a publication weeks off its slot."""
    assert describe_offset(minutes) == said


def test_off_calendar_warning_says_breach_and_the_command():
    """A forced early publication is told how early, that it is a breach, and the exact breach-report command."""
    slot = datetime(2026, 12, 1, 9, 30, tzinfo=LONDON)
    lines = off_calendar_lines(release_id="r4", publication="phof", slot=slot, published_at=slot - timedelta(days=35),
                               minutes=-35 * 1440, command="invoke breach-report --release r4 --out breach.md")
    assert lines[0].startswith("r4 went live 50400 minutes (35 days) early against phof's scheduled release at "
                               "09:30 GMT on Tuesday 01 December 2026")
    assert "breach of the Code of Practice" in lines[1]
    assert lines[2] == "draft the report with: invoke breach-report --release r4 --out breach.md"


def test_a_forced_go_live_within_the_minute_says_the_second_it_went_live():
    """16 s after the slot is on time to the minute (the calendar's unit), and the line says 09:30:16, not 'on time'."""
    slot = datetime(2026, 12, 1, 9, 30, tzinfo=LONDON)
    lines = off_calendar_lines(release_id="r4", publication="phof", slot=slot, published_at=slot + timedelta(seconds=16),
                               minutes=0, command="invoke breach-report --release r4 --out breach.md")
    assert lines == ["r4 went live at 09:30:16 GMT, within the minute of phof's release at 09:30 GMT on Tuesday "
                     "01 December 2026: on time to the minute"]


def test_a_go_live_before_the_slot_was_tried_is_not_its_publication():
    """r1 went live (no slot) seconds before r3 was tried for the slot and reverted: the slot is not published."""
    events = [event("2014-11-04T09:29:50.000Z", "go-live", "done", releases={"live": "r1"}),
              event("2014-11-04T09:30:01.000Z", "go-live", "reverted", releases={"live": "r1", "attempted": "r3"},
                    slot=SLOT_TEXT, planned_at=SLOT_TEXT)]
    facts = gather_publication_facts(SLOT, events, release_id="r3")
    assert facts.actual is None and facts.release_id == "r3"
    text = render_breach_report(facts, metadata={}, publication="PHOF", today=date(2014, 11, 5))
    assert "has not been published (attempted as release r3)." in text


# ---- QA-b finding 1: a publication more than a day late is late for its missed slot, not early for the next ----

WEDNESDAY = datetime(2026, 12, 2, 9, 30, tzinfo=timezone.utc)  # phof "every Wednesday at 09:30", missed
NEXT_WEDNESDAY = datetime(2026, 12, 9, 9, 30, tzinfo=timezone.utc)
THURSDAY_EVENING = datetime(2026, 12, 3, 18, 53, 31, tzinfo=timezone.utc)  # when the fix went live


def test_a_fix_the_day_after_a_missed_weekly_slot_is_late_for_it():
    """Wed 09:30 missed, nothing journaled for it, the fix on Thu 18:53: late for Wednesday, not early for the next."""
    chosen = choose_slot(WEDNESDAY, NEXT_WEDNESDAY, THURSDAY_EVENING, [], publication="phof")
    assert chosen == WEDNESDAY
    assert minutes_between(chosen, THURSDAY_EVENING) == 2003


def test_a_fix_two_days_after_a_missed_first_tuesday_is_late_for_it_on_the_real_calendar():
    """The local calendar's phof (first Tuesday 09:30): Tue 1 Dec missed, a fix on Thu 3 Dec is late for 1 Dec, not
    32 days early for 5 January."""
    schedule = next(p for p in load_environment("local", PROJECT).publications if p.name == "phof").schedule()
    moment = datetime(2026, 12, 3, 18, 53, tzinfo=LONDON)
    previous = [r.at for r in releases_between(schedule, moment - timedelta(days=62), moment) if not r.refused][-1]
    following = next_release(schedule, moment).at
    assert (previous, following) == (datetime(2026, 12, 1, 9, 30, tzinfo=LONDON), datetime(2027, 1, 5, 9, 30, tzinfo=LONDON))
    assert choose_slot(previous, following, moment, [], publication="phof") == previous


def test_another_publications_go_live_for_the_same_moment_does_not_publish_the_slot():
    """A done go-live journaled for excess-mortality at phof's slot time leaves phof's slot unpublished."""
    other = [event("2026-12-02T09:30:00.500Z", "go-live", "done", releases={"live": "em1"},
                   slot="2026-12-02T09:30:00.000Z", publication="excess-mortality")]
    assert choose_slot(WEDNESDAY, NEXT_WEDNESDAY, THURSDAY_EVENING, other, publication="phof") == WEDNESDAY


def test_only_a_go_live_journaled_before_the_moment_publishes_the_slot():
    """A publication of the slot journaled after the moment asked about is not an earlier one."""
    later = [event("2026-12-04T10:00:00.000Z", "go-live", "done", slot="2026-12-02T09:30:00.000Z")]
    assert choose_slot(WEDNESDAY, NEXT_WEDNESDAY, THURSDAY_EVENING, later) == WEDNESDAY
    assert choose_slot(WEDNESDAY, NEXT_WEDNESDAY, datetime(2026, 12, 4, 11, tzinfo=timezone.utc), later) == NEXT_WEDNESDAY


SLOT_GAPS = st.integers(min_value=7 * 24 * 60, max_value=35 * 24 * 60)  # weekly to monthly, in minutes


@given(gap=SLOT_GAPS, fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True), tried=st.booleans(),
       published=st.booleans())
def test_an_off_calendar_go_live_is_never_called_further_off_than_the_missed_slot(gap, fraction, tried, published):
    """Between two slots, the chosen slot is one of them; once the first is published it is the next; while it is
    unpublished it is the first whenever that is tried, within a day, or no further than the next."""
    following = WEDNESDAY + timedelta(minutes=gap)
    moment = WEDNESDAY + timedelta(minutes=1 + (gap - 2) * fraction)  # after the attempts, before the next slot
    events = [event("2026-12-02T09:30:01.000Z", "go-live", "reverted", slot="2026-12-02T09:30:00.000Z")] if tried else []
    events += [event("2026-12-02T09:30:02.000Z", "go-live", "done", slot="2026-12-02T09:30:00.000Z")] if published else []
    chosen = choose_slot(WEDNESDAY, following, moment, events)
    assert chosen in (WEDNESDAY, following)
    if published:
        assert chosen == following
    elif tried or moment - WEDNESDAY <= timedelta(days=1) or moment - WEDNESDAY <= following - moment:
        assert chosen == WEDNESDAY
    else:
        assert chosen == following and following - moment < moment - WEDNESDAY


LATE_FIX_JOURNAL = [  # as /work/qa-b/late2 journaled it before the fix: the late go-live says the next slot
    event("2026-12-03T18:53:30.182Z", "stage", "done", releases={"staging": "2026-12-phof-fix1"}),
    event("2026-12-03T18:53:30.754Z", "rehearse", "done", releases={"live": "base", "staging": "2026-12-phof-fix1"}),
    event("2026-12-03T18:53:31.000Z", "override", "done", releases={"staging": "2026-12-phof-fix1"}, checks=["deadline"],
          reason="late", attempt="f1", slot="2026-12-09T09:30:00.000Z", publication="phof"),
    event("2026-12-03T18:53:31.432Z", "go-live", "done", releases={"live": "2026-12-phof-fix1", "backup": "base"},
          forced=True, switched_at="2026-12-03T18:53:31.406Z", attempt="f1", slot="2026-12-09T09:30:00.000Z",
          publication="phof", reason="late: servers failed yesterday at 09:30"),
]


def test_breach_report_with_the_missed_slot_finds_the_late_go_live_journaled_for_the_next():
    """`breach-report --release fix1 --scheduled` the missed Wednesday: published Thursday 18:53, 2003 minutes late,
    with its go-live and override listed, though the go-live journaled next Wednesday's slot."""
    facts = gather_publication_facts(WEDNESDAY.astimezone(LONDON), LATE_FIX_JOURNAL, release_id="2026-12-phof-fix1",
                                     publication="phof", until=NEXT_WEDNESDAY)
    assert facts.release_id == "2026-12-phof-fix1" and facts.minutes_late == 2003
    assert [(e["action"], e["outcome"]) for e in facts.attempts] == [("go-live", "done")]
    assert [e["action"] for e in facts.overrides] == ["override"]
    assert [e["action"] for e in facts.timeline] == ["stage", "rehearse", "override", "go-live"]
    text = render_breach_report(facts, metadata={}, publication="PHOF", today=date(2026, 12, 3))
    assert ("It was published at 18:53 GMT on 03 December 2026 as release 2026-12-phof-fix1, a delay of 2003 minutes."
            in text)
    assert "has not been published" not in text and "None journaled" not in text.split("Notices")[0]


def test_a_go_live_of_the_release_after_the_next_slot_is_not_adopted():
    """The asked release's go-lives count for the asked slot only until the slot after it."""
    facts = gather_publication_facts(WEDNESDAY, LATE_FIX_JOURNAL, release_id="2026-12-phof-fix1",
                                     until=datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc))
    assert facts.actual is None and facts.attempts == ()


def test_another_release_journaled_for_the_next_slot_stays_out_of_the_missed_slots_report():
    """Asked about the missed slot and a release never tried, the fix journaled for the next slot is not adopted."""
    facts = gather_publication_facts(WEDNESDAY, LATE_FIX_JOURNAL, release_id="2026-12-phof", until=NEXT_WEDNESDAY)
    assert facts.actual is None and facts.attempts == ()
