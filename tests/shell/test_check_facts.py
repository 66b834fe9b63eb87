"""The pre-release checks read each real sshd server once: one facts round trip, and the checksums they verified
are trusted by the prepare that follows only while nothing in the release changed."""

from __future__ import annotations

import re

from collections import Counter
from pathlib import Path

import pytest

from conftest import EXAMPLES, read_slots
from releaser.bundle import read_bundle
from releaser.checks import Limits, check_release
from releaser.errors import FleetReverted
from releaser.fleet import make_hosts
from releaser.golive import NOW_CHECKS

pytestmark = pytest.mark.ssh


class Counting:
    """A server's real Host that counts the commands it runs."""

    def __init__(self, host, counts: Counter) -> None:
        self._host, self._counts = host, counts

    def __getattr__(self, name):
        return getattr(self._host, name)

    def run(self, argv, **kwargs):
        self._counts[self._host.name] += 1
        return self._host.run(argv, **kwargs)


def staged_r2(open_fleet, env) -> None:
    with open_fleet(env) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.go_live()
        fleet.stage(read_bundle(EXAMPLES / "r2"))


def test_go_live_checks_ask_each_server_once_and_judge_as_before(ssh_env, open_fleet):
    """Slots, disk, lock, clock, both releases' sums, the config files and the rehearsal summary come in one trip."""
    staged_r2(open_fleet, ssh_env)
    counts: Counter = Counter()
    hosts = {name: Counting(host, counts) for name, host in make_hosts(ssh_env).items()}
    with open_fleet(ssh_env, hosts=hosts) as fleet:
        counts.clear()
        run = check_release(fleet, Limits(ssh_env), now=fleet.clock.now(), only=NOW_CHECKS)
    assert counts == Counter({"web-1": 1, "web-2": 1, "web-3": 1})  # was 8 each, then 2
    by = {(r.check, r.server): r for r in run.results}
    assert by[("staged", "web-2")].status == "PASS" and by[("staged", "web-2")].detail.startswith("r2: 4 files intact, sums ")
    # r1's files were read by the go-live's prepare just before, and nothing in it changed since: not read again
    assert re.fullmatch(r"after go-live the backup will be r1 \(4 files intact, checked at \d\d:\d\d:\d\d UTC, unchanged since\)",
                        by[("rollback-target", "web-1")].detail)
    assert by[("lock", "web-3")].detail == "free"
    assert by[("reachable", "web-1")].status == "PASS" and "clock" in by[("reachable", "web-1")].detail
    assert "free (minimum" in by[("disk", "web-2")].detail


def test_a_release_changed_after_the_checks_is_still_refused_at_prepare(ssh_env, open_fleet):
    """The stamp the checks leave lets prepare skip reading the files only while no inode in the release changed."""
    staged_r2(open_fleet, ssh_env)
    with open_fleet(ssh_env) as fleet:
        run = check_release(fleet, Limits(ssh_env), now=fleet.clock.now(), only="staged,rollback-target")
        assert not run.failed
        root = Path(str(ssh_env.app_root(ssh_env.server("web-2"))))
        assert (root / ".releaser" / "verified-r2").is_file() and (root / ".releaser" / "verified-r1").is_file()
        page = root / "releases" / "r2" / "public" / "index.html"
        page.write_text(page.read_text() + "<!-- changed after the checks -->\n")
        with pytest.raises(FleetReverted, match="release r2 fails its checksums on this server") as refused:
            fleet.go_live()
    assert refused.value.hint.startswith("its files on web-2 were changed after they were staged: build the release "
                                         "again under a new release id")  # the same id would be refused at stage
    assert {name: state.live for name, state in read_slots(ssh_env).items()} == dict.fromkeys(("web-1", "web-2", "web-3"), "r1")


def test_a_backup_changed_on_one_server_is_refused_with_what_the_on_call_can_do(ssh_env, open_fleet):
    """r1, the backup, has a file changed on web-2: the rollback stops before any switch, and its hint does not say
    "run the same command again" (it would fail the same way) but how to roll back the others without web-2."""
    staged_r2(open_fleet, ssh_env)
    with open_fleet(ssh_env) as fleet:
        fleet.go_live()
        page = Path(str(ssh_env.app_root(ssh_env.server("web-2")))) / "releases" / "r1" / "public" / "index.html"
        page.write_text(page.read_text() + "<!-- changed on the server -->\n")
        with pytest.raises(FleetReverted, match="release r1 fails its checksums on this server") as refused:
            fleet.rollback()
    assert "nothing was switched" in str(refused.value)
    assert refused.value.hint == ("the backup's files on web-2 were changed after they were staged, so it cannot be "
                                  "rolled back there: keep web-2 away from the public and roll back the other servers "
                                  "without it (see: invoke runbook server-failure, step 3), then escalate")
    assert {name: state.live for name, state in read_slots(ssh_env).items()} == dict.fromkeys(("web-1", "web-2", "web-3"), "r2")


def test_the_rehearsal_comes_in_the_same_trip_from_its_summary_or_from_old_journals(ssh_env, open_fleet):
    """The rehearsal check asks no server again: the summary rides in the facts' trip, and a server journaled
    before summaries existed sends its journal's rehearsal lines (from every part) in that same trip."""
    staged_r2(open_fleet, ssh_env)
    environment = ssh_env.model_copy(update={"go_live": ssh_env.go_live.model_copy(update={"rehearsal_max_age_days": 7})})
    with open_fleet(environment) as fleet:
        fleet.rehearse()
    counts: Counter = Counter()
    hosts = {name: Counting(host, counts) for name, host in make_hosts(environment).items()}
    for old_servers in ((), ("web-1", "web-2", "web-3")):
        for name in old_servers:  # as written before rehearsal.json existed, the journal rotated once since
            state = Path(str(environment.app_root(environment.server(name)))) / ".releaser"
            (state / "rehearsal.json").unlink()
            (state / "journal.jsonl").rename(state / "journal.jsonl.1")
        with open_fleet(environment, hosts=hosts) as fleet:
            counts.clear()
            run = check_release(fleet, Limits(environment), now=fleet.clock.now(), only="reachable,rehearsal")
        assert counts == Counter({"web-1": 1, "web-2": 1, "web-3": 1})
        [rehearsal] = [r for r in run.results if r.check == "rehearsal"]
        assert rehearsal.status == "PASS" and rehearsal.detail.startswith("r2 rehearsed "), rehearsal.detail


def test_a_file_added_to_the_staged_release_fails_the_staged_check_by_name(ssh_env, open_fleet):
    """QA: a file put into releases/r2 on one server after staging passed `staged` (sha256sum -c reads only what
    the sums list), then prepare, and went live; the check now names it on that server, the others pass."""
    staged_r2(open_fleet, ssh_env)
    root = Path(str(ssh_env.app_root(ssh_env.server("web-2"))))
    (root / "releases" / "r2" / "public" / "extra.html").write_text("<h1>defaced</h1>\n")
    with open_fleet(ssh_env) as fleet:
        run = check_release(fleet, Limits(ssh_env), now=fleet.clock.now(), only="staged")
    by = {(r.check, r.server): r for r in run.results}
    assert by[("staged", "web-2")].status == "FAIL"
    assert "public/extra.html: not in its checksums (added on this server after it was staged)" in by[("staged", "web-2")].detail
    assert by[("staged", "web-1")].status == "PASS" and by[("staged", "web-3")].status == "PASS"
