"""Faults injected into a real three-server sshd farm: the fleet ends "all new" or "all old", never mixed.

Faults come from a thin Host wrapper around the real SshHost of one server (hosts are injectable through
`connected(..., hosts=...)`), from the farm killing a server's sshd with its sessions, or from the server's
own disk (an immutable directory, a full file system). Every test reads every server's slots back from disk.
"""

from __future__ import annotations

import re

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path, PurePosixPath

import pytest

from conftest import EXAMPLES, read_slots, ssh_environment_for
from releaser.bundle import Bundle, read_bundle, seal_directory
from releaser.errors import Cancelled, FleetMixed, FleetReverted, HostUnreachable, LockHeld, PlanRefused, ReleaserError
from releaser.fleet import make_hosts
from releaser.slots import SlotState
from releaser.transport import Completed, Host

pytestmark = pytest.mark.ssh

SERVERS = ("web-1", "web-2", "web-3")
OLD = SlotState("r1", None, "r2", frozenset({"r1", "r2"}))  # r1 live, r2 staged: the morning of the release
NEW = SlotState("r2", "r1", None, frozenset({"r1", "r2"}))  # after go-live


@cache
def bundle(release_id: str) -> Bundle:
    return read_bundle(EXAMPLES / release_id)


def everywhere(state: SlotState) -> dict[str, SlotState]:
    return {name: state for name in SERVERS}


def release_morning(open_fleet, env) -> None:
    """r1 live and r2 staged on every server."""
    with open_fleet(env) as fleet:
        fleet.stage(bundle("r1"))
        fleet.go_live()
        fleet.stage(bundle("r2"))
    assert read_slots(env) == everywhere(OLD)


def r1_live(open_fleet, env) -> None:
    """r1 live on every server, nothing staged."""
    with open_fleet(env) as fleet:
        fleet.stage(bundle("r1"))
        fleet.go_live()
    assert read_slots(env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))


def script_of(argv: Sequence[str]) -> str | None:
    """The name of the releaser script an argv runs ("commit", "unpack", ...), from its $0."""
    return argv[3].removeprefix("releaser-") if len(argv) > 3 and list(argv[:2]) == ["sh", "-c"] else None


class Tripwire:
    """One server's real Host, with a fault that fires once: before (or after) the first command `when` picks,
    or instead of a plain `put`. Everything else goes straight to the real host."""

    def __init__(self, host: Host, *, when: Callable[[Sequence[str], Mapping[str, str] | None], bool] = lambda a, e: False,
                 before: Callable[[], None] | None = None, after: Callable[[], None] | None = None,
                 put: Callable[[Host, Path, PurePosixPath], None] | None = None) -> None:
        self.host, self.name = host, host.name
        self.when, self.before, self.after, self.put_instead = when, before, after, put
        self.fired = False

    def open(self) -> None:
        self.host.open()

    def reconnect(self, **kwargs) -> None:
        self.host.reconnect(**kwargs)

    def broken(self) -> str | None:
        return self.host.broken()

    def close(self) -> None:
        self.host.close()

    def read(self, remote: PurePosixPath) -> bytes:
        return self.host.read(remote)

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None) -> Completed:
        fire = not self.fired and self.when(argv, env)
        self.fired = self.fired or fire
        if fire and self.before:
            self.before()
        try:
            return self.host.run(argv, env=env, timeout=timeout)
        finally:
            if fire and self.after:
                self.after()

    def put(self, local: Path, remote: PurePosixPath, **kwargs) -> None:
        if self.put_instead and not self.fired:
            self.fired = True
            return self.put_instead(self.host, local, remote)
        return self.host.put(local, remote, **kwargs)


def hosts_with(env, name: str, **fault) -> dict[str, Host]:
    """Real SshHosts for every server of `env`, the named one wrapped in a Tripwire."""
    hosts = make_hosts(env)
    hosts[name] = Tripwire(hosts[name], **fault)
    return hosts


def complete_releases(env) -> dict[str, set[str]]:
    """Per server, the releases in releases/ whose every file passes the checksums the upload carried."""
    found = {}
    for server in env.servers:
        releases = Path(str(env.app_root(server))) / "releases"
        found[server.name] = set()
        for release in releases.iterdir() if releases.is_dir() else ():
            check = subprocess.run(["sha256sum", "--check", "--quiet", "--strict", ".releaser-sha256sums"],
                                   cwd=release, capture_output=True)
            assert check.returncode == 0, f"{server.name}: half a release in {release}: {check.stdout!r}"
            found[server.name].add(release.name)
    return found


def meta(env, name: str) -> Path:
    return Path(str(env.app_root(env.server(name)))) / ".releaser"


def lock_dirs(env) -> list[str]:
    return [s.name for s in env.servers if (meta(env, s.name) / "lock").exists()]


# ---- (a) a server dies between prepare and commit ----


def _stop_and_see_it_gone(sshd_farm, host, name: str) -> Callable[[], None]:
    """Kill the server's sshd, then wait until this client's connection to it has seen the end (so no byte of the next
    command can leave): the server died before its commit was sent."""
    def stop() -> None:
        sshd_farm.stop(name)
        transport = host._connection.client.get_transport()
        deadline = time.monotonic() + 10
        while transport.is_active() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not transport.is_active(), f"{name}'s connection still looked open 10 s after its sshd was killed"
    return stop


def test_a_server_dying_before_its_commit_was_sent_is_not_switched_and_the_others_go_back(sshd_farm, ssh_env, open_fleet,
                                                                                       tmp_path):
    """web-2 dies between prepare and commit, and the connection is closed before the commit could be written: it
    never got it, so it is known to be on r1. A plain revert (exit 6), not MIXED: no load balancer to drain."""
    release_morning(open_fleet, ssh_env)
    hosts = make_hosts(ssh_env)
    hosts["web-2"] = Tripwire(hosts["web-2"], when=lambda argv, env: script_of(argv) == "commit",
                              before=_stop_and_see_it_gone(sshd_farm, hosts["web-2"], "web-2"))

    with open_fleet(ssh_env, hosts=hosts) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.go_live()

    assert read_slots(ssh_env) == everywhere(OLD)  # web-2 never renamed; the others were put back
    message = str(failure.value)
    assert "go-live failed on web-2 (not sent, nothing moved there: lost the connection" in message
    assert "the connection was closed (OSError: Socket is closed)" in message or "SSH session not active" in message
    assert "every server is back on r1" in message and "MIXED" not in message
    assert failure.value.exit_code == 6
    last = json.loads((tmp_path / "journal.jsonl").read_text().splitlines()[-1])
    assert (last["action"], last["outcome"]) == ("go-live", "reverted")

    sshd_farm.restart("web-2")
    with open_fleet(ssh_env) as fleet:
        reports = {r.server: r for r in fleet.read_status()}
        assert {name: r.state for name, r in reports.items()} == everywhere(OLD)
        # the lost server still holds the failed go-live's own lock: it could not be freed while web-2 was down
        assert reports["web-2"].locked and reports["web-2"].lock.reason == "go-live"
        with pytest.raises(LockHeld, match=r'reason: "go-live".* on web-2;.*invoke unlock'):
            fleet.go_live()
        fleet.unlock(reason="web-2 is back after the failed go-live")
        fleet.go_live()
    assert read_slots(ssh_env) == everywhere(NEW)
    assert lock_dirs(ssh_env) == []


def test_a_server_dying_while_the_go_live_waits_for_the_second_stops_it_before_anyone_moves(sshd_farm, ssh_env,
                                                                                              open_fleet, tmp_path):
    """web-2 dies after prepare, while a scheduled go-live waits for T (QA: the others committed at T and were
    put back 70 ms later). Its connection is known gone at the second, so no server is told to switch: exit 5."""
    release_morning(open_fleet, ssh_env)
    hosts = make_hosts(ssh_env)
    with open_fleet(ssh_env, hosts=hosts) as fleet, pytest.raises(HostUnreachable) as failure:
        fleet.go_live(before_commit=_stop_and_see_it_gone(sshd_farm, hosts["web-2"], "web-2"))

    assert read_slots(ssh_env) == everywhere(OLD)
    message = str(failure.value)
    assert "web-2: was lost before go-live's switch, so no server was told to switch" in message
    assert message.count("nothing was switched") == 1 and failure.value.exit_code == 5
    last = json.loads((tmp_path / "journal.jsonl").read_text().splitlines()[-1])
    assert (last["action"], last["outcome"]) == ("go-live", "refused")
    assert "renamed_at" not in last and "switched_at" not in last


def _web2_cut_right_after_its_rename(sshd_farm, tmp_path, open_fleet, cut: Callable[[], None]) -> tuple:
    """r1 live, r2 staged, an after-switch hook; web-2's hosts entry runs `cut` right after it renames live to r2,
    so its hook never runs and the fleet must revert. Returns (environment, hosts)."""
    env = ssh_environment_for(sshd_farm, tmp_path / "hooked.toml", extra='[hooks]\nafter_switch = "true"')
    release_morning(open_fleet, env)
    return env, hosts_with(env, "web-2", when=lambda argv, e: script_of(argv) == "commit" and "live=r2" in argv, after=cut)


def test_a_broken_connection_to_a_server_still_up_is_reconnected_and_put_back(sshd_farm, tmp_path, open_fleet):
    """web-2 renames live, then its sessions die (its sshd stays up), so its after-switch hook cannot run: the
    revert opens a new connection, puts web-2 back like the others, frees its lock: a plain revert, not MIXED."""
    env, hosts = _web2_cut_right_after_its_rename(sshd_farm, tmp_path, open_fleet, lambda: sshd_farm.drop_sessions("web-2"))
    with open_fleet(env, hosts=hosts) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.go_live()

    assert read_slots(env) == everywhere(OLD)
    assert "go-live failed on web-2 (lost the connection" in str(failure.value)
    assert "every server is back on r1" in str(failure.value)
    assert lock_dirs(env) == []


def _mixed_by_a_lost_server(sshd_farm, tmp_path, open_fleet):
    """web-2 renames live, then dies before it can say so (its after-switch hook never runs); the others revert."""
    env, hosts = _web2_cut_right_after_its_rename(sshd_farm, tmp_path, open_fleet, lambda: sshd_farm.stop("web-2"))
    with open_fleet(env, hosts=hosts) as fleet, pytest.raises(FleetMixed) as failure:
        fleet.go_live()
    return env, str(failure.value)


def test_a_server_dying_right_after_its_rename_is_named_and_the_reachable_ones_are_all_old(sshd_farm, tmp_path, open_fleet):
    """Once web-2 is back, status shows the mix and go-live refuses it; rollback is the repair (next test)."""
    env, message = _mixed_by_a_lost_server(sshd_farm, tmp_path, open_fleet)

    slots = read_slots(env)
    assert {name: slots[name] for name in ("web-1", "web-3")} == {"web-1": OLD, "web-3": OLD}
    assert slots["web-2"] == NEW  # renamed before it died: nobody could put it back
    assert "web-2 did not answer, so it may still serve r2; the fleet may be MIXED" in message  # never "every server is back"
    # the ones put back served r2 meanwhile, and the message says for how long at most (as a REVERTED one does)
    assert re.search(r"web-1, web-3 are back on r1 \(r2 was live there for at most \d+\.\d\d s, from the commit to the "
                     r"end of the revert\)", message), message

    sshd_farm.restart("web-2")
    with open_fleet(env) as fleet:
        reports = {r.server: r for r in fleet.read_status()}
        assert reports["web-2"].state == NEW and reports["web-1"].state == reports["web-3"].state == OLD  # status shows the mix
        fleet.unlock(reason="web-2 is back")
        with pytest.raises(PlanRefused, match=r"servers disagree on staging \(web-1 r2, web-2 empty, web-3 r2\)"):
            fleet.go_live()
    assert read_slots(env) == {"web-1": OLD, "web-2": NEW, "web-3": OLD}  # the refusals changed nothing


def test_rollback_brings_back_a_fleet_mixed_by_a_lost_server(sshd_farm, tmp_path, open_fleet):
    """Rollback puts the server that renamed before dying back on r1, like the others; they are not touched."""
    env, _ = _mixed_by_a_lost_server(sshd_farm, tmp_path, open_fleet)
    sshd_farm.restart("web-2")
    with open_fleet(env) as fleet:
        fleet.unlock(reason="web-2 is back")
        result = fleet.rollback(reason="web-2 was left on r2")
    assert {state.live for state in read_slots(env).values()} == {"r1"}
    assert (result.previous, result.release) == ("r2", "r1")  # what web-2 was switched from, not web-1's "r1 -> r1"


# ---- (b) a server killed during the upload ----


@pytest.fixture
def heavy_r2(tmp_path) -> Bundle:
    """r2 plus 24 MB of incompressible data, so uploading and unpacking take long enough to be interrupted."""
    source = tmp_path / "heavy-r2"
    shutil.copytree(EXAMPLES / "r2", source)
    (source / "manifest.json").unlink()
    with open(source / "public" / "data" / "ballast.bin", "wb") as out:
        out.write(os.urandom(24 * 1024 * 1024))
    return seal_directory(source, "r2")


def kill_when(sshd_farm, name: str, seen: Callable[[], bool], deadline_s: float = 30.0) -> threading.Thread:
    """Watch from the side and kill the server's sshd (sessions included) the moment `seen()` holds."""
    def watch() -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if seen():
                sshd_farm.stop(name)
                return
            time.sleep(0.001)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def _partial(directory: Path, prefix: str, *, min_bytes: int = 0) -> bool:
    """True when `directory` holds an entry named prefix* (of at least `min_bytes`); tolerates entries vanishing."""
    try:
        return any(p.name.startswith(prefix) and (not min_bytes or p.stat().st_size >= min_bytes) for p in directory.iterdir())
    except FileNotFoundError:
        return False


def hosts_over(env, way: str) -> dict[str, Host]:
    """Real SshHosts uploading through the OpenSSH client ("openssh") or, as without one, over SFTP ("sftp")."""
    hosts = make_hosts(env)
    for host in hosts.values():
        assert host.ssh_client is not None, "the tests need the OpenSSH client (openssh-client)"
        if way == "sftp":
            host.ssh_client = None
    return hosts


def _streamed(directory: Path, min_bytes: int) -> bool:
    """True once a streamed upload has unpacked `min_bytes` of r2's ballast in its .releaser/unpack-* directory."""
    try:
        return any((p / "release" / "public" / "data" / "ballast.bin").stat().st_size >= min_bytes
                   for p in directory.iterdir() if p.name.startswith("unpack-r2-") and (p / "release" / "public" / "data" / "ballast.bin").exists())
    except FileNotFoundError:
        return False


KILL_MOMENTS = {  # way, moment: what the watcher waits for before it kills web-2, what the failure says, the debris left
    ("sftp", "mid-transfer"): (lambda d: _partial(d, "upload-r2-", min_bytes=1 << 20), "failed: the connection was closed", "upload-r2-"),
    ("sftp", "mid-unpack"): (lambda d: _partial(d, "unpack-r2-"), "while running releaser-unpack", "unpack-r2-"),
    ("openssh", "mid-stream"): (lambda d: _streamed(d, 1 << 20), "failed: the connection was closed", "unpack-r2-"),
}


@pytest.mark.parametrize("way, moment", sorted(KILL_MOMENTS))
def test_a_server_killed_during_the_upload_leaves_no_half_release_and_no_staging_moved(
        sshd_farm, ssh_env, open_fleet, heavy_r2, way, moment):
    r1_live(open_fleet, ssh_env)
    web2 = meta(ssh_env, "web-2")
    seen, said, debris = KILL_MOMENTS[way, moment]
    hosts = hosts_over(ssh_env, way)
    watcher = kill_when(sshd_farm, "web-2", lambda: seen(web2))

    with open_fleet(ssh_env, hosts=hosts) as fleet, pytest.raises(HostUnreachable) as failure:
        fleet.stage(heavy_r2)
    watcher.join()

    assert sshd_farm.server("web-2").pid is None, "the watcher never saw the moment to kill web-2"
    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    assert complete_releases(ssh_env) == {name: {"r1"} for name in SERVERS}
    message = str(failure.value)  # a server that stopped answering: exit 5 and the server-failure runbook
    assert message.startswith("web-2: did not answer while staging r2 (") and "no server's staging changed" in message
    assert failure.value.exit_code == 5 and message.count("invoke runbook server-failure") == 1  # said once, at the end
    assert said in message
    assert _partial(web2, debris)  # killed mid-way indeed: the half-written file or directory is still there
    if moment == "mid-transfer":
        upload = next(p for p in web2.iterdir() if p.name.startswith("upload-") and p.name.endswith(".tar.gz"))
        assert upload.stat().st_size < 24 * 1024 * 1024

    sshd_farm.restart("web-2")
    with open_fleet(ssh_env, hosts=hosts_over(ssh_env, way)) as fleet:
        fleet.unlock(reason="web-2 died while staging")
        assert not _partial(web2, debris) and lock_dirs(ssh_env) == []  # the forced unlock took what the dead command left
        fleet.stage(heavy_r2)  # the same command again, once the server is back, converges
    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, "r2", frozenset({"r1", "r2"})))
    assert complete_releases(ssh_env) == {name: {"r1", "r2"} for name in SERVERS}
    assert [p.name for p in web2.iterdir() if p.name.startswith(("upload-", "unpack-"))] == []  # the lock's round trip cleaned


@pytest.mark.parametrize("way", ["openssh", "sftp"])
def test_a_connection_reset_mid_upload_leaves_no_upload_debris_on_a_server_still_up(sshd_farm, ssh_env, open_fleet,
                                                                                     heavy_r2, way):
    """web-2's sessions killed mid-upload (the server itself stays up): the stage fails naming web-2, and the finish
    step, on a new connection, removes what the cut upload left (QA: an upload-*.sha256sums stayed behind)."""
    r1_live(open_fleet, ssh_env)
    web2 = meta(ssh_env, "web-2")
    moving = {"sftp": lambda: _partial(web2, "upload-r2-", min_bytes=1 << 20), "openssh": lambda: _streamed(web2, 1 << 20)}[way]

    def cut() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not moving():
            time.sleep(0.001)
        sshd_farm.drop_sessions("web-2")
    cutter = threading.Thread(target=cut, daemon=True)
    cutter.start()
    with open_fleet(ssh_env, hosts=hosts_over(ssh_env, way)) as fleet, pytest.raises(ReleaserError) as failure:
        fleet.stage(heavy_r2)
    cutter.join()

    assert "web-2" in str(failure.value) and "no server's staging changed" in str(failure.value)
    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    assert [p.name for p in web2.iterdir() if p.name.startswith(("upload-", "unpack-"))] == []
    assert lock_dirs(ssh_env) == []


@pytest.mark.parametrize("way", ["openssh", "sftp"])
def test_ctrl_c_during_the_upload_stops_every_server_and_leaves_nothing_behind(sshd_farm, ssh_env, open_fleet, heavy_r2,
                                                                                  tmp_path, way):
    """A real SIGINT mid-upload: the uploads stop at their next chunk, what was unpacked is removed, the lock is
    freed and the journal says so; no server goes on working after the command has said it stopped."""
    r1_live(open_fleet, ssh_env)
    uploading = meta(ssh_env, "web-2")
    moving = {"sftp": lambda: _partial(uploading, "upload-r2-", min_bytes=256 * 1024),
              "openssh": lambda: _streamed(uploading, 256 * 1024)}[way]
    sent = threading.Event()

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not moving():
            time.sleep(0.001)
        sent.set()
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    with open_fleet(ssh_env, hosts=hosts_over(ssh_env, way)) as fleet, \
            pytest.raises(Cancelled, match=r"staging r2 stopped \(Ctrl-C\); what it had uploaded or unpacked was removed"):
        presser.start()
        fleet.stage(heavy_r2)
        presser.join()  # the upload beat the watcher: let the interrupt land here rather than in a later test
    assert sent.is_set()

    time.sleep(0.5)  # nothing may still be running on the servers: what is there now stays there
    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    for server in SERVERS:
        assert [p.name for p in meta(ssh_env, server).iterdir() if p.name.startswith(("upload-", "unpack-"))] == []
    assert complete_releases(ssh_env) == {name: {"r1"} for name in SERVERS}
    assert lock_dirs(ssh_env) == []
    last = json.loads((tmp_path / "journal.jsonl").read_text().splitlines()[-1])
    assert (last["action"], last["outcome"]) == ("stage", "interrupted")


# ---- (c) a server that cannot store the release ----


@pytest.fixture
def immutable():
    """Make a directory immutable (chattr +i stops root too) for the length of a test; skip where unsupported."""
    made: list[Path] = []

    def make(path: Path) -> None:
        if shutil.which("chattr") is None:
            pytest.skip("chattr not found (e2fsprogs)")
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"chattr +i does not work here: {done.stderr.strip()}")
        made.append(path)
    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_server_whose_releases_dir_is_unwritable_gets_nothing_staged_anywhere(sshd_farm, ssh_env, open_fleet, immutable):
    r1_live(open_fleet, ssh_env)
    immutable(sshd_farm.server("web-2").root / "releases")

    with open_fleet(ssh_env) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.stage(bundle("r2"))

    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    assert complete_releases(ssh_env) == {name: {"r1"} for name in SERVERS}
    message = str(failure.value)
    assert message.startswith("staging r2 failed on web-2 (") and "web-1" not in message and "web-3" not in message
    assert "web-2 (cannot move r2 into releases/ (disk full? read-only? permissions?))" in message
    assert "no server's staging changed" in message
    assert lock_dirs(ssh_env) == []


def test_a_stage_refused_at_its_switch_removes_the_release_it_unpacked_everywhere(sshd_farm, ssh_env, open_fleet,
                                                                                    immutable):
    """web-2's app root is immutable: r2 uploads and unpacks everywhere, then the switch's prepare is refused there;
    no server keeps the r2 this stage unpacked (a 200 MB release would otherwise sit on every server)."""
    r1_live(open_fleet, ssh_env)
    immutable(sshd_farm.server("web-2").root)

    with open_fleet(ssh_env) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.stage(bundle("r2"))

    assert "web-2 (app root" in str(failure.value) and "nothing was switched" in str(failure.value)
    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    assert complete_releases(ssh_env) == {name: {"r1"} for name in SERVERS}
    assert lock_dirs(ssh_env) == []


@pytest.fixture
def tiny_disk():
    """Mount a small tmpfs over a directory for the length of a test; skip where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> None:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_releases_dir_mounted_apart_and_too_small_keeps_no_half_copy(sshd_farm, ssh_env, open_fleet, tiny_disk,
                                                                        heavy_r2):
    """releases/ on its own small file system: the final move copies and runs out of room; the half copy is removed,
    so the release id stays usable (no 'the r2 already on web-2 is not this bundle's files') and prune cannot keep it."""
    r1_live(open_fleet, ssh_env)
    releases = sshd_farm.server("web-2").root / "releases"
    kept = {p.name: p for p in releases.iterdir()}
    moved_aside = releases.with_name("releases.kept")
    releases.rename(moved_aside)
    releases.mkdir()
    tiny_disk(releases, "12m")  # room for r1 (copied back below) but not for r2's 24 MB
    for name in kept:
        subprocess.run(["cp", "-a", str(moved_aside / name), str(releases / name)], check=True)

    with open_fleet(ssh_env) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.stage(heavy_r2)

    message = str(failure.value)
    assert "web-2 (cannot move r2 into releases/ (disk full? read-only? permissions?))" in message, message
    assert sorted(p.name for p in releases.iterdir()) == sorted(kept)  # no half r2
    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    assert lock_dirs(ssh_env) == []


def test_a_server_with_a_full_disk_gets_nothing_staged_anywhere(sshd_farm, ssh_env, open_fleet, tiny_disk):
    """So full that not even the lock's info.json fits: the lock is refused there, freed everywhere, nothing staged."""
    root = sshd_farm.server("web-2").root
    tiny_disk(root, "512k")
    r1_live(open_fleet, ssh_env)
    subprocess.run(["dd", "if=/dev/zero", f"of={root / 'ballast'}", "bs=4k"], capture_output=True)  # until ENOSPC
    with open_fleet(ssh_env) as fleet:
        assert {r.server: r.free_bytes for r in fleet.read_status(with_health=False)}["web-2"] == 0

    with open_fleet(ssh_env) as fleet, pytest.raises(HostUnreachable) as failure:
        fleet.stage(bundle("r2"))

    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    assert complete_releases(ssh_env) == {name: {"r1"} for name in SERVERS}
    assert str(failure.value) == (f"web-2: cannot take the lock: cannot write the lock on {root}: is its disk full?; "
                                  "nothing was changed; check the server, then run the command again")
    assert lock_dirs(ssh_env) == []


def test_a_server_with_room_for_the_lock_but_not_the_release_gets_nothing_staged_anywhere(sshd_farm, ssh_env, open_fleet, tiny_disk):
    """The lock fits, the release does not: the upload fails there, nothing is staged anywhere, no lock stays."""
    root = sshd_farm.server("web-2").root
    tiny_disk(root, "512k")
    r1_live(open_fleet, ssh_env)
    ballast = root / "ballast"
    subprocess.run(["dd", "if=/dev/zero", f"of={ballast}", "bs=4k"], capture_output=True)  # until ENOSPC
    os.truncate(ballast, ballast.stat().st_size - 4096)  # one page: room for the lock's info.json, none for r2

    with open_fleet(ssh_env) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.stage(bundle("r2"))

    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    assert complete_releases(ssh_env) == {name: {"r1"} for name in SERVERS}
    message = str(failure.value)  # the others did not fail: at most their uploads were stopped
    assert message.startswith("staging r2 failed on web-2 (") and "web-1 (" not in message and "web-3 (" not in message
    assert "(is its disk full?)" in message and "no server's staging changed" in message, message
    assert lock_dirs(ssh_env) == []


@pytest.mark.parametrize("way", ["openssh", "sftp"])
def test_a_server_failing_at_its_first_byte_stops_the_other_uploads(sshd_farm, ssh_env, open_fleet, tiny_disk, heavy_r2,
                                                                    way):
    """QA, 20 servers: a full disk on one failed the stage, yet the other 19 sent all 200 MB (and then removed it),
    30 s more. The others now stop at their next chunk, and the message says so rather than calling them failed."""
    root = sshd_farm.server("web-2").root
    tiny_disk(root, "512k")
    r1_live(open_fleet, ssh_env)
    ballast = root / "ballast"
    subprocess.run(["dd", "if=/dev/zero", f"of={ballast}", "bs=4k"], capture_output=True)  # until ENOSPC
    os.truncate(ballast, ballast.stat().st_size - 4096)  # room for the lock's info.json, none for r2's 24 MB

    with open_fleet(ssh_env, hosts=hosts_over(ssh_env, way)) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.stage(heavy_r2)

    message = str(failure.value)
    assert message.startswith("staging r2 failed on web-2 (") and "web-1 (" not in message and "web-3 (" not in message
    assert "; the uploads to web-1, web-3 were stopped; no server's staging changed" in message, message
    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    assert complete_releases(ssh_env) == {name: {"r1"} for name in SERVERS}
    for server in SERVERS:
        assert [p.name for p in meta(ssh_env, server).iterdir() if p.name.startswith(("upload-", "unpack-"))] == []
    assert lock_dirs(ssh_env) == []


@pytest.mark.parametrize("way", ["openssh", "sftp"])
def test_an_upload_that_fills_the_disk_is_removed_again(sshd_farm, ssh_env, open_fleet, tiny_disk, heavy_r2, way):
    """The part-written archive (or, streamed, the part-unpacked release) does not stay behind holding the disk full."""
    tiny_disk(sshd_farm.server("web-2").root, "2m")
    r1_live(open_fleet, ssh_env)
    with open_fleet(ssh_env, hosts=hosts_over(ssh_env, way)) as fleet, \
            pytest.raises(FleetReverted, match=r"staging r2 failed on web-2 \(") as failure:
        fleet.stage(heavy_r2)
    if way == "openssh":  # tar's own words, not "corrupt": the whole stream was still hashed, and matched
        assert "web-2 (cannot unpack r2: tar: " in str(failure.value) and "No space left on device (disk full?))" in str(failure.value)

    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    assert [p.name for p in meta(ssh_env, "web-2").iterdir() if p.name.startswith(("upload-", "unpack-"))] == []
    with open_fleet(ssh_env) as fleet:
        assert {r.server: r.free_bytes for r in fleet.read_status(with_health=False)}["web-2"] > 1024 * 1024


# ---- (d) a corrupt upload ----


def test_an_upload_corrupted_on_the_way_is_refused_by_the_server_and_nothing_is_staged(ssh_env, open_fleet, tmp_path):
    r1_live(open_fleet, ssh_env)

    def put_corrupted(host: Host, local: Path, remote: PurePosixPath) -> None:
        data = bytearray(local.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit, in the middle of the archive
        flipped = tmp_path / "flipped.tar.gz"
        flipped.write_bytes(bytes(data))
        host.put(flipped, remote)

    with open_fleet(ssh_env, hosts=hosts_with(ssh_env, "web-2", put=put_corrupted)) as fleet, \
            pytest.raises(FleetReverted) as failure:
        fleet.stage(bundle("r2"))

    assert read_slots(ssh_env) == everywhere(SlotState("r1", None, None, frozenset({"r1"})))
    assert complete_releases(ssh_env) == {name: {"r1"} for name in SERVERS}
    assert "staging r2 failed on web-2 (upload of r2 arrived corrupt (sha256 differs))" in str(failure.value)
    assert not _partial(meta(ssh_env, "web-2"), "upload-") and not _partial(meta(ssh_env, "web-2"), "unpack-")
    assert lock_dirs(ssh_env) == []


# ---- (e) a commit failing on one server ----


def test_a_commit_failing_on_one_server_puts_every_other_server_back(sshd_farm, ssh_env, open_fleet):
    """Between prepare and commit, web-2's prepared link disappears, so its rename fails."""
    release_morning(open_fleet, ssh_env)
    prepared = meta(ssh_env, "web-2") / "next-live"
    hosts = hosts_with(ssh_env, "web-2", when=lambda argv, env: script_of(argv) == "commit", before=prepared.unlink)

    with open_fleet(ssh_env, hosts=hosts) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.go_live()

    assert read_slots(ssh_env) == everywhere(OLD)
    message = str(failure.value)
    assert ("go-live failed on web-2 (commit failed: the prepared link .releaser/next-live is gone (removed since "
            "prepare); nothing was switched here)") in message
    assert "every server is back on r1" in message and "web-1 (" not in message and "web-3 (" not in message
    assert lock_dirs(ssh_env) == []
    assert not any(_partial(meta(ssh_env, name), "next-") or _partial(meta(ssh_env, name), "back-") for name in SERVERS)


def test_an_app_root_made_immutable_before_commit_is_refused_there_and_the_fleet_reverted(sshd_farm, ssh_env, open_fleet,
                                                                                         immutable):
    """chattr +i on web-2's app root between prepare and commit: staging cannot be removed, so nothing is renamed
    there. The fleet is REVERTED (not MIXED): web-2 is as it was, the others are back, and it says so."""
    release_morning(open_fleet, ssh_env)
    root = sshd_farm.server("web-2").root
    hosts = hosts_with(ssh_env, "web-2", when=lambda argv, env: script_of(argv) == "commit", before=lambda: immutable(root))
    with open_fleet(ssh_env, hosts=hosts) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.go_live()

    assert read_slots(ssh_env) == everywhere(OLD)
    message = str(failure.value)
    assert "web-2 (commit failed: cannot remove staging (is the app root read-only or immutable?); nothing was switched here)" in message
    assert "every server is back on r1" in message and "MIXED" not in message
    assert lock_dirs(ssh_env) == []


def test_a_live_slot_turned_into_a_directory_before_commit_is_reported_mixed_and_the_others_go_back(sshd_farm, ssh_env, open_fleet):
    """Someone replaces web-2's live link by a real directory between prepare and commit: mv -T cannot rename
    over it, and cannot put it back either. The fleet says MIXED, names web-2, and every other server is old."""
    release_morning(open_fleet, ssh_env)
    live = sshd_farm.server("web-2").root / "live"

    def replace_live_by_a_directory() -> None:
        live.unlink()
        (live / "public").mkdir(parents=True)
        (live / "public" / "index.html").write_text("hand-made\n")

    hosts = hosts_with(ssh_env, "web-2", when=lambda argv, env: script_of(argv) == "commit", before=replace_live_by_a_directory)
    with open_fleet(ssh_env, hosts=hosts) as fleet, pytest.raises(FleetMixed) as failure:
        fleet.go_live()

    slots = read_slots(ssh_env)
    assert {name: slots[name] for name in ("web-1", "web-3")} == {"web-1": OLD, "web-3": OLD}
    # web-2: live is still the hand-made directory; every other slot its commit had moved is back as it was
    assert slots["web-2"] == SlotState(None, None, "r2", frozenset({"r1", "r2"}))
    assert (live / "public" / "index.html").read_text() == "hand-made\n"
    message = str(failure.value)
    assert "cannot overwrite directory 'live'" in message and "web-2 could not be put back" in message
    assert "the fleet is MIXED" in message and "invoke runbook rollback" in message
    assert lock_dirs(ssh_env) == []


# ---- Ctrl-C twice while the lock is being taken ----


@pytest.mark.parametrize(("slow", "said"), [
    (0.6, "the lock was freed, and nothing was switched"),
    (3.5, "web-2 had not ended the step that takes the lock when the wait stopped (Ctrl-C again stopped the wait "
          "for it): it may still hold the lock"),
], ids=["lock-step-ends-soon", "lock-step-still-busy"])
def test_ctrl_c_twice_while_the_lock_is_taken_frees_it_after_it_was_taken_or_says_where_it_may_be(
        sshd_farm, ssh_env, open_fleet, slow, said):
    """QA: the second Ctrl-C stopped the wait for a lock step still under way, the lock was freed before that step
    took it, and the message said "the lock was freed" while web-4 kept it. Now the command lets a lock step under
    way end (2 s at most) before freeing, and names a server whose step was still busy."""
    release_morning(open_fleet, ssh_env)
    hosts = hosts_with(ssh_env, "web-2", when=lambda argv, env: script_of(argv) == "lock", before=lambda: time.sleep(slow))

    def press_twice() -> None:
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_twice, daemon=True)
    with open_fleet(ssh_env, hosts=hosts) as fleet, pytest.raises(Cancelled) as cancelled:
        presser.start()
        fleet.go_live()
    presser.join()
    assert said in str(cancelled.value), str(cancelled.value)
    time.sleep(slow)  # web-2's lock step, if still under way, has ended by now: what is on disk stays
    assert read_slots(ssh_env) == everywhere(OLD)
    assert lock_dirs(ssh_env) == ([] if slow < 2 else ["web-2"])
