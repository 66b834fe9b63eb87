"""The dashboard's board: status reports, notices and the journal in, the data the page shows out."""

from datetime import datetime, timezone

import pytest

from checkenv import environment
from releaser.dashboard import board_changed, board_state
from releaser.fleet import ServerReport
from releaser.locks import LockInfo
from releaser.slots import SlotState

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)  # Tuesday: phof is due at 09:30 Europe/London (GMT)
LIVE_R1 = SlotState("r1", None, "r2", frozenset({"r1", "r2"}))


def event(at: str, action: str, outcome: str = "done", **fields) -> dict:
    return {"id": f"{action}-{at}", "at": at, "action": action, "outcome": outcome, "actor": "ana@stats", **fields}


def board(reports=(), notices=None, events=(), now=NOW) -> dict:
    return board_state(environment(), list(reports), notices=notices or {}, events=list(events), now=now)


def test_next_release_is_the_soonest_publication_with_its_zone():
    """At 09:00 on the first Tuesday, phof's 09:30 release is next, given in Europe/London."""
    assert board()["next_release"] | {"upload_deadline": None} == {
        "publication": "phof", "title": "phof", "at": "2026-12-01T09:30:00+00:00",
        "at_text": "Tue 01 Dec 2026 09:30:00 Europe/London", "upload_deadline": None}


def test_timeline_keeps_only_todays_events_in_the_zone():
    """Yesterday's events stay out; today's are kept in order, with their release and local time."""
    events = [event("2026-11-30T23:59:00.000Z", "deploy", releases={"staging": "r2"}),
              event("2026-12-01T08:00:00.000Z", "deploy", releases={"staging": "r3"}, seen_on=["web-1"]),
              event("2026-12-01T08:30:00.000Z", "go-live", "failed", releases={"live": "r3"}, detail="502 on web-2")]
    assert board(events=events)["timeline"] == [
        {"time": "08:00:00", "action": "deploy", "outcome": "done", "actor": "ana@stats", "release": "r3",
         "detail": "", "servers": ["web-1"]},
        {"time": "08:30:00", "action": "go-live", "outcome": "failed", "actor": "ana@stats", "release": "r3",
         "detail": "502 on web-2", "servers": []},
    ]


def test_checks_come_from_the_newest_check_event_whatever_its_day():
    """The check verdicts are the last check run, with when it ran and what did not pass."""
    events = [event("2026-11-27T10:00:00.000Z", "check", "failed", detail="old"),
              event("2026-11-30T16:00:00.000Z", "check", "failed", detail="1 FAIL", releases={"staging": "r2"},
                    checks=[{"check": "deadline", "server": "(all)", "status": "FAIL", "detail": "late"}])]
    checks = board(events=events)["checks"]
    assert checks["at"] == "Mon 30 Nov 16:00:00" and checks["outcome"] == "failed" and checks["release"] == "r2"
    assert checks["not_passing"][0]["check"] == "deadline"


def test_lock_and_notice_and_a_silent_server_are_on_the_board():
    """A locked server names its holder; a notice is kept per server; a server that did not answer says why."""
    lock = LockInfo("ben@laptop", "hotfix r41", NOW, None, "t", kind="manual")
    reports = [ServerReport("web-1", LIVE_R1, locked=True, lock=lock), ServerReport("web-2", None, error="no answer")]
    state = board(reports, notices={"web-1": "delayed"})
    assert state["lock"] == [{"server": "web-1", "owner": "ben@laptop", "reason": "hotfix r41",
                              "since": "Tue 01 Dec 09:00", "expires": None}]
    assert state["notices"] == [{"server": "web-1", "text": "delayed"}]
    assert [(s["server"], s["answered"], s["live"], s["error"]) for s in state["servers"]] == [
        ("web-1", True, "r1", None), ("web-2", False, None, "no answer")]
    assert state["mixed"] is False


@pytest.mark.parametrize("change, changed", [
    pytest.param({"now": "2026-12-01T09:00:02+00:00", "read_seconds": 0.5}, False, id="only-the-read-time"),
    pytest.param({"mixed": True}, True, id="something-a-viewer-sees"),
])
def test_board_changed_ignores_the_read_time(change, changed):
    """A new read with nothing moved sends nothing to the pages."""
    before = board([ServerReport("web-1", LIVE_R1)])
    assert board_changed(before, before | change) is changed


def test_instances_and_data_slots_show_only_when_declared():
    """Without [application] or [database] the board has no instances and no data; with them, one entry per slot."""
    from releaser.dataslots import DataSlots
    from releaser.instances import Instance, ServerInstances

    plain = board([ServerReport("web-1", LIVE_R1)])
    assert plain["servers"][0]["instances"] is None and plain["data"] is None
    view = ServerInstances({"live": "r1", "staging": "r2"}, (Instance(8302, "r2", 11, 200, "r2", "staging"),
                                                             Instance(8301, "r1", 10, 200, "r1", "live"),
                                                             Instance(8303, "r0", None, None, None, None)))
    state = board_state(environment(), [ServerReport("web-1", LIVE_R1), ServerReport("web-2", LIVE_R1)], notices={},
                        events=[], now=NOW, instances={"web-1": view, "web-2": "not read: timed out"},
                        data=DataSlots("stats", live="r1", staging="r2", pending=("releaser_stats_1",)))
    assert state["servers"][0]["instances"] == [
        {"slot": "live", "release": "r1", "port": 8301, "running": True, "healthy": True},
        {"slot": "staging", "release": "r2", "port": 8302, "running": True, "healthy": True},
        {"slot": "retired", "release": "r0", "port": 8303, "running": False, "healthy": False}]
    assert state["servers"][1]["instances"] == "not read: timed out"
    assert state["data"] == {"schema": "stats", "live": "r1", "backup": None, "staging": "r2",
                             "pending": ["releaser_stats_1"], "error": None}


def test_a_check_run_on_some_servers_says_which():
    """A check run with --hosts web-1 names web-1; one over every server names none."""
    some = event("2026-12-01T08:00:00.000Z", "check", servers=["web-1"])
    every = event("2026-12-01T08:05:00.000Z", "check", servers=["web-1", "web-2"])
    assert board(events=[some])["checks"]["only"] == ["web-1"]
    assert board(events=[some, every])["checks"]["only"] is None
