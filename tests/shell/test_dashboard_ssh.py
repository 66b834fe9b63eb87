"""The dashboard's reading thread over real sshd servers: a server that stops answering, and comes back."""

import json
import time
import urllib.request

from conftest import ACTOR
from releaser.clock import SystemClock
from releaser.dashboard import serving_dashboard
from releaser.fleet import connected

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answered(url: str) -> dict[str, bool]:
    """{server: did it answer} on the board the dashboard serves now."""
    with _NO_PROXY.open(url + "board.json", timeout=5) as response:
        return {s["server"]: s["answered"] for s in json.load(response)["servers"]}


def wait_until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up after {seconds} s waiting for {what}"
        time.sleep(0.05)


def test_a_server_that_stops_answering_shows_down_then_back_without_a_restart(sshd_farm, ssh_env, tmp_path):
    """web-2's sshd stopped: the page says it did not answer; restarted: the page shows it again, same dashboard."""
    with connected(ssh_env, actor=ACTOR, clock=SystemClock(), journal_path=tmp_path / "journal.jsonl") as fleet:
        with serving_dashboard(fleet, port=0, every=0.2) as url:
            assert answered(url) == {"web-1": True, "web-2": True, "web-3": True}
            sshd_farm.stop("web-2")
            wait_until(lambda: answered(url)["web-2"] is False, 30, "web-2 to show as not answering")
            assert answered(url)["web-1"] and answered(url)["web-3"]
            sshd_farm.restart("web-2")
            wait_until(lambda: answered(url) == {"web-1": True, "web-2": True, "web-3": True}, 30, "web-2 to come back")

