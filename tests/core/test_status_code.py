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
