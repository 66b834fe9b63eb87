"""Issue 12, item 12: every warning under status names its runbook, NO BACKUP says a go-live is still fine, and
`check --only people` shows the contacts the people file holds. Pure: reports and a rota in, words out."""

from datetime import datetime, timezone

from checkenv import environment
from releaser.checks import Limits, people
from releaser.checks.people import PeopleFacts
from releaser.fleet import ServerReport
from releaser.slots import SlotState
from releaser.ui import status_warnings

DUE = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)


def state(live, backup):
    return SlotState(live, backup, None, frozenset(r for r in (live, backup) if r))


def test_every_status_warning_names_its_runbook():
    """MIXED, NO BACKUP, host keys off, low disk and a server down: each line ends with a runbook to follow."""
    reports = [ServerReport("web-1", state("r2", None), free_bytes=1), ServerReport("web-2", state("r1", "r0")),
               ServerReport("web-3", None, error="timed out")]
    lines = status_warnings("prod", reports, host_keys_checked=False, min_free_bytes=1024)
    assert len(lines) == 5
    assert all("see: invoke runbook " in line for line in lines), lines


def test_no_backup_says_a_go_live_is_still_fine():
    """NO BACKUP only means no rollback target yet: the warning says the next go-live is fine and where to read more."""
    [line] = status_warnings("prod", [ServerReport("web-1", state("r1", None)), ServerReport("web-2", state("r1", None))])
    assert line.startswith("there is NO BACKUP on web-1, web-2: a rollback is impossible until the next go-live")
    assert "still fine to run" in line and line.endswith("see: invoke runbook rollback (section NO BACKUP)")


def test_servers_apart_on_staging_or_backup_are_said_before_go_live_or_rollback_refuses():
    """A revert that could not put web-2's staging back: status says what go-live would refuse, and where each is."""
    def slots(live, backup, staging):
        return SlotState(live, backup, staging, frozenset(r for r in (live, backup, staging) if r))

    reports = [ServerReport("web-1", slots("r2", "r1", "r3")), ServerReport("web-2", slots("r2", "r0", None)),
               ServerReport("web-3", slots("r2", "r1", "r3"))]
    lines = status_warnings("prod", reports)
    assert lines == [
        "servers disagree on staging: r3 on web-1, web-3; none on web-2; go-live will refuse until they agree: stage "
        "the release again (invoke deploy --stage); see: invoke runbook go-live",
        "servers disagree on backup: r1 on web-1, web-3; r0 on web-2; a rollback will refuse until they agree; see: "
        "invoke runbook rollback (section MIXED)"]
    mixed = [ServerReport("web-1", slots("r2", "r1", None)), ServerReport("web-2", slots("r1", "r0", None))]
    assert not any("disagree on backup" in line for line in status_warnings("prod", mixed))  # MIXED says it


def test_people_check_shows_the_contacts_the_file_holds():
    """The PASS names how to reach the release manager, each person on duty and each person in the escalation route."""
    rota = {"release_manager": "ana", "escalation": ["on-call engineer", "development lead: cleo", "ICT service desk"],
            "on_call": [{"name": "ben", "contact": "07700 900001", "can_rollback": True},
                        {"name": "cleo", "contact": "07700 900002", "can_rollback": True},
                        {"name": "ana", "contact": "07700 900003", "can_rollback": False}]}
    [result] = people.judge(PeopleFacts(DUE), Limits(environment(people=rota)), DUE)
    assert result.status == "PASS"
    assert "release manager ana (07700 900003)" in result.detail
    assert "ben (07700 900001), cleo (07700 900002)" in result.detail
    assert "escalation: on-call engineer: ben, cleo -> development lead: cleo (07700 900002) -> ICT service desk" \
        in result.detail


def test_the_sandbox_people_file_promises_nothing_it_does_not_show():
    """environments/local.toml's escalation no longer says '(rota below)' with nothing below it."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "environments" / "local.toml").read_text()
    assert "rota below" not in text


def test_an_instance_that_fails_its_health_path_is_a_warning_saying_what_the_next_switch_does():
    """A dead backup is started again by the rollback; a hung one makes it refuse; a staging one needs a stage again."""
    from releaser.instances import Instance, ServerInstances

    slots = {"live": "r2", "backup": "r1", "staging": "r3"}

    def report(name, backup, staging):
        return ServerReport(name, state("r2", "r1"), instances=ServerInstances(slots, (
            Instance(8001, "r2", 11, 200, "r2", "live"), backup, staging)))

    lines = status_warnings("prod", [
        report("web-1", Instance(8002, "r1", None, None, None, "backup"), Instance(8003, "r3", 13, 200, "r3", "staging")),
        report("web-2", Instance(8002, "r1", 22, None, None, "backup"), Instance(8003, "r3", 23, 503, "r3", "staging"))])
    assert lines == [
        "web-1: the backup instance of r1 on port 8002 is not running; a rollback starts it again first; "
        "see: invoke runbook rollback",
        "web-2: the backup instance of r1 on port 8002 runs (pid 22) but does not answer; a rollback refuses until it "
        "answers: restart it with the application's own command; see: invoke runbook rollback",
        "web-2: the staging instance of r3 on port 8003 fails its health path; stage r3 again to restart it before "
        "the go-live; see: invoke runbook go-live"]


def test_a_command_s_lock_seen_by_status_says_it_may_be_left_over_and_how_to_free_it():
    """A go-live that died (kill -9, a server silent at its finish) leaves its lock: status says so once per lock."""
    from releaser.locks import LockInfo

    since = datetime(2026, 12, 1, 9, 29, 2, tzinfo=timezone.utc)
    held = LockInfo("ana@laptop", "go-live", since, since.replace(minute=59), "t1", kind="command")
    manual = LockInfo("ben@laptop", "data fix", since, None, "t2", kind="manual")
    lines = status_warnings("prod", [ServerReport("web-1", state("r2", "r1"), lock=held, locked=True),
                                     ServerReport("web-2", state("r2", "r1"), lock=held, locked=True),
                                     ServerReport("web-3", state("r2", "r1"), lock=manual, locked=True)])
    assert lines[0] == ("web-1, web-2 are locked by ana@laptop's go-live since 09:29:02 UTC, until 09:59 UTC: if that "
                        "command is not running now, it ended without freeing it; free it with: invoke unlock --reason "
                        "TEXT; see: invoke runbook rollback")
    assert len(lines) == 2 and lines[1].startswith("web-3 is locked by hand by ben@laptop since")


def test_a_lock_taken_with_invoke_lock_shows_in_status_with_its_reason():
    """QA on-call: a rollback refused by `invoke lock`'s lock sends you to status for "who holds it and why", but
    status showed only `LOCKED ben@laptop`; the reason, since and expiry were in --json alone."""
    from releaser.locks import LockInfo

    since = datetime(2026, 12, 1, 9, 29, 2, tzinfo=timezone.utc)
    manual = LockInfo("ben@laptop", 'data fix "table 3"', since, since.replace(minute=59), "t2", kind="manual")
    lines = status_warnings("prod", [ServerReport(name, state("r2", "r1"), lock=manual, locked=True)
                                     for name in ("web-1", "web-2")])
    assert lines == ["web-1, web-2 are locked by hand by ben@laptop since 09:29:02 UTC, until 09:59 UTC "
                     "(reason: \"data fix \"table 3\"\"): everyone else's deploy, go-live, rollback, rehearse, prune "
                     "and data-* are refused until then; ask ben@laptop, or free it with: invoke unlock --reason TEXT; see: invoke "
                     "runbook rollback"]


def test_a_command_s_lock_names_the_process_and_machine_to_look_at():
    """QA on-call: after a kill -9, "if that command is not running now" gave no way to find out: the lock now
    carries the machine and process id the command ran as, and status and the refusal name them."""
    from releaser.locks import describe_lock, new_lock, parse_lock

    since = datetime(2026, 12, 1, 9, 29, 2, tzinfo=timezone.utc)
    held = parse_lock(new_lock("ana@laptop", "go-live", since, minutes=30, token="t1", machine="ops-7", pid=4242).to_json())
    assert (held.machine, held.pid) == ("ops-7", 4242)
    lines = status_warnings("prod", [ServerReport("web-1", state("r2", "r1"), lock=held, locked=True)])
    assert lines == ["web-1 is locked by ana@laptop's go-live since 09:29:02 UTC, until 09:59 UTC: if that command "
                     "(process 4242 on ops-7: see there whether it still runs) is not running now, it ended without "
                     "freeing it; free it with: invoke unlock --reason TEXT; see: invoke runbook rollback"]
    assert describe_lock(held).endswith('(reason: "go-live", expires 09:59 UTC, process 4242 on ops-7)')
    old = parse_lock('{"owner": "ana", "reason": "r", "since": "2026-12-01T09:29:02+00:00", "expires": null, "token": "t"}')
    assert (old.machine, old.pid, old.process) == ("", None, "")  # a lock written before: read as before
