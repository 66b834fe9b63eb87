"""Scheduled go-live on the local sandbox with a driven clock: never early, stopped by checks, Ctrl-C safe."""

import os
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import EXAMPLES, PROJECT, read_slots, sandbox_servers, write_environment
from releaser import ui
from releaser.bundle import read_bundle
from releaser.clock import FakeClock
from releaser.checks import CheckResult
from releaser.errors import Cancelled, ChecksFailed, FleetReverted
from releaser.fleet import make_hosts
from releaser.config import load_environment
from releaser.golive import breach_report_for, go_live_at, run_scheduled_go_live
from releaser.transport import LocalHost

NINE = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)  # 09:00 GMT on the first Tuesday of December
AT = NINE + timedelta(minutes=30)


class WatchingClock(FakeClock):
    """A driven clock that reads every server's live slot each time go-live waits, and can press Ctrl-C."""

    def __init__(self, start, environment, *, interrupt_at=None):
        super().__init__(start)
        self.environment = environment
        self.interrupt_at = interrupt_at
        self.seen: list[tuple[datetime, set]] = []

    def sleep_until(self, moment):
        self.seen.append((self.now(), {state.live for state in read_slots(self.environment).values()}))
        if self.interrupt_at is not None and self.now() >= self.interrupt_at:
            raise KeyboardInterrupt
        super().sleep_until(moment)


def staged_r2(fleet):
    """Bring the fleet to r1 live and r2 staged."""
    fleet.stage(read_bundle(EXAMPLES / "r1"))
    fleet.go_live()
    fleet.stage(read_bundle(EXAMPLES / "r2"))


def all_pass(which):
    """A check run where everything passes."""
    return [CheckResult("reachable", "web-1", "PASS", "answers")]


def leftovers(environment) -> list[str]:
    """Prepared links or locks left behind on any server."""
    found = []
    for server in environment.servers:
        state_dir = Path(str(environment.app_root(server))) / ".releaser"
        found += [f"{server.name}:{p.name}" for p in (*state_dir.glob("next-*"), *state_dir.glob("tick-*"))]
        found += [f"{server.name}:lock" for p in state_dir.glob("lock")]
    return found


def test_switch_happens_at_the_scheduled_second_and_not_before(local_env, open_fleet):
    """Until 09:30:00 every server still serves r1; the journal shows the switch at exactly 09:30:00."""
    clock = WatchingClock(NINE, local_env)
    with open_fleet(local_env) as fleet:
        staged_r2(fleet)
        fleet.clock = clock
        result = go_live_at(fleet, at=AT, clock=clock, run_checks=all_pass)
        event = [e for e in fleet.read_history() if e["action"] == "go-live"][-1]
    assert result.release == "r2"
    assert clock.seen and all(lives == {"r1"} for moment, lives in clock.seen if moment < AT)
    assert event["planned_at"] == event["switched_at"] == "2026-12-01T09:30:00.000Z"
    assert {s.live for s in read_slots(local_env).values()} == {"r2"}


def test_check_failing_at_lead_time_stops_go_live(local_env, open_fleet):
    """A FAIL at T-10 min stops the go-live there, names the check, and switches nothing."""
    clock = FakeClock(NINE)

    def failing_deadline(which):
        return [CheckResult("deadline", "all", "FAIL", "phof-indicators uploaded 2 h after the deadline")]

    with open_fleet(local_env) as fleet:
        staged_r2(fleet)
        fleet.clock = clock
        with pytest.raises(ChecksFailed, match=r"go-live stopped: deadline failed \(deadline: .*nothing was switched"):
            go_live_at(fleet, at=AT, clock=clock, run_checks=failing_deadline)
        stopped = fleet.read_history()[-1]
    assert clock.now() == AT - timedelta(minutes=10)
    assert (stopped["action"], stopped["outcome"]) == ("go-live", "stopped")
    assert {(s.live, s.staging) for s in read_slots(local_env).values()} == {("r1", "r2")}


def test_failed_verification_after_the_switch_rolls_every_server_back(local_env, open_fleet):
    """r3 fails its health check at 09:30, so every server is back on r2 and r3 stays staged."""
    clock = FakeClock(NINE)
    with open_fleet(local_env) as fleet:
        staged_r2(fleet)
        fleet.go_live()
        fleet.stage(read_bundle(EXAMPLES / "r3"))
        fleet.clock = clock
        with pytest.raises(FleetReverted, match="every server is back on r2"):
            go_live_at(fleet, at=AT, clock=clock, run_checks=all_pass)
    assert {(s.live, s.backup, s.staging) for s in read_slots(local_env).values()} == {("r2", "r1", "r3")}


@pytest.mark.parametrize("interrupt_at", [
    pytest.param(NINE + timedelta(minutes=5), id="waiting-for-checks"),
    pytest.param(NINE + timedelta(minutes=25), id="waiting-to-prepare"),
    pytest.param(AT - timedelta(seconds=30), id="prepared-waiting-for-the-second"),
])
def test_ctrl_c_before_the_switch_changes_nothing(local_env, open_fleet, interrupt_at):
    """Ctrl-C at any point before 09:30 cancels: all servers stay on r1, no prepared link or lock is left."""
    clock = WatchingClock(NINE, local_env, interrupt_at=interrupt_at)
    with open_fleet(local_env) as fleet:
        staged_r2(fleet)
        fleet.clock = clock
        with pytest.raises(Cancelled, match="cancelled before the switch"):
            go_live_at(fleet, at=AT, clock=clock, run_checks=all_pass)
    assert {(s.live, s.staging) for s in read_slots(local_env).values()} == {("r1", "r2")}
    assert leftovers(local_env) == []


class CtrlCDuringCommit(LocalHost):
    """A sandbox server whose commit is accompanied by a real SIGINT to this process."""

    def run(self, argv, **kwargs):
        if len(argv) > 3 and argv[3] == "releaser-commit":
            os.kill(os.getpid(), signal.SIGINT)
        return super().run(argv, **kwargs)


def test_ctrl_c_during_the_switch_reverts_every_server(local_env, open_fleet, capsys):
    """A real SIGINT while servers commit is held until the fleet has reverted: all on r1, never a mix."""
    hosts = make_hosts(local_env)
    hosts["web-2"] = CtrlCDuringCommit("web-2")
    with open_fleet(local_env) as fleet:
        staged_r2(fleet)
    with open_fleet(local_env, hosts=hosts) as fleet:
        with pytest.raises(FleetReverted, match=r"go-live interrupted \(Ctrl-C\); every server is back on r1"):
            fleet.go_live()
    assert {(s.live, s.staging) for s in read_slots(local_env).values()} == {("r1", "r2")}
    assert leftovers(local_env) == []
    assert "Ctrl-C noted; every server finishes this switch or is put back first" in capsys.readouterr().err


def ctrl_c_as_it_journals(fleet, action: str) -> None:
    """A real SIGINT to this process as the fleet journals `action` "done": after the switch, before the unlock."""
    write = fleet.recorder.write

    def pressing(what, outcome, **fields):
        if (what, outcome) == (action, "done"):
            os.kill(os.getpid(), signal.SIGINT)
        return write(what, outcome, **fields)
    fleet.recorder.write = pressing


@pytest.mark.parametrize("action", ["go-live", "rollback"])
def test_ctrl_c_after_the_switch_lets_the_command_end_as_the_switch_did(local_env, open_fleet, capsys, action):
    """Before, the press raised between the switch and its journal line: the release was live and journaled
    "done", the lock freed, but the command said "interrupted (Ctrl-C) outside any switch" and exited 130."""
    with open_fleet(local_env) as fleet:
        staged_r2(fleet)
        if action == "rollback":
            fleet.go_live()
    with open_fleet(local_env) as fleet:
        ctrl_c_as_it_journals(fleet, action)
        try:
            result = fleet.go_live() if action == "go-live" else fleet.rollback()
        except KeyboardInterrupt:
            pytest.fail("the Ctrl-C after the switch came out of the command")
    expected = "r2" if action == "go-live" else "r1"
    assert result.release == expected
    assert {s.live for s in read_slots(local_env).values()} == {expected}
    assert leftovers(local_env) == []
    assert "the lock freed, then the command ends as the switch did" in capsys.readouterr().err


class FailsFirstCommit(LocalHost):
    """A sandbox server whose commits fail while `armed`, as a server with a full disk would: the commit run at T
    and the commit started ahead (a scheduled go-live's, told go at T) alike."""

    armed = False
    FULL = "echo 'mv: cannot move: No space left on device' >&2; exit 1"

    def run(self, argv, **kwargs):
        if len(argv) > 3 and argv[3] == "releaser-commit" and self.armed:
            return super().run(["sh", "-c", self.FULL])
        return super().run(argv, **kwargs)

    def start(self, argv, **kwargs):
        if len(argv) > 3 and argv[3] == "releaser-commit" and self.armed:
            return super().start(["sh", "-c", f"echo armed; IFS= read -r go && {self.FULL}"])
        return super().start(argv, **kwargs)


def test_late_go_live_gives_a_breach_report_with_the_delay_and_timeline(local_env, open_fleet):
    """09:30 fails on web-2 and reverts; the retry at 11:45 works; the report says 135 minutes late and why."""
    clock = FakeClock(NINE)
    hosts = make_hosts(local_env)
    hosts["web-2"] = FailsFirstCommit("web-2")
    with open_fleet(local_env, hosts=hosts) as fleet:
        staged_r2(fleet)
        fleet.clock = clock
        hosts["web-2"].armed = True
        with pytest.raises(FleetReverted, match="web-2 .*No space left on device.*every server is back on r1"):
            go_live_at(fleet, at=AT, clock=clock, run_checks=all_pass)
        hosts["web-2"].armed = False  # the disk was freed
        clock.sleep_until(datetime(2026, 12, 1, 11, 45, tzinfo=timezone.utc))
        fleet.go_live(reason="retry after freeing disk on web-2", journal_extra={"switched_at": "2026-12-01T11:45:00.000Z"})
        report = breach_report_for(fleet, "r2")
    assert {s.live for s in read_slots(local_env).values()} == {"r2"}
    assert "was due on Tuesday 01 December 2026 at 09:30 GMT" in report
    assert "published at 11:45 GMT on 01 December 2026 as release r2, a delay of 135 minutes" in report
    assert "No space left on device" in report
    timeline = [line for line in report.splitlines() if line.startswith("| 01 Dec")]
    assert [line.split(" | ")[1:3] for line in timeline][-2:] == [["go-live", "reverted"], ["go-live", "done"]]


def test_rehearsal_exercises_the_switch_without_touching_what_the_public_sees(local_env, open_fleet):
    """A rehearsal of r2 passes and times every phase; a rehearsal of broken r3 fails; live stays r1 throughout."""
    with open_fleet(local_env) as fleet:
        staged_r2(fleet)
        before = read_slots(local_env)
        result = fleet.rehearse()
        assert read_slots(local_env) == before
        fleet.stage(read_bundle(EXAMPLES / "r3"))
        with pytest.raises(FleetReverted, match="rehearsal of r3 failed on .*healthz -> 404.*the public site was not touched"):
            fleet.rehearse()
        rehearsals = [(e["outcome"], e["releases"]["staging"]) for e in fleet.read_history() if e["action"] == "rehearse"]
    assert set(result.seconds) >= {"prepare", "commit", "verify", "revert"}
    assert rehearsals == [("done", "r2"), ("failed", "r3")]
    assert {(s.live, s.staging) for s in read_slots(local_env).values()} == {("r1", "r3")}
    assert leftovers(local_env) == [] and not any(
        (Path(str(local_env.app_root(s))) / ".releaser" / "rehearsal").exists() for s in local_env.servers)


@pytest.mark.parametrize("max_age_days, warned", [
    pytest.param(0, False, id="not-required"),
    pytest.param(7, True, id="required"),
])
def test_a_scheduled_go_live_warns_of_no_rehearsal_only_where_one_is_required(tmp_path, open_fleet, capsys,
                                                                              max_age_days, warned):
    """QA: with [go_live] rehearsal_max_age_days = 0 (the rehearsal check PASSes without one) the announcement
    still said "WARNING: no rehearsal on record"."""
    path = write_environment(tmp_path / "env.toml", servers=sandbox_servers(tmp_path / "servers", 2),
                             extra=f"[go_live]\nrehearsal_max_age_days = {max_age_days}\n")
    environment = load_environment(str(path), PROJECT)
    clock = FakeClock(NINE)
    with open_fleet(environment) as fleet:
        staged_r2(fleet)
        fleet.clock = clock
        capsys.readouterr()
        result = run_scheduled_go_live(fleet, clock=clock, at=AT, run_checks=all_pass, announce=ui.announce_go_live)
    err = capsys.readouterr().err
    assert result.release == "r2" and "go-live at 09:30:00" in err
    assert ("no rehearsal on record" in err) is warned, err
    assert {s.live for s in read_slots(environment).values()} == {"r2"}
