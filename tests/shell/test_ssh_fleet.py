"""Stage, go-live, rollback, status, lock and hooks over real SSH, on a farm of three real sshd servers.

Every test ends by reading each server's slots straight from its app root (`read_slots`) and asserting the
exact state on every server, so a fleet that reports success while a server says otherwise cannot pass.
"""

from __future__ import annotations

import json
import shutil
import uuid
from functools import cache
from pathlib import Path

import pytest

from conftest import ACTOR, EXAMPLES, read_slots, ssh_environment_for
from releaser import remote, ui
from releaser.bundle import Bundle, read_bundle
from releaser.errors import BundleInvalid, FleetReverted, HostUnreachable, LockHeld, PlanRefused
from releaser.fleet import make_hosts
from releaser.slots import SlotState
from releaser.web import probe

pytestmark = pytest.mark.ssh

SERVERS = ("web-1", "web-2", "web-3")


@cache
def bundle(release_id: str) -> Bundle:
    """One of the example releases: r1 and r2 are healthy, r3 has no /healthz."""
    return read_bundle(EXAMPLES / release_id)


def everywhere(live: str | None, backup: str | None, staging: str | None, *on_disk: str) -> dict[str, SlotState]:
    """The same slots on every server of the farm."""
    return {name: SlotState(live, backup, staging, frozenset(on_disk)) for name in SERVERS}


def r1_live_r2_staged(open_fleet, env) -> None:
    """Bring the farm to the state of the morning before a release: r1 live, r2 staged."""
    with open_fleet(env) as fleet:
        fleet.stage(bundle("r1"))
        fleet.go_live()
        fleet.stage(bundle("r2"))
    assert read_slots(env) == everywhere("r1", None, "r2", "r1", "r2")


def leftovers(env) -> dict[str, list[str]]:
    """Upload, unpack and prepared-link debris under each server's .releaser/ (lock and journal excluded)."""
    found = {}
    for server in env.servers:
        meta = Path(str(env.app_root(server))) / ".releaser"
        found[server.name] = sorted(p.name for p in meta.iterdir() if p.name.startswith(("upload-", "unpack-", "next-", "back-"))) \
            if meta.is_dir() else []
    return found


def lock_dirs(env) -> list[str]:
    """Servers whose deploy lock is taken right now."""
    return [s.name for s in env.servers if (Path(str(env.app_root(s))) / ".releaser" / "lock").exists()]


# ---- stage, go-live, rollback ----


def test_stage_uploads_verifies_and_points_staging_on_every_server(ssh_env, open_fleet):
    with open_fleet(ssh_env) as fleet:
        result = fleet.stage(bundle("r1"))

    assert read_slots(ssh_env) == everywhere(None, None, "r1", "r1")
    assert [(r.server, r.ok) for r in result.results] == [(name, True) for name in SERVERS]
    assert leftovers(ssh_env) == {name: [] for name in SERVERS}
    assert lock_dirs(ssh_env) == []
    for server in ssh_env.servers:  # the unpacked files are the bundle's, byte for byte
        unpacked = Path(str(ssh_env.app_root(server))) / "releases" / "r1" / "public" / "index.html"
        assert unpacked.read_bytes() == (EXAMPLES / "r1" / "public" / "index.html").read_bytes()


def test_go_live_switches_every_server_and_keeps_the_old_live_as_backup(ssh_env, open_fleet):
    r1_live_r2_staged(open_fleet, ssh_env)

    with open_fleet(ssh_env) as fleet:
        result = fleet.go_live()
        served = [probe(server.live_url + "/index.html").body_head for server in ssh_env.servers]

    assert read_slots(ssh_env) == everywhere("r2", "r1", None, "r1", "r2")
    assert (result.release, result.previous) == ("r2", "r1")
    assert all(r.ok and r.renamed_at for r in result.results)
    assert result.skew is not None and result.skew < 1.0
    assert all("r2" in page for page in served), served
    assert leftovers(ssh_env) == {name: [] for name in SERVERS}
    assert lock_dirs(ssh_env) == []


def test_rollback_puts_the_backup_back_live_and_keeps_the_failed_release(ssh_env, open_fleet):
    r1_live_r2_staged(open_fleet, ssh_env)
    with open_fleet(ssh_env) as fleet:
        fleet.go_live()

    with open_fleet(ssh_env) as fleet:
        result = fleet.rollback(reason="r2 shows the wrong month")

    assert read_slots(ssh_env) == everywhere("r1", None, None, "r1", "r2")
    assert (result.release, result.previous) == ("r1", "r2")
    assert all(r.ok for r in result.results)
    journal = (Path(str(ssh_env.app_root(ssh_env.servers[1]))) / ".releaser" / "journal.jsonl").read_text().splitlines()
    last = json.loads(journal[-1])
    assert (last["action"], last["outcome"], last["reason"]) == ("rollback", "done", "r2 shows the wrong month")


def test_go_live_of_a_release_failing_its_health_check_puts_every_server_back(ssh_env, open_fleet):
    """r3 has no /healthz: the real HTTP verification after the commit fails on every server."""
    with open_fleet(ssh_env) as fleet:
        fleet.stage(bundle("r1"))
        fleet.go_live()
        fleet.stage(bundle("r3"))

    with open_fleet(ssh_env) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.go_live()

    assert read_slots(ssh_env) == everywhere("r1", None, "r3", "r1", "r3")
    message = str(failure.value)
    # the first server whose verify failed starts the revert: the others' verdicts are not waited for
    assert any(f"{name} (GET " in message for name in SERVERS)
    assert "/healthz -> 404" in message and "every server is back on r1" in message
    assert "next: invoke runbook go-live" in message  # its exit-code table: the release is late, what to do
    assert leftovers(ssh_env) == {name: [] for name in SERVERS}
    assert lock_dirs(ssh_env) == []


# ---- status ----


def test_status_reads_every_server_in_one_round_trip_each(ssh_env, open_fleet):
    r1_live_r2_staged(open_fleet, ssh_env)

    with open_fleet(ssh_env) as fleet:
        reports = fleet.read_status()

    assert [r.server for r in reports] == list(SERVERS)
    assert {r.server: r.state for r in reports} == read_slots(ssh_env) == everywhere("r1", None, "r2", "r1", "r2")
    for report in reports:
        assert report.error is None and not report.locked
        assert report.health is not None and report.health.ok, report.health
        assert report.free_bytes and report.free_bytes > 0
        assert report.oldest_first and set(report.oldest_first) == {"r1", "r2"}


def test_status_shows_a_stopped_server_as_down_and_reads_the_others(sshd_farm, ssh_env, open_fleet, capsys):
    r1_live_r2_staged(open_fleet, ssh_env)
    sshd_farm.stop("web-2")

    with open_fleet(ssh_env) as fleet:
        reports = {r.server: r for r in fleet.read_status()}
    ui.out.width = 400  # one table row per server, whatever the terminal
    try:
        ui.show_status(ssh_env.name, list(reports.values()))
    finally:
        ui.out.width = None

    assert reports["web-2"].state is None
    assert "web-2" in reports["web-2"].error and str(sshd_farm.server("web-2").port) in reports["web-2"].error
    for name in ("web-1", "web-3"):
        assert reports[name].state == SlotState("r1", None, "r2", frozenset({"r1", "r2"}))
        assert reports[name].health.ok
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.split()[1:2] in (["web-1"], ["web-2"], ["web-3"])}
    assert "DOWN" in rows["web-2"]
    assert "r1" in rows["web-1"] and "r2" in rows["web-3"] and "DOWN" not in rows["web-1"] + rows["web-3"]
    # SSH is down, its web server is not: what the public gets there is still read, and said
    assert reports["web-2"].health.served.release == "r1" and "│ DOWN │ r1 │" in " ".join(rows["web-2"].split())
    assert ui.status_warnings(ssh_env.name, list(reports.values()))[-1] == \
        "web-2 did not answer (web-2's public URL serves r1); see: invoke runbook server-failure"
    assert read_slots(ssh_env) == everywhere("r1", None, "r2", "r1", "r2")  # reading changed nothing


# ---- lock ----


def test_lock_refuses_a_second_actor_with_a_message_naming_the_holder(ssh_env, open_fleet):
    r1_live_r2_staged(open_fleet, ssh_env)
    with open_fleet(ssh_env) as fleet:
        fleet.take_lock("hotfix r41", token=uuid.uuid4().hex, kind="manual", minutes=60)

    with open_fleet(ssh_env, actor="other@x") as fleet, pytest.raises(LockHeld) as refusal:
        fleet.go_live()

    assert f"lock held by {ACTOR}" in str(refusal.value) and '"hotfix r41"' in str(refusal.value)
    assert "web-1, web-2, web-3" in str(refusal.value) and "invoke unlock" in str(refusal.value)
    assert read_slots(ssh_env) == everywhere("r1", None, "r2", "r1", "r2")
    assert lock_dirs(ssh_env) == list(SERVERS)  # the refused actor did not free (or steal) the holder's lock


def test_the_lock_holder_can_still_deploy_and_unlock_frees_every_server(ssh_env, open_fleet):
    r1_live_r2_staged(open_fleet, ssh_env)
    with open_fleet(ssh_env) as fleet:
        fleet.take_lock("release morning", token=uuid.uuid4().hex, kind="manual", minutes=60)

    with open_fleet(ssh_env) as fleet:
        fleet.go_live()
    assert lock_dirs(ssh_env) == list(SERVERS)  # the manual lock outlives the holder's own command
    with open_fleet(ssh_env, actor="other@x") as fleet:
        fleet.unlock(reason="ana is done")

    assert lock_dirs(ssh_env) == []
    assert read_slots(ssh_env) == everywhere("r2", "r1", None, "r1", "r2")


def test_a_lock_held_on_one_server_only_refuses_and_takes_it_nowhere(ssh_env, open_fleet, fake_clock):
    """All or none: the servers where the refused command did get the lock are freed again."""
    r1_live_r2_staged(open_fleet, ssh_env)
    hosts = make_hosts(ssh_env)
    web2 = ssh_env.servers[1]
    from releaser.locks import new_lock

    holder = new_lock("ana@build-01", "hotfix r41", fake_clock.now(), minutes=60, token="t0k", kind="manual")
    try:
        assert hosts["web-2"].run(remote.lock_argv(ssh_env.app_root(web2), holder.to_json())).stdout.splitlines()[0] == "taken"
    finally:
        for host in hosts.values():
            host.close()

    with open_fleet(ssh_env) as fleet, pytest.raises(LockHeld, match=r"lock held by ana@build-01 .* on web-2;"):
        fleet.go_live()

    assert lock_dirs(ssh_env) == ["web-2"]
    assert read_slots(ssh_env) == everywhere("r1", None, "r2", "r1", "r2")


def test_a_refused_deploy_leaves_no_app_root_it_made(sshd_farm, ssh_env, open_fleet, tmp_path):
    """QA: a deploy refused on web-2 (staging the live release) had made web-1's missing root, parents and all,
    to take its lock there; status then no longer said web-1 has no app root (a mistyped root looked deployed)."""
    with open_fleet(ssh_env) as fleet:
        fleet.stage(bundle("r1"))
        fleet.go_live()
    fresh = sshd_farm.server("web-1").root.parent / "new" / "app"
    servers = [s.model_copy(update={"root": str(fresh)}) if s.name == "web-1" else s for s in ssh_env.servers]
    moved = ssh_env.model_copy(update={"servers": servers})

    with open_fleet(moved) as fleet, pytest.raises(PlanRefused, match="r1 is the live release"):
        fleet.stage(bundle("r1"))

    assert not fresh.parent.exists()
    assert lock_dirs(moved) == []
    assert read_slots(ssh_env) == everywhere("r1", None, None, "r1")

    with open_fleet(moved) as fleet:  # a first deploy that goes through keeps the root it made
        fleet.stage(bundle("r2"))
    assert read_slots(moved)["web-1"] == SlotState(None, None, "r2", frozenset({"r2"})) and lock_dirs(moved) == []


# ---- hooks ----


HOOK_LOG = 'printf "%s %s %s\\n" "$0" "$RELEASER_SLOT" "$RELEASER_RELEASE_ID" >> "$RELEASER_ROOT/hooks.log"'


def test_hooks_get_the_release_id_and_slot_as_environment_variables(sshd_farm, tmp_path, open_fleet):
    env = ssh_environment_for(sshd_farm, tmp_path / "hooks.toml", extra=(
        "[hooks]\n"
        f"after_unpack = '{HOOK_LOG.replace(chr(36) + '0', 'unpack')}'\n"
        f"after_switch = '{HOOK_LOG.replace(chr(36) + '0', 'switch')}'\n"
    ))
    r1_live_r2_staged(open_fleet, env)
    with open_fleet(env) as fleet:
        fleet.go_live()

    for server in env.servers:
        log = (Path(str(env.app_root(server))) / "hooks.log").read_text().splitlines()
        assert log == ["unpack staging r1", "switch staging r1", "switch live r1",
                       "unpack staging r2", "switch staging r2", "switch live r2"], server.name
    assert read_slots(env) == everywhere("r2", "r1", None, "r1", "r2")


def test_a_hostile_release_id_never_reaches_a_server(ssh_env, open_fleet, tmp_path):
    """Release ids are refused before any command is built; values in env vars are never parsed by a shell."""
    hostile = tmp_path / "hostile"
    shutil.copytree(EXAMPLES / "r2", hostile)
    manifest = json.loads((hostile / "manifest.json").read_text())
    manifest["release_id"] = "r2;touch${IFS}/tmp/pwned-$(id -u)"
    (hostile / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleInvalid, match="release_id|release id"):
        read_bundle(hostile)
    root = Path(str(ssh_env.app_root(ssh_env.servers[0])))
    for build_argv in (remote.check_release_argv, remote.remove_release_argv):  # even past the bundle reader
        with pytest.raises(BundleInvalid, match="bad release id"):
            build_argv(ssh_env.app_root(ssh_env.servers[0]), manifest["release_id"], *(["0"] if build_argv is remote.check_release_argv else []))

    nasty = "$(touch pwned-1) `touch pwned-2`; touch pwned-3 \"' \n*"
    host = make_hosts(ssh_env)["web-1"]
    try:
        done = host.run(["sh", "-c", 'cd "$RELEASER_ROOT" && printf %s "$RELEASER_RELEASE_ID" > id'],
                        env={"RELEASER_RELEASE_ID": nasty, "RELEASER_ROOT": str(root)})
    finally:
        host.close()

    assert done.ok, done
    assert (root / "id").read_text() == nasty
    assert sorted(p.name for p in root.iterdir()) == ["id"]
    assert read_slots(ssh_env) == everywhere(None, None, None)


def test_a_stage_whose_after_unpack_hook_failed_unpacks_and_runs_it_again(sshd_farm, tmp_path, open_fleet):
    """QA: an after_unpack hook failing on web-2 left the release unpacked there; the same stage run again, as
    the message says, found it 'already on the server, verified' and staged it without running the hook."""
    broken = sshd_farm.server("web-2").root / "hook-broken"
    env = ssh_environment_for(sshd_farm, tmp_path / "hooks.toml", extra=(
        "[hooks]\n"
        f"after_unpack = '[ ! -e \"$RELEASER_ROOT/hook-broken\" ] && {HOOK_LOG.replace(chr(36) + '0', 'unpack')}'\n"))
    broken.touch()
    with open_fleet(env) as fleet, pytest.raises(FleetReverted, match="after-unpack hook") as refused:
        fleet.stage(bundle("r1"))
    assert "[hooks]" in refused.value.hint
    assert read_slots(env) == {name: SlotState(None, None, None, frozenset()) for name in SERVERS}

    broken.unlink()
    with open_fleet(env) as fleet:
        fleet.stage(bundle("r1"))
    for server in env.servers:
        assert (Path(str(env.app_root(server))) / "hooks.log").read_text().splitlines()[-1] == "unpack staging r1"
    assert read_slots(env) == everywhere(None, None, "r1", "r1")


def test_an_after_switch_hook_failing_on_one_server_puts_every_server_back(sshd_farm, tmp_path, open_fleet):
    web2_root = sshd_farm.server("web-2").root
    env = ssh_environment_for(sshd_farm, tmp_path / "hooks.toml", extra=(
        "[hooks]\n"
        f"""after_switch = '[ "$RELEASER_ROOT:$RELEASER_SLOT:$RELEASER_RELEASE_ID" != "{web2_root}:live:r2" ] || {{ echo "nginx: reload failed" >&2; exit 7; }}'\n"""
    ))
    r1_live_r2_staged(open_fleet, env)

    with open_fleet(env) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.go_live()

    assert read_slots(env) == everywhere("r1", None, "r2", "r1", "r2")
    message = str(failure.value)
    assert "web-2 (after-switch hook exited 7: nginx: reload failed)" in message
    assert "every server is back on r1" in message and "web-1 (" not in message and "web-3 (" not in message
    assert leftovers(env) == {name: [] for name in SERVERS}
    assert lock_dirs(env) == []


def test_an_after_switch_hook_failing_at_a_stage_says_staging_moved_back_not_live(sshd_farm, tmp_path, open_fleet):
    """Hooks run for a stage's switch of staging too: when one fails, the message is about staging (nothing the
    public sees was live), and every staging link is back where it was."""
    web2_root = sshd_farm.server("web-2").root
    env = ssh_environment_for(sshd_farm, tmp_path / "hooks.toml", extra=(
        "[hooks]\n"
        f"""after_switch = '[ "$RELEASER_ROOT:$RELEASER_SLOT" != "{web2_root}:staging" ] || {{ echo "cache warm-up failed" >&2; exit 3; }}'\n"""
    ))

    with open_fleet(env) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.stage(bundle("r1"))

    message = str(failure.value)
    assert "web-2 (after-switch hook exited 3: cache warm-up failed)" in message, message
    assert "every server's staging is back on nothing" in message and "was live" not in message, message
    assert {state.staging for state in read_slots(env).values()} == {None}
    assert lock_dirs(env) == []


# ---- host keys ----


@pytest.mark.parametrize("known_hosts", ["empty", "wrong-key"])  # a missing file is a config error: test_key_files.py
def test_host_key_checking_refuses_servers_it_cannot_verify_and_changes_nothing(sshd_farm, tmp_path, open_fleet, known_hosts):
    path = tmp_path / "known_hosts"
    if known_hosts == "empty":
        path.write_text("")
    elif known_hosts == "wrong-key":  # every server claims another server's key: a man in the middle
        lines = sshd_farm.known_hosts.read_text().splitlines()
        keys = [line.split(" ", 1)[1] for line in lines]
        path.write_text("".join(f"{line.split(' ', 1)[0]} {keys[(i + 1) % len(keys)]}\n" for i, line in enumerate(lines)))
    env = ssh_environment_for(sshd_farm, tmp_path / "env.toml")
    env = env.model_copy(update={"ssh": env.ssh.model_copy(update={"known_hosts": str(path)})})
    assert env.ssh.check_host_keys

    with open_fleet(env) as fleet, pytest.raises(HostUnreachable) as refusal:
        fleet.stage(bundle("r1"))

    message = str(refusal.value)
    assert message.startswith("web-1, web-2, web-3: cannot be reached safely")
    expected = {"empty": "not found in known_hosts",
                "wrong-key": "host key has changed since it was put in known_hosts"}[known_hosts]
    assert expected in message and "nothing was changed" in message
    assert read_slots(env) == everywhere(None, None, None)
    assert all(not any(s.root.iterdir()) for s in sshd_farm.servers)


def test_a_staged_release_without_its_manifest_is_a_refusal_not_a_server_down(sshd_farm, ssh_env, open_fleet):
    """The server answered ("no such file"): exit 3 naming the file and what to do, not exit 5 'did not answer'."""
    r1_live_r2_staged(open_fleet, ssh_env)
    for server in sshd_farm.servers:
        (server.root / "releases" / "r2" / "manifest.json").unlink()
    with open_fleet(ssh_env) as fleet, pytest.raises(PlanRefused) as refused:
        fleet.read_manifest("r2")
    assert refused.value.exit_code == 3 and "the staged release r2 lacks its manifest there" in str(refused.value)
    assert "manifest.json" in str(refused.value) and "No such file" in str(refused.value), str(refused.value)
