"""The fleet on the local sandbox: the whole slot story, and every refusal leaving every slot as it was."""

import json
import shutil
from pathlib import Path, PurePosixPath

import pytest

from conftest import EXAMPLES, read_slots
from releaser.bundle import build_bundle, read_bundle
from releaser.errors import BundleInvalid, Cancelled, FleetReverted, LockHeld, PlanRefused, ReleaserError
from releaser import remote
from releaser.slots import SlotState
from releaser.transport import LocalHost


def stage_and_go_live(fleet, *releases):
    """Stage each release in turn and take it live."""
    for release in releases:
        fleet.stage(read_bundle(EXAMPLES / release))
        fleet.go_live()


def test_go_live_keeps_previous_live_as_backup_on_every_server(local_env, open_fleet):
    """After two go-lives every server serves r2 with r1 as its backup."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1", "r2")
    assert set(read_slots(local_env).values()) == {SlotState("r2", "r1", None, frozenset({"r1", "r2"}))}


def test_failed_verification_reverts_every_server(local_env, open_fleet):
    """A release whose health check fails goes live nowhere: all servers are back on r2, r3 still staged."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1", "r2")
        fleet.stage(read_bundle(EXAMPLES / "r3"))
        with pytest.raises(FleetReverted, match=r"healthz -> 404.*every server is back on r2 \(r3 was live for at most [0-9.]+ s, from the commit to the end of the revert\); next: invoke runbook go-live"):
            fleet.go_live()
    assert {(s.live, s.backup, s.staging) for s in read_slots(local_env).values()} == {("r2", "r1", "r3")}


def test_rollback_restores_backup_and_keeps_failed_release(local_env, open_fleet):
    """Rollback puts r1 back everywhere and r2 stays on disk for inspection."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1", "r2")
        result = fleet.rollback(reason="bad figures")
    assert result.release == "r1" and all(r.ok for r in result.results)
    for state in read_slots(local_env).values():
        assert (state.live, state.backup) == ("r1", None) and "r2" in state.on_disk


def test_a_rollback_whose_check_after_the_switch_could_not_run_is_not_called_healthy(local_env, open_fleet, monkeypatch):
    """QA: when the health check itself raised (it never answered ok or not), rollback printed OK and exited 0;
    each server's result now says the check did not run through, so the command reports the rollback unhealthy."""
    from releaser.participants import links

    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1", "r2")

        def no_probe(*args, **kwargs):
            raise RuntimeError("the probe broke")

        monkeypatch.setattr(links, "check_health", no_probe)
        result = fleet.rollback(reason="bad figures")
    assert result.release == "r1"
    assert [r.ok for r in result.results] == [False] * len(local_env.servers)
    assert all("the probe broke" in r.detail for r in result.results), [r.detail for r in result.results]
    assert {(s.live, s.backup) for s in read_slots(local_env).values()} == {("r1", None)}


@pytest.mark.parametrize(("kind", "held"), [("file", r"public/extra\.html"),
                                            ("symlink", r"public/extra\.html \(a symbolic link\)")])
def test_a_file_added_to_a_staged_release_on_one_server_stops_the_go_live(local_env, open_fleet, kind, held):
    """QA: a file (then, on the re-test, a link to /etc/passwd) put into releases/r2 on web-2 after staging went
    live unseen (sha256sum -c reads only what the sums list); prepare now finds it, names it, switches nothing."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1")
        fleet.stage(read_bundle(EXAMPLES / "r2"))
    web2 = local_env.server("web-2")
    added = Path(str(local_env.app_root(web2))) / "releases" / "r2" / "public" / "extra.html"
    if kind == "file":
        added.write_text("<h1>defaced</h1>")
    else:
        added.symlink_to("/etc/passwd")
    with open_fleet(local_env) as fleet, pytest.raises(FleetReverted, match=rf"web-2 \(release r2 fails its checksums on "
                                                         rf"this server \(it holds {held}, which its "
                                                         r"checksums do not list\)\)"):
        fleet.go_live()
    assert {s.live for s in read_slots(local_env).values()} == {"r1"}


def test_prepare_returns_only_once_a_change_would_be_newer_than_its_link(tmp_path):
    """QA: the commit's check is "changed after .releaser/next-live" (strictly newer), and a change in the same
    tick of the file system's clock (1-10 ms) compared equal: 2 of 6 changes made 1-3 ms after prepare went live.
    Prepare's links end with tick_past: a file written at once after it is newer than the link, every time."""
    (tmp_path / ".releaser").mkdir()
    (tmp_path / "releases" / "r2").mkdir(parents=True)
    script = remote._PREPARE_LINKS + r"""
cd "$1" || exit 3
n=0; same=0
while [ "$n" -lt 40 ]; do
  ln -sfn releases/r2 .releaser/next-live && tick_past .releaser/next-live && : > "releases/r2/added-$n"
  [ -n "$(find "releases/r2/added-$n" -cnewer .releaser/next-live)" ] || same=$((same + 1))
  n=$((n + 1))
done
echo "$same"
"""
    done = LocalHost("web-1").run(["sh", "-c", script, "releaser-test", str(tmp_path)])
    assert done.ok and done.stdout.strip() == "0", done
    assert not list((tmp_path / ".releaser").glob("tick-*"))


def test_a_ctrl_c_swallowed_before_the_commit_still_cancels_and_is_journaled(local_env, open_fleet, monkeypatch):
    """QA re-test: a press ~3 ms before the commit raised inside a weakref callback, where CPython drops it
    ("Exception ignored in ... KeyboardInterrupt"), and the go-live went live with exit 0 and no word of it. The
    raising handler counts presses; the commit's gate finds one that was never answered and cancels."""
    from releaser import interrupts

    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1")
        fleet.stage(read_bundle(EXAMPLES / "r2"))
    monkeypatch.setitem(interrupts._state, "raised", 0)
    with open_fleet(local_env) as fleet, pytest.raises(Cancelled) as cancelled:
        fleet.go_live(before_commit=lambda: interrupts._state.update(raised=1))  # as a swallowed press leaves it
    assert str(cancelled.value).startswith("go-live cancelled before the commit (Ctrl-C); nothing was switched")
    assert {s.live for s in read_slots(local_env).values()} == {"r1"}
    journal = [json.loads(line) for line in Path(fleet.journal_path).read_text().splitlines()]
    assert (journal[-1]["action"], journal[-1]["outcome"], journal[-1]["detail"]) == (
        "go-live", "cancelled", "Ctrl-C before the commit")


def test_staging_over_backup_is_refused_and_nothing_moves(local_env, open_fleet):
    """Staging the backup release again is refused with a reason; no slot changes."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1", "r2")
        before = read_slots(local_env)
        with pytest.raises(PlanRefused, match="web-1: release r1 is the backup release; staging must never touch it"):
            fleet.stage(read_bundle(EXAMPLES / "r1"))
    assert read_slots(local_env) == before


def test_go_live_with_nothing_staged_is_refused(local_env, open_fleet):
    """Go-live with an empty staging slot says what to run instead."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1")
        before = read_slots(local_env)
        with pytest.raises(PlanRefused, match="nothing is staged; run: invoke deploy --stage --release PATH"):
            fleet.go_live()
    assert read_slots(local_env) == before


def test_rollback_without_backup_is_refused(local_env, open_fleet):
    """The first release has no rollback target, and rollback says so."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1")
        with pytest.raises(PlanRefused, match="there is no rollback target"):
            fleet.rollback()
    assert {s.live for s in read_slots(local_env).values()} == {"r1"}


def test_corrupt_bundle_is_refused_before_upload(tmp_path, local_env, open_fleet):
    """A bundle whose file differs from its manifest never reaches a server."""
    corrupt = tmp_path / "r2"
    shutil.copytree(EXAMPLES / "r2", corrupt)
    (corrupt / "public" / "index.html").write_text("tampered")
    with pytest.raises(BundleInvalid, match=r"is corrupt: public/index.html: sha256 differs from the manifest"):
        read_bundle(corrupt)
    assert all(s == SlotState(None, None, None) for s in read_slots(local_env).values())


@pytest.mark.parametrize("release_id", ["r1; rm -rf /", "../etc", "r 1", "r1'", "$(reboot)", "-rf", ""])
def test_bad_release_id_is_refused(tmp_path, release_id):
    """Release ids with slashes, spaces, quotes or shell metacharacters never become a bundle."""
    bundle = tmp_path / "bundle"
    shutil.copytree(EXAMPLES / "r1", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["release_id"] = release_id
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleInvalid, match="bad release id"):
        read_bundle(bundle)


def test_second_deploy_while_locked_names_the_holder(local_env, open_fleet):
    """A deploy while someone else holds the lock fails naming them, and changes nothing."""
    with open_fleet(local_env, actor="ana@build-01") as fleet:
        fleet.take_lock("hotfix r41", token="t1", kind="manual", minutes=60)
    with open_fleet(local_env, actor="ben@laptop") as fleet:
        with pytest.raises(LockHeld, match=r'lock held by ana@build-01 since .* \(reason: "hotfix r41".*wait, or run: invoke unlock --reason TEXT'):
            fleet.stage(read_bundle(EXAMPLES / "r1"))
    assert all(s.staging is None for s in read_slots(local_env).values())


def test_lock_is_taken_on_all_servers_or_none(local_env, open_fleet):
    """When one server is already locked, the servers this call locked are freed again."""
    root = Path(str(local_env.app_root(local_env.servers[2])))
    (root / ".releaser" / "lock").mkdir(parents=True)
    (root / ".releaser" / "lock" / "info.json").write_text('{"owner": "carol@ops", "reason": "maintenance", "since": "2026-11-30T08:00:00+00:00", "token": "x"}')
    with open_fleet(local_env) as fleet:
        with pytest.raises(LockHeld, match="carol@ops.* on web-3"):
            fleet.take_lock("deploy", token="mine", kind="command", minutes=5)
    locked = [s.name for s in local_env.servers if (Path(str(local_env.app_root(s))) / ".releaser" / "lock").exists()]
    assert locked == ["web-3"]


def test_a_go_live_refused_by_one_lock_leaves_no_prepared_links_on_the_others(local_env, open_fleet):
    """The lock's round trip prepares the switch early where it takes the lock; a refusal elsewhere removes them."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1")
        fleet.stage(read_bundle(EXAMPLES / "r2"))
    root = Path(str(local_env.app_root(local_env.servers[2])))
    (root / ".releaser" / "lock").mkdir(parents=True)
    (root / ".releaser" / "lock" / "info.json").write_text('{"owner": "carol@ops", "reason": "maintenance", "since": "2026-11-30T08:00:00+00:00", "token": "x"}')
    with open_fleet(local_env) as fleet, pytest.raises(LockHeld, match="carol@ops.* on web-3"):
        fleet.go_live()
    prepared = [f"{s.name}:{p.name}" for s in local_env.servers
                for p in (Path(str(local_env.app_root(s))) / ".releaser").glob("next-*")]
    assert prepared == []
    assert {(s.live, s.staging) for s in read_slots(local_env).values()} == {("r1", "r2")}


def test_expired_lock_is_taken_over(local_env, open_fleet, fake_clock):
    """A lock past its expiry does not block the next deploy."""
    with open_fleet(local_env, actor="ana@build-01") as fleet:
        fleet.take_lock("forgotten", token="old", kind="manual", minutes=10)
    fake_clock.advance(11 * 60)
    with open_fleet(local_env, actor="ben@laptop") as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
    assert {s.staging for s in read_slots(local_env).values()} == {"r1"}


def test_command_frees_its_own_lock_after_a_failure(local_env, open_fleet):
    """A go-live that fails verification still releases the lock it took, and its failure, written while the
    lock was held, reaches every server's journal with the unlock."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1")
        fleet.stage(read_bundle(EXAMPLES / "r3"))
        with pytest.raises(FleetReverted):
            fleet.go_live()
        assert not any(r.locked for r in fleet.read_status(with_health=False))
        last = fleet.read_history()[-1]
    assert (last["action"], last["outcome"], sorted(last["seen_on"])) == ("go-live", "reverted", ["web-1", "web-2", "web-3"])


def test_restaging_the_same_release_id_with_other_files_is_refused(tmp_path, local_env, open_fleet):
    """Release ids are immutable: a different bundle under a staged id is refused, staging unchanged."""
    source = tmp_path / "src"
    shutil.copytree(EXAMPLES / "r2", source)
    (source / "manifest.json").unlink()
    (source / "public" / "index.html").write_text("<html><body>other r2</body></html>")
    other_r2 = build_bundle(source, "r2", tmp_path / "r2.tar.gz")
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1")
        fleet.stage(read_bundle(EXAMPLES / "r2"))
        fleet.stage(read_bundle(EXAMPLES / "r3"))
        with pytest.raises(FleetReverted, match="r2 on this server has different files from the bundle") as refused:
            fleet.stage(other_r2)
    assert {s.staging for s in read_slots(local_env).values()} == {"r3"}
    assert "build the bundle as a new release id and stage that" in refused.value.hint  # not "run it again"


def test_prune_keeps_slot_releases(local_env, open_fleet):
    """Prune with keep=0 removes only releases no slot points to."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1", "r2")
        fleet.stage(read_bundle(EXAMPLES / "r3"))
        fleet.rollback()
        removed = fleet.prune(keep=0)
    assert set(removed.values()) == {("r2",)}
    assert {s.on_disk for s in read_slots(local_env).values()} == {frozenset({"r1", "r3"})}


def test_tar_gz_bundle_stages_like_a_directory(tmp_path, local_env, open_fleet):
    """A .tar.gz built by build_bundle stages and serves the same release."""
    source = tmp_path / "src"
    shutil.copytree(EXAMPLES / "r1", source)
    bundle = build_bundle(source, "r7", tmp_path / "r7.tar.gz")
    with open_fleet(local_env) as fleet:
        fleet.stage(bundle)
        fleet.go_live()
    assert {s.live for s in read_slots(local_env).values()} == {"r7"}


def test_journal_records_each_action_on_every_server(local_env, open_fleet):
    """Stage and go-live each leave one event on every server's journal, merged into one history."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1")
        history = fleet.read_history()
    actions = [(e["action"], e["outcome"]) for e in history]
    assert actions == [("stage", "done"), ("go-live", "done")]
    assert all(sorted(e["seen_on"]) == ["web-1", "web-2", "web-3"] for e in history)



class CountingHost(LocalHost):
    """A real sandbox host that also writes down which releaser script each round trip ran."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ran: list[str] = []

    def run(self, argv, **kwargs):
        self.ran.append(argv[3] if list(argv[:2]) == ["sh", "-c"] else argv[0])
        return super().run(argv, **kwargs)


def test_rollback_reads_under_the_lock_and_journals_with_the_unlock(local_env, open_fleet):
    """Three round trips per server: lock+status+prepare, commit, journal+unlock. Each one costs at 09:30."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1", "r2")
    hosts = {server.name: CountingHost(server.name) for server in local_env.servers}
    with open_fleet(local_env, hosts=hosts) as fleet:
        fleet.rollback(reason="bad figures")
    assert {name: host.ran for name, host in hosts.items()} == {
        name: ["releaser-lock", "releaser-commit", "releaser-finish"] for name in hosts}
    with open_fleet(local_env) as fleet:
        reports = fleet.read_status(with_health=False)
        history = fleet.read_history()
    assert not any(report.locked for report in reports)
    assert history[-1]["action"] == "rollback" and sorted(history[-1]["seen_on"]) == ["web-1", "web-2", "web-3"]


def test_finishing_never_frees_a_lock_someone_else_holds(tmp_path):
    """The journal line is written, and a lock with another token stays: a late unlock must not free a new holder."""
    host, root = LocalHost("web-1"), PurePosixPath(tmp_path)
    assert host.run(remote.lock_argv(root, '{"owner": "ana", "token": "theirs"}')).stdout.splitlines()[0] == "taken"
    done = host.run(remote.finish_argv(root, "mine", ['{"action": "go-live"}', '{"action": "weird $(touch PWNED) `x`"}']))
    assert done.ok and (tmp_path / ".releaser" / "lock").is_dir()
    assert (tmp_path / ".releaser" / "journal.jsonl").read_text().splitlines() == [
        '{"action": "go-live"}', '{"action": "weird $(touch PWNED) `x`"}']
    assert not list(tmp_path.glob("PWNED")) and not Path("PWNED").exists()
    assert host.run(remote.finish_argv(root, "theirs", [])).ok and not (tmp_path / ".releaser" / "lock").exists()


def test_lock_with_status_reports_the_slots_it_locked(local_env, open_fleet):
    """Taking the lock answers with the slots and releases oldest first, read after the lock was taken."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1", "r2")
        with fleet.locked("inspect") as session:
            assert set(session.reports) == {"web-1", "web-2", "web-3"}
            for report in session.reports.values():
                assert report.state == SlotState("r2", "r1", None, frozenset({"r1", "r2"}))
                assert report.oldest_first == ("r1", "r2")
                assert report.locked and report.lock.reason == "inspect"


def _temporary_links(environment) -> list[str]:
    return sorted(p.name for s in environment.servers for p in (Path(str(environment.app_root(s))) / ".releaser").glob("next-*"))


def test_a_release_corrupted_on_one_server_stops_go_live_before_any_switch(local_env, open_fleet):
    """A file changed on web-2 after staging fails its checksums when the switch is prepared: nothing moves anywhere."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1")
        fleet.stage(read_bundle(EXAMPLES / "r2"))
    web2 = Path(str(local_env.app_root(local_env.servers[1])))
    (web2 / "releases" / "r2" / "public" / "index.html").write_text("<html>tampered</html>")
    before = read_slots(local_env)
    with open_fleet(local_env) as fleet:
        with pytest.raises(FleetReverted, match=r"go-live stopped before any switch: web-2 \(release r2 fails its checksums "
                                                r"on this server\); nothing was switched"):
            fleet.go_live()
        assert not any(report.locked for report in fleet.read_status(with_health=False))
    assert read_slots(local_env) == before
    assert _temporary_links(local_env) == []


def test_saying_no_to_the_plan_leaves_no_prepared_link_and_no_lock(local_env, open_fleet):
    """The lock's round trip prepares the rollback's links early; a 'no' removes them with the lock."""
    with open_fleet(local_env) as fleet:
        stage_and_go_live(fleet, "r1", "r2")
        before = read_slots(local_env)
        with pytest.raises(Cancelled, match="rollback cancelled; nothing was changed"):
            fleet.rollback(approve=lambda action, plans: False)
        assert not any(report.locked for report in fleet.read_status(with_health=False))
    assert read_slots(local_env) == before
    assert _temporary_links(local_env) == []


def test_a_notice_that_fails_on_one_server_says_where_it_shows_and_is_journaled(local_env, open_fleet):
    """web-2 cannot take the notice (its path is a directory): the error says web-1 shows it, so the servers differ,
    and the journal has the failed notice with where it went (the breach report lists each notice published)."""
    web2 = Path(str(local_env.app_root(local_env.server("web-2")))) / ".releaser" / "notice.txt"
    web2.mkdir(parents=True)
    with open_fleet(local_env) as fleet, pytest.raises(ReleaserError) as failure:
        fleet.publish_notice("Figures delayed until 11:00")
    message = str(failure.value)
    assert message.startswith("could not publish the notice on web-2 (") and "web-1" in message.split("; ", 1)[1], message
    assert "show it now, so the servers differ" in message
    with open_fleet(local_env) as fleet:
        event = [e for e in fleet.read_history() if e["action"] == "notice"][-1]
    assert event["outcome"] == "failed" and "done on web-1" in event["detail"] and "failed on web-2" in event["detail"]
