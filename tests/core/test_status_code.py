"""What `invoke status` exits with: the same codes a switch uses for the same states."""

from releaser.fleet import ServerReport, status_exit_code
from releaser.slots import SlotState


def on(live: str | None, name: str = "web-1") -> ServerReport:
    return ServerReport(name, SlotState(live, None, None, frozenset({live} if live else ())))


def down(name: str) -> ServerReport:
    return ServerReport(name, None, error="ssh to web-2 failed: the connection was closed")


def test_one_release_everywhere_is_0():
    assert status_exit_code([on("r1", "web-1"), on("r1", "web-2")]) == 0


def test_a_server_that_did_not_answer_is_5():
    assert status_exit_code([on("r1", "web-1"), down("web-2")]) == 5


def test_servers_serving_different_releases_is_7_even_with_one_down():
    assert status_exit_code([on("r1", "web-1"), on("r2", "web-2"), down("web-3")]) == 7


def test_an_empty_server_beside_a_live_one_is_mixed():
    assert status_exit_code([on("r1", "web-1"), on(None, "web-2")]) == 7


def serving(report: ServerReport, release: str) -> ServerReport:
    """The report with its public URL answering as release `release` (the marker through the live URL)."""
    from dataclasses import replace

    from releaser.identity import Marker, Served
    from releaser.web import Probe

    served = Served("http://web/.releaser/release.json", Marker(release, "0" * 64), 200)
    return replace(report, health=Probe("http://web/healthz", True, 200, "200", served=served))


def test_a_stale_copy_the_public_gets_is_mixed():
    """web-2's link points at r2 but its web server still serves r1: the public gets both releases."""
    assert status_exit_code([serving(on("r2", "web-1"), "r2"), serving(on("r2", "web-2"), "r1")]) == 7


def test_a_silent_server_whose_web_server_serves_another_release_is_mixed_not_only_down():
    assert status_exit_code([serving(on("r2", "web-1"), "r2"), serving(down("web-2"), "r1")]) == 7
    assert status_exit_code([serving(on("r2", "web-1"), "r2"), serving(down("web-2"), "r2")]) == 5
