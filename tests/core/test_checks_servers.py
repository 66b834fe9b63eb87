"""Pure judges of the checks that read servers: reachable, disk, staged, rollback-target and lock."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from checkenv import ACTOR, NOW, limits, statuses
from releaser.checks import ServerView, Unreadable, disk, lock, reachable, rollback_target, staged
from releaser.checks.disk import DiskFacts
from releaser.checks.lock import HeldLock, LockFacts
from releaser.checks.reachable import ClockReading
from releaser.checks.staged import StagedFacts
from releaser.facts import Verified, parse_verified
from releaser.locks import new_lock

MIB = 1024 * 1024
SUMS = "a" * 64 + "  public/index.html\n"
DUE = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "reading, expected",
    [
        pytest.param(ClockReading(1000.01, 1000.0, 1000.02), "PASS", id="in-sync"),
        pytest.param(ClockReading(1001.0, 1000.0, 1000.02), "WARN", id="one-second-ahead"),
        pytest.param(ClockReading(995.0, 1000.0, 1000.02), "FAIL", id="five-seconds-behind"),
        pytest.param(Unreadable("connection refused"), "FAIL", id="no-answer"),
    ],
)
def test_reachable_judges_answer_and_clock_skew(reading, expected):
    """A server answers with a clock within 0.5 s (PASS), within 2 s (WARN), or not at all or further off (FAIL)."""
    [result] = reachable.judge({"web-1": reading}, limits(), NOW)
    assert result.status == expected


def test_reachable_names_direction_and_limit_of_skew():
    """A clock that is behind says so, with the limit, so the fix is obvious."""
    [result] = reachable.judge({"web-1": ClockReading(995.0, 1000.0, 1000.0)}, limits(), NOW)
    assert "5.000 s behind this machine (limit 2 s)" in result.detail


@pytest.mark.parametrize(
    "facts, expected",
    [
        pytest.param(DiskFacts(10_000 * MIB, 50 * MIB), "PASS", id="plenty"),
        pytest.param(DiskFacts(520 * MIB, 50 * MIB), "WARN", id="under-warning-plus-release"),
        pytest.param(DiskFacts(120 * MIB, 50 * MIB), "FAIL", id="no-room-for-one-more-release"),
        pytest.param(DiskFacts(90 * MIB, None), "FAIL", id="under-minimum"),
        pytest.param(Unreadable("df failed"), "FAIL", id="unreadable"),
    ],
)
def test_disk_judges_free_space_against_threshold_and_release_size(facts, expected):
    """Free space must cover the minimum plus one more release of this size; the warning level adds a margin."""
    [result] = disk.judge({"web-1": facts}, limits(), NOW)
    assert result.status == expected


def test_disk_failure_says_what_is_needed():
    """The FAIL detail gives free space, the need and its parts."""
    [result] = disk.judge({"web-1": DiskFacts(120 * MIB, 50 * MIB)}, limits(), NOW)
    assert result.detail.startswith("120.0 MiB free; needs 150.0 MiB (100.0 MiB minimum + 50.0 MiB for one more release")


def server(name, *, live="r1", backup=None, staging="r2", sums=SUMS, on_disk=True):
    return ServerView(name, live, backup, staging, staging, on_disk, sums, "{}", "")


def intact(release="r2"):
    return Verified(release, "intact", files=4)


@pytest.mark.parametrize(
    "facts, expected",
    [
        pytest.param({"web-1": StagedFacts(server("web-1"), intact()), "web-2": StagedFacts(server("web-2"), intact())},
                     {"web-1": "PASS", "web-2": "PASS"}, id="same-everywhere"),
        pytest.param({"web-1": StagedFacts(server("web-1", backup="r2"), intact()),
                      "web-2": StagedFacts(server("web-2", backup="r2"), intact())},
                     {"web-1": "WARN", "web-2": "WARN"}, id="staging-is-backup"),
        pytest.param({"web-1": StagedFacts(server("web-1"), intact()),
                      "web-2": StagedFacts(server("web-2", sums="b" * 64 + "  x\n"), intact())},
                     {"web-1": "PASS", "web-2": "FAIL"}, id="different-sums"),
        pytest.param({"web-1": StagedFacts(server("web-1"), intact()),
                      "web-2": StagedFacts(server("web-2", staging=None), None)},
                     {"web-1": "PASS", "web-2": "FAIL"}, id="nothing-staged-on-one"),
        pytest.param({"web-1": StagedFacts(server("web-1"), Verified("r2", "corrupt", "public/index.html: FAILED"))},
                     {"web-1": "FAIL"}, id="corrupt"),
        pytest.param({"web-1": StagedFacts(server("web-1", live="r2"), intact())}, {"web-1": "FAIL"}, id="staging-is-live"),
    ],
)
def test_staged_judges_one_intact_release_everywhere(facts, expected):
    """Staging must hold one release, with identical sums, intact, and not the live one, on every server."""
    assert statuses(staged.judge(facts, limits(), NOW)) == expected


def test_staged_with_an_expected_release_fails_another():
    """--release r3 fails a fleet that stages r2, naming both."""
    from releaser.checks import Limits

    [result] = staged.judge({"web-1": StagedFacts(server("web-1"), intact())},
                            Limits(limits().environment, release="r3"), NOW)
    assert result.status == "FAIL" and "staging is r2, expected r3" in result.detail


def test_staged_names_the_other_servers_when_sums_differ():
    """A server with different files is told which servers hold the common version."""
    facts = {"web-1": StagedFacts(server("web-1"), intact()), "web-2": StagedFacts(server("web-2"), intact()),
             "web-3": StagedFacts(server("web-3", sums="b" * 64 + "  x\n"), intact())}
    results = {r.server: r for r in staged.judge(facts, limits(), NOW)}
    common = hashlib.sha256(SUMS.encode()).hexdigest()[:8]
    assert results["web-3"].detail.endswith(f"than on web-1, web-2 ({common})")


def test_parse_verified_reads_the_verify_script():
    """The verify script's lines become release, outcome, first failures and file count."""
    assert parse_verified("release r1\nfiles 4\ncorrupt public/a: FAILED \n") == Verified("r1", "corrupt", "public/a: FAILED", 4)
    assert parse_verified("noslot\n") == Verified(None, "noslot")


@pytest.mark.parametrize(
    "facts, expected",
    [
        pytest.param({"web-1": Verified("r1", "intact", files=3), "web-2": Verified("r1", "intact", files=3)},
                     {"web-1": "PASS", "web-2": "PASS"}, id="intact"),
        pytest.param({"web-1": Verified("r1", "nosums")}, {"web-1": "WARN"}, id="cannot-verify"),
        pytest.param({"web-1": Verified(None, "noslot")}, {"web-1": "FAIL"}, id="no-live"),
        pytest.param({"web-1": Verified("r1", "missing")}, {"web-1": "FAIL"}, id="live-not-on-disk"),
        pytest.param({"web-1": Verified("r1", "corrupt", "x: FAILED")}, {"web-1": "FAIL"}, id="corrupt"),
        pytest.param({"web-1": Verified("r1", "intact"), "web-2": Verified("r1", "intact"), "web-3": Verified("r0", "intact")},
                     {"web-1": "PASS", "web-2": "PASS", "web-3": "FAIL"}, id="different-live"),
    ],
)
def test_rollback_target_judges_the_future_backup(facts, expected):
    """Today's live becomes the backup: it must exist, be intact and be the same release everywhere."""
    assert statuses(rollback_target.judge(facts, limits(), NOW)) == expected


def test_no_rollback_target_is_a_fail_never_a_warning():
    """The first release (nothing live) fails loudly, saying there would be no rollback target."""
    [result] = rollback_target.judge({"web-1": Verified(None, "noslot")}, limits(), NOW)
    assert result.status == "FAIL" and "NO rollback target" in result.detail


def held(owner, *, kind="manual", minutes=60, since=NOW - timedelta(minutes=5)):
    return HeldLock(new_lock(owner, "hotfix r41", since, minutes=minutes, token="t", kind=kind))


@pytest.mark.parametrize(
    "held_lock, expected",
    [
        pytest.param(None, "PASS", id="free"),
        pytest.param(held(ACTOR), "PASS", id="own-manual-lock"),
        pytest.param(held("dan@build-01", since=NOW - timedelta(hours=3)), "WARN", id="expired"),
        pytest.param(held("dan@build-01"), "FAIL", id="someone-else"),
        pytest.param(HeldLock(None), "FAIL", id="unknown-holder"),
    ],
)
def test_lock_judges_who_holds_it(held_lock, expected):
    """A free lock or your own manual lock passes, an expired one warns, anyone else's fails."""
    facts = LockFacts({"web-1": held_lock}, DUE, ("phof",))
    assert lock.judge(facts, limits(), NOW)[0].status == expected


def test_lock_held_by_someone_else_names_them_and_the_way_out():
    """The FAIL says who holds the lock, why, and how to free it."""
    facts = LockFacts({"web-1": held("dan@build-01")}, DUE, ("phof",))
    detail = lock.judge(facts, limits(), NOW)[0].detail
    assert 'lock held by dan@build-01' in detail and 'reason: "hotfix r41"' in detail and "invoke unlock" in detail


@pytest.mark.parametrize(
    "gap_days, publications, expected",
    [
        pytest.param(7, ("phof",), "PASS", id="other-publication-16-days-away"),
        pytest.param(20, ("phof",), "FAIL", id="other-publication-within-gap"),
        pytest.param(20, ("phof", "excess-mortality"), "PASS", id="both-in-one-release"),
    ],
)
def test_lock_judges_the_gap_to_other_publications(gap_days, publications, expected):
    """Another publication due within the minimum gap fails; one carried in the same release does not count."""
    environment_limits = limits(thresholds={"min_release_gap_days": gap_days})
    gap = lock.judge(LockFacts({}, DUE, publications), environment_limits, NOW)[-1]
    assert gap.server == "all" and gap.status == expected


def test_lock_gap_failure_names_the_publication_and_distance():
    """The gap FAIL names the close publication, when it is due and how far apart the two are."""
    gap = lock.judge(LockFacts({}, DUE, ("phof",)), limits(thresholds={"min_release_gap_days": 20}), NOW)[-1]
    assert gap.detail.startswith("excess-mortality was due Thu 19 Nov 14:00 GMT, 11.8 days before this release")


def test_lock_gap_to_a_publication_still_to_come_says_is_due_and_how_a_fix_declares_its_own():
    """QA: a late fix built without --publication met its own missed slot as 'phof is due' two days before."""
    gap = lock.judge(LockFacts({}, NOW, ()), limits(), NOW)[-1]
    assert gap.detail.startswith("phof is due Tue 1 Dec 09:30 GMT, 1.0 days after this release")
    assert gap.detail.endswith("a release for phof itself declares it: build it with --publication phof")


def test_lock_gap_unknown_release_time_warns():
    """Without a release time the gap cannot be judged: WARN, not a silent pass."""
    gap = lock.judge(LockFacts({}, None, ()), limits(), NOW)[-1]
    assert gap.status == "WARN"


def test_staged_says_same_on_every_server_only_when_it_is():
    """A PASS beside a server with nothing staged must not claim the release is the same everywhere."""
    one_missing = {"web-1": StagedFacts(server("web-1"), intact()), "web-2": StagedFacts(server("web-2", staging=None), None)}
    assert "same on every server" not in {r.server: r for r in staged.judge(one_missing, limits(), NOW)}["web-1"].detail
    unreadable = {"web-1": StagedFacts(server("web-1"), intact()), "web-2": Unreadable("ssh failed")}
    assert "same on every server" not in {r.server: r for r in staged.judge(unreadable, limits(), NOW)}["web-1"].detail
    both = {"web-1": StagedFacts(server("web-1"), intact()), "web-2": StagedFacts(server("web-2"), intact())}
    assert all(r.detail.endswith("same on every server") for r in staged.judge(both, limits(), NOW))
