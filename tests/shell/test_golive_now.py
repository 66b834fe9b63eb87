"""`go-live --now` judges its checks against the moment it goes live, not the next scheduled release."""

from __future__ import annotations

from conftest import EXAMPLES, PROJECT
from checkenv import write_environment
from releaser.bundle import read_bundle
from releaser.config import load_environment
from releaser.golive import go_live_command


def test_go_live_now_checks_judge_the_moment_it_goes_live(tmp_path, open_fleet, fake_clock):
    """Monday 09:00 with phof next due Tuesday 09:30: the lock-gap and people checks speak of Monday 09:00."""
    environment = load_environment(str(write_environment(tmp_path)), PROJECT)
    shown: dict[str, list] = {}
    with open_fleet(environment) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.go_live()
        fleet.stage(read_bundle(EXAMPLES / "r2"))
        result = go_live_command(fleet, clock=fake_clock, now=True,
                                 show_checks=lambda which, results: shown.setdefault(which, results))
    assert result.release == "r2"
    by = {r.check: r for r in shown["all"] if r.server == "all"}
    assert by["lock"].detail == "no other publication due within 7 days of Mon 30 Nov 09:00 GMT", by["lock"].detail
    assert "Mon 30 Nov 09:00 GMT" in by["people"].detail and "Tue 1 Dec" not in by["people"].detail
