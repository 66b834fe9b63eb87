"""Pure judges of the checks that read the calendar and the rota: deadline, window and people."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from checkenv import NOW, environment
from releaser.bundle import Manifest
from releaser.checks import Limits, ReleaseView, deadline, people, window
from releaser.checks.deadline import DeadlineFacts
from releaser.checks.people import PeopleFacts
from releaser.checks.window import WindowFacts, upcoming_releases
from releaser.errors import ConfigError, ReleaserError

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")
FILE = "public/data/phof-indicators.csv"
SHA = "c" * 64
DUE = datetime(2026, 12, 1, 9, 30, tzinfo=LONDON)


def manifest(**dataset) -> Manifest:
    entry = {"name": "phof-indicators", "publication": "phof", "file": FILE,
             "uploaded_at": "2026-11-24T10:00:00Z", "uploaded_by": "ana@stats",
             "qa_signed_off_by": "ben@stats", "qa_signed_off_at": "2026-11-25T12:00:00Z", **dataset}
    return Manifest(release_id="r2", publications=["phof"], datasets=[entry], files={FILE: SHA})


def deadline_results(the_manifest, *, now=NOW, differing=(), at=None):
    view = ReleaseView({}, "r2", the_manifest, {}, f"{SHA}  {FILE}\n", due=DUE)
    return deadline.judge(DeadlineFacts(view, differing), Limits(environment(), at=at), now)


@pytest.mark.parametrize(
    "changes, now, expected",
    [
        pytest.param({}, NOW, "PASS", id="on-time"),
        pytest.param({"qa_signed_off_at": "2026-11-25T17:00:00Z"}, NOW, "PASS", id="signed-at-the-deadline"),
        pytest.param({"qa_signed_off_by": "ana@stats"}, NOW, "WARN", id="signed-by-its-uploader"),
        pytest.param({"qa_signed_off_at": None, "qa_signed_off_by": None}, datetime(2026, 11, 24, 12, tzinfo=UTC), "WARN",
                     id="awaiting-sign-off-before-deadline"),
        pytest.param({"qa_signed_off_at": None, "qa_signed_off_by": None}, NOW, "FAIL", id="never-signed-off"),
        pytest.param({"uploaded_at": "2026-11-27T09:00:00Z"}, NOW, "FAIL", id="uploaded-late"),
        pytest.param({"qa_signed_off_at": "2026-11-25T17:45:00Z"}, NOW, "FAIL", id="signed-off-late"),
        pytest.param({"uploaded_at": None, "uploaded_by": None}, NOW, "FAIL", id="never-uploaded"),
        pytest.param({"file": "public/data/missing.csv"}, NOW, "FAIL", id="file-not-in-release"),
        pytest.param({"publication": "unknown"}, NOW, "FAIL", id="undeclared-publication"),
    ],
)
def test_deadline_judges_each_data_set(changes, now, expected):
    """A data set passes when uploaded and signed off (by someone else) by the Wednesday-before 17:00 deadline."""
    [result] = deadline_results(manifest(**changes), now=now)
    assert result.status == expected


def test_late_data_set_is_named_with_how_late():
    """A late item says which data set, how late, who and when, and the deadline."""
    [result] = deadline_results(manifest(uploaded_at="2026-11-25T19:15:00Z", qa_signed_off_at="2026-11-26T09:00:00Z"))
    assert result.detail == ("phof-indicators: uploaded 2 h 15 min late by ana@stats at Wed 25 Nov 19:15 GMT; "
                             "deadline Wed 25 Nov 17:00 GMT")


def test_deadline_follows_the_release_named_by_at():
    """With --at on the January release the deadline is Wednesday 30 December, so November data is on time."""
    [result] = deadline_results(manifest(), at=datetime(2027, 1, 5, 9, 30, tzinfo=LONDON))
    assert result.status == "PASS" and result.detail.endswith("deadline Wed 30 Dec 17:00 GMT")


def test_deadline_fails_when_servers_hold_different_records():
    """Records that differ between servers are a FAIL of their own, naming the servers."""
    results = deadline_results(manifest(), differing=("web-2",))
    assert results[0].status == "FAIL" and "web-2" in results[0].detail


def test_deadline_without_data_sets_warns():
    """A release that declares no data sets has nothing to check: WARN."""
    empty = Manifest(release_id="r2", publications=["phof"], datasets=[], files={})
    assert [r.status for r in deadline_results(empty)] == ["WARN"]


@pytest.mark.parametrize(
    "publications, at, expected",
    [
        pytest.param(("phof",), None, ["PASS"], id="next-release"),
        pytest.param(("phof",), datetime(2026, 12, 1, 9, 30, tzinfo=LONDON), ["PASS"], id="at-release-time"),
        pytest.param(("phof",), datetime(2026, 12, 2, 9, 30, tzinfo=LONDON), ["FAIL"], id="not-a-release-day"),
        pytest.param(("phof",), datetime(2026, 12, 1, 9, 0, tzinfo=LONDON), ["FAIL"], id="early"),
        pytest.param(("unknown",), None, ["FAIL"], id="undeclared-publication"),
        pytest.param((), None, ["WARN"], id="no-publication"),
        pytest.param(("phof", "excess-mortality"), None, ["PASS", "PASS", "FAIL"], id="two-times"),
    ],
)
def test_window_judges_the_release_moment(publications, at, expected):
    """A release must be due at a valid release day and time of every publication it carries."""
    results = window.judge(WindowFacts("r2", publications), Limits(environment(), at=at), NOW)
    assert [r.status for r in results] == expected


def test_window_refusal_says_which_day_is_right():
    """An off-calendar day names the next release day."""
    [result] = window.judge(WindowFacts("r2", ("phof",)), Limits(environment(), at=datetime(2026, 12, 2, 9, 30, tzinfo=LONDON)), NOW)
    assert result.detail == "Wed 2 Dec 2026 is not a release day of phof (next: Tue 5 Jan 2027 09:30 GMT)"


def test_window_across_the_spring_clock_change_keeps_wall_time():
    """The first Tuesday of April 2027 is at 09:30 BST, and that moment passes."""
    [result] = window.judge(WindowFacts("r2", ("phof",)), Limits(environment(), at=datetime(2027, 4, 6, 8, 30, tzinfo=UTC)), NOW)
    assert result.status == "PASS" and "09:30 BST" in result.detail


def rota(*people_on_call, **changes):
    data = {"release_manager": "ana", "escalation": ["on call", "lead"], "on_call": list(people_on_call), **changes}
    return Limits(environment(people=data))


BEN = {"name": "ben", "contact": "1", "can_rollback": True}
CLEO = {"name": "cleo", "contact": "2", "can_rollback": True}


@pytest.mark.parametrize(
    "the_limits, expected",
    [
        pytest.param(rota(BEN, CLEO), ["PASS"], id="two-on-duty"),
        pytest.param(rota(BEN, {**CLEO, "contact": ""}), ["PASS", "WARN"], id="no-contact"),
        pytest.param(rota(BEN, {**CLEO, "leave": [{"start": "2026-11-30", "end": "2026-12-04"}]}), ["FAIL"], id="one-on-leave"),
        pytest.param(rota(BEN, {**CLEO, "days": ["Mon", "Wed"]}), ["FAIL"], id="one-off-rota-that-day"),
        pytest.param(rota(BEN, {**CLEO, "can_rollback": False}), ["FAIL"], id="one-cannot-roll-back"),
        pytest.param(rota(BEN, CLEO, release_manager=None), ["FAIL"], id="no-release-manager"),
        pytest.param(rota(BEN, CLEO, escalation=[]), ["FAIL"], id="no-escalation"),
        pytest.param(rota(BEN, CLEO, {"name": "ana", "leave": [{"start": "2026-12-01", "end": "2026-12-01"}]}),
                     ["PASS", "WARN"], id="release-manager-on-leave"),
    ],
)
def test_people_judges_the_rota_at_release_time(the_limits, expected):
    """A release manager, two people able to roll back on duty that day (not on leave), and an escalation route."""
    results = people.judge(PeopleFacts(DUE), the_limits, NOW)
    assert [r.status for r in results] == expected


def test_people_names_who_is_away():
    """The FAIL names who is on duty and who is not, as in 2014 when both seniors were on leave."""
    leave = [{"start": "2026-11-30", "end": "2026-12-04"}]
    [result] = people.judge(PeopleFacts(DUE), rota({**BEN, "leave": leave}, {**CLEO, "leave": leave}), NOW)
    assert result.detail.startswith("0 of the 2 people needed who can roll back are on duty Tue 1 Dec 09:30 GMT (nobody); "
                                    "not on duty or on leave: ben, cleo")


def test_upcoming_releases_lists_every_publication_in_time_order():
    """Three months from the end of November hold three phof and three excess-mortality releases, interleaved."""
    releases = upcoming_releases(environment(), NOW, months=3)
    assert [r.publication for r in releases] == ["phof", "excess-mortality"] * 3
    assert releases[0].at == DUE


def test_upcoming_releases_of_an_unknown_publication_is_a_config_error():
    """--publication with a typo names the declared ones."""
    with pytest.raises(ConfigError, match="declares: phof, excess-mortality"):
        upcoming_releases(environment(), NOW, publication="phfo")
    with pytest.raises(ReleaserError, match="at least 1"):
        upcoming_releases(environment(), NOW, months=0)
