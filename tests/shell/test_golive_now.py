"""`go-live --now` judges its checks against the moment it goes live, not the next scheduled release."""

from __future__ import annotations

import pytest

from conftest import EXAMPLES, PROJECT
from checkenv import write_environment
from releaser.bundle import read_bundle
from releaser.config import load_environment
from releaser.errors import Cancelled
from releaser.golive import go_live_command


def r1_live_r2_staged(fleet) -> None:
    """The morning of a go-live: r1 live on every server, r2 staged."""
    fleet.stage(read_bundle(EXAMPLES / "r1"))
    fleet.go_live()
    fleet.stage(read_bundle(EXAMPLES / "r2"))


def test_go_live_now_checks_judge_the_moment_it_goes_live(tmp_path, open_fleet, fake_clock):
    """Monday 09:00 with phof next due Tuesday 09:30: the lock-gap and people checks speak of Monday 09:00."""
    environment = load_environment(str(write_environment(tmp_path)), PROJECT)
    shown: dict[str, list] = {}
    with open_fleet(environment) as fleet:
        r1_live_r2_staged(fleet)
        result = go_live_command(fleet, clock=fake_clock, now=True,
                                 show_checks=lambda which, results: shown.setdefault(which, results))
    assert result.release == "r2"
    by = {r.check: r for r in shown["all"] if r.server == "all"}
    assert by["lock"].detail == "no other publication due within 7 days of Mon 30 Nov 09:00 GMT", by["lock"].detail
    assert "Mon 30 Nov 09:00 GMT" in by["people"].detail and "Tue 1 Dec" not in by["people"].detail


def test_go_live_now_journals_the_second_of_the_switch_not_of_the_command(tmp_path, open_fleet, fake_clock):
    """The release manager reads the plan for 40 s before saying yes: `switched_at` (what the breach report calls
    the moment of publication) is the commit's second, after the question, not when the command started."""
    def slow_yes(action, plans):
        fake_clock.advance(40)
        return True

    environment = load_environment(str(write_environment(tmp_path)), PROJECT)
    with open_fleet(environment) as fleet:
        r1_live_r2_staged(fleet)
        go_live_command(fleet, clock=fake_clock, now=True, approve=slow_yes)
        event = [e for e in fleet.read_history() if e["action"] == "go-live"][-1]
    assert event["outcome"] == "done"
    assert event["switched_at"] == "2026-11-30T09:00:40.000Z"


def test_ctrl_c_during_the_checks_of_go_live_now_says_nothing_was_switched(tmp_path, open_fleet, fake_clock):
    """QA: Ctrl-C while go-live --now ran its checks said only 'outside any switch; run status'. Nothing is locked
    then and the checks only read: it says the go-live was cancelled with nothing switched, and journals that."""
    def interrupted(which, results):
        raise KeyboardInterrupt

    environment = load_environment(str(write_environment(tmp_path)), PROJECT)
    with open_fleet(environment) as fleet:
        r1_live_r2_staged(fleet)
        with pytest.raises(Cancelled, match=r"go-live cancelled during its checks \(Ctrl-C\); nothing was switched") as raised:
            go_live_command(fleet, clock=fake_clock, now=True, show_checks=interrupted)
        event = fleet.read_history()[-1]
        states = {name: (state.live, state.staging) for name, state in fleet.read_states("test").items()}
    assert raised.value.exit_code == 130
    assert (event["action"], event["outcome"]) == ("go-live", "cancelled")
    assert set(states.values()) == {("r1", "r2")}
