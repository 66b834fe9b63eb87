"""serving's judge and join (pure): the release the public sees against the live link, per server."""

from datetime import datetime, timezone

from releaser.checks import ReleaseView, ServerView, Unreadable, serving
from releaser.facts import ServerFacts
from releaser.identity import Marker, Served

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
URL = "http://web-1/.releaser/release.json"


def judged(served: Served, live: str | None = "r1"):
    [result] = serving.judge({"web-1": serving.ServingFacts(served, live)}, None, NOW)
    return result.status, result.detail


def test_the_live_release_served_passes():
    assert judged(Served(URL, Marker("r1", "abc"), 200)) == ("PASS", "the public sees r1, where live points")


def test_another_release_served_is_a_stale_copy_that_fails():
    status, detail = judged(Served(URL, Marker("r0", "abc"), 200))
    assert status == "FAIL"
    assert detail.startswith(f"GET {URL} -> release r0, but live points at r1: the web server serves a stale copy")
    assert "reload the web server and purge any cache" in detail


def test_no_marker_is_a_warning_and_an_error_or_silence_a_failure():
    assert judged(Served(URL, None, 404, "-> 404"))[0] == "WARN"
    assert judged(Served(URL, None, 500, "-> 500")) [0] == "FAIL"
    status, detail = judged(Served(URL, None, None, "-> no answer (timed out)"))
    assert status == "FAIL" and "no answer (timed out): cannot tell which release the public sees" in detail


def test_no_live_link_yet_has_nothing_to_compare():
    assert judged(Served(URL, None, None, "-> no answer"), live=None)[0] == "PASS"


def test_join_takes_the_live_link_from_the_facts_and_keeps_what_could_not_be_read():
    facts = ServerFacts(slots={"live": "releases/r2"})
    view = ReleaseView({"web-1": ServerView("web-1", facts=facts), "web-2": ServerView("web-2", reason="timed out")})
    served = Served(URL, Marker("r2", ""), 200)
    joined = serving.join({"web-1": served, "web-2": served, "web-3": Unreadable("did not answer")}, view)
    assert joined["web-1"] == serving.ServingFacts(served, "r2")
    assert joined["web-2"] == Unreadable("timed out") and joined["web-3"] == Unreadable("did not answer")
    assert [r.status for r in serving.judge(joined, None, NOW)] == ["PASS", "FAIL", "FAIL"]
