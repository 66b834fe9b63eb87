"""Which failing GET a reverted switch shows for each server: the front's (what the public saw through nginx) over
its links' (the live URL's), and none from a participant whose check passed or never ran."""

from releaser.fleet import failing_answers
from releaser.participants.front import ServerFront
from releaser.participants.links import ServerLinks
from releaser.web import Probe


def participant(kind, server: str, probe: Probe | None):
    """A participant of `kind` with only what failing_answers reads (no server behind it: pure logic)."""
    made = kind.__new__(kind)
    made.server, made.probe = server, probe
    return made


def answer(ok: bool, body: str) -> Probe:
    return Probe("http://web/healthz", ok, 200 if ok else 503, "GET http://web/healthz -> 503", body)


def test_the_fronts_answer_is_shown_over_the_links_answer_on_the_same_server():
    links = participant(ServerLinks, "web-1", answer(False, "links saw this"))
    front = participant(ServerFront, "web-1", answer(False, "the public saw this"))
    assert failing_answers([links, front])["web-1"].body_head == "the public saw this"


def test_a_server_whose_only_failure_is_its_fronts_keeps_the_fronts_body():
    passed = participant(ServerLinks, "web-2", answer(True, "ok"))
    front = participant(ServerFront, "web-2", answer(False, "upstream r1 still answers"))
    assert {name: p.body_head for name, p in failing_answers([passed, front]).items()} == {
        "web-2": "upstream r1 still answers"}


def test_passing_and_missing_checks_show_nothing():
    assert failing_answers([participant(ServerLinks, "web-1", answer(True, "ok")),
                            participant(ServerFront, "web-2", None)]) == {}
