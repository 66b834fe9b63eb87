"""Deadlines and Ctrl-C on a real sshd farm reached through TCP relays the tests control.

A silent drop (packets vanish, nothing is closed) is the fault that once hung every command: here each one
must end within its deadline, name the silent server, and leave every server that answers unlocked, without
temporary links, all on one release. Ctrl-C while the lock is being taken must free it everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import PROJECT, free_ports, read_slots, write_environment
from releaser.config import load_environment
from releaser.fleet import make_hosts
from releaser.errors import Cancelled, FleetMixed, FleetReverted, HostUnreachable
from releaser.slots import SlotState
from tcpproxy import TcpProxy
from test_ssh_faults import NEW, OLD, _streamed, bundle, hosts_with, script_of
from test_ssh_faults import heavy_r2  # noqa: F401  (fixture)

pytestmark = pytest.mark.ssh

DEADLINES = """
[deadlines]
step = 3.0
prepare = 4.0
commit = 2.0
verify = 5.0
revert = 3.0
keepalive = 1.0
"""
# the longest a command may take with one silent server: a step's deadline, then one reconnect attempt
# (connect_timeout 2 s: the relay accepts, but no banner ever comes), then the cleanup's own step
BOUND_SECONDS = 3.0 + 2.0 + 3.0 + 6.0


@pytest.fixture
def relays(sshd_farm):
    """One TCP relay per farm server, closed after the test."""
    proxies = {server.name: TcpProxy(server.port) for server in sshd_farm.servers}
    yield proxies
    for proxy in proxies.values():
        proxy.close()


def relayed_environment(farm, proxies: dict[str, TcpProxy], path: Path):
    """An SSH environment whose servers are reached through the relays, host keys checked, short deadlines."""
    known = path.parent / "relay_known_hosts"
    lines = []
    for line in farm.known_hosts.read_text().splitlines():
        address, key = line.split(" ", 1)
        server = next(s for s in farm.servers if address == f"[{s.host}]:{s.port}")
        lines.append(f"[127.0.0.1]:{proxies[server.name].port} {key}")
    known.write_text("\n".join(lines) + "\n")
    ports = free_ports(2 * len(farm.servers))
    servers = [{"name": s.name, "host": "127.0.0.1", "port": proxies[s.name].port, "root": str(s.root),
                "live_url": f"http://127.0.0.1:{ports[2 * i]}", "staging_url": f"http://127.0.0.1:{ports[2 * i + 1]}"}
               for i, s in enumerate(farm.servers)]
    ssh = f'user = "{farm.user}"\nkey_file = "{farm.key_file}"\nknown_hosts = "{known}"\nconnect_timeout = 2.0\n'
    write_environment(path, servers=servers, transport="ssh", ssh=ssh, extra=DEADLINES)
    return load_environment(str(path), PROJECT)


def morning(open_fleet, env) -> None:
    """r1 live and r2 staged on every server."""
    with open_fleet(env) as fleet:
        fleet.stage(bundle("r1"))
        fleet.go_live()
        fleet.stage(bundle("r2"))
    assert set(read_slots(env).values()) == {OLD}


def timed_go_live(open_fleet, env, hosts, expected: type[Exception]) -> tuple[Exception, float]:
    """Run a go-live that must raise `expected`; return the error and the seconds the command took."""
    started = time.monotonic()
    with open_fleet(env, hosts=hosts) as fleet, pytest.raises(expected) as failure:
        fleet.go_live()
    return failure.value, time.monotonic() - started


def leftovers(env) -> dict[str, list[str]]:
    """Per server, the lock and temporary links a command left in .releaser/."""
    found = {}
    for server in env.servers:
        meta = Path(str(env.app_root(server))) / ".releaser"
        found[server.name] = sorted(p.name for p in meta.iterdir()
                                    if p.name == "lock" or p.name.startswith(("next-", "back-", "upload-", "unpack-", "armed-", "tick-")))
    return found


def journal_events(tmp_path) -> list[tuple[str, str]]:
    path = tmp_path / "journal.jsonl"
    return [(e["action"], e["outcome"]) for e in map(json.loads, path.read_text().splitlines())] if path.exists() else []


def test_a_silent_drop_while_the_lock_is_taken_costs_one_deadline_and_changes_nothing(sshd_farm, relays, tmp_path, open_fleet):
    """web-2 goes silent just as go-live takes the lock (which also prepares): the command ends within its
    deadline, names web-2, frees the lock on the others and switches nothing."""
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    morning(open_fleet, env)
    hosts = hosts_with(env, "web-2", when=lambda argv, e: script_of(argv) == "lock", before=relays["web-2"].drop)

    error, seconds = timed_go_live(open_fleet, env, hosts, HostUnreachable)

    assert seconds < BOUND_SECONDS, f"took {seconds:.1f} s"
    message = str(error)
    assert message.startswith("web-2: did not answer while the lock was being taken") and "no answer within 3 s" in message
    assert "it may hold this command's lock now; nothing was switched" in message  # it may have taken it: unknown
    relays["web-2"].heal()
    assert set(read_slots(env).values()) == {OLD}
    left = leftovers(env)
    assert left["web-1"] == [] and left["web-3"] == []


def test_a_connection_reset_while_the_lock_is_taken_frees_it_over_a_new_connection(sshd_farm, relays, tmp_path, open_fleet):
    """web-2's connection is reset as go-live takes the lock: web-2 is still up, so the lock is freed there over a
    new connection (a lock left behind would refuse the on-call's re-run), and the re-run goes live."""
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    morning(open_fleet, env)
    hosts = hosts_with(env, "web-2", when=lambda argv, e: script_of(argv) == "lock", before=relays["web-2"].reset)

    error, seconds = timed_go_live(open_fleet, env, hosts, HostUnreachable)

    message = str(error)
    assert message.startswith("web-2: the connection broke while the lock was being taken"), message
    assert "over a new connection web-2 was left without this command's lock, and nothing was switched" in message
    assert error.hint == "run the command again"
    assert set(read_slots(env).values()) == {OLD}
    assert leftovers(env) == {name: [] for name in ("web-1", "web-2", "web-3")}
    with open_fleet(env) as fleet:
        fleet.go_live()
    assert set(read_slots(env).values()) == {NEW}


def test_a_connection_reset_after_the_last_byte_leaves_no_copy_of_the_release_on_that_server(sshd_farm, relays, tmp_path,
                                                                                              open_fleet, heavy_r2):
    """web-2's relay resets every connection once all of r2 has streamed into it, while the server checks it (a
    rebooted middlebox; web-2 stays up). The server may have finished and renamed r2 into releases/ without this
    machine hearing of it: the failed stage removes r2 there too, over a new connection, as on the others.
    (QA: the r2 web-2 had finished stayed on its disk, a release no slot named.)"""
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    with open_fleet(env) as fleet:
        fleet.stage(bundle("r1"))
        fleet.go_live()
    web2 = Path(str(env.app_root(env.server("web-2")))) / ".releaser"

    def cut() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _streamed(web2, 24 * 1024 * 1024):
            time.sleep(0.001)
        relays["web-2"].reset()
    cutter = threading.Thread(target=cut, daemon=True)
    cutter.start()
    with open_fleet(env) as fleet, pytest.raises(HostUnreachable) as failure:
        fleet.stage(heavy_r2)
    cutter.join()

    message = str(failure.value)
    assert message.startswith("web-2: ") and "no server's staging changed" in message, message
    assert set(read_slots(env).values()) == {SlotState("r1", None, None, frozenset({"r1"}))}
    assert leftovers(env) == {name: [] for name in ("web-1", "web-2", "web-3")}


@pytest.mark.parametrize("streamed", [1 << 20, 24 * 1024 * 1024], ids=["mid-stream", "after-the-last-byte"])
def test_a_silent_drop_during_a_stage_costs_one_deadline_and_says_what_web_2_may_keep(sshd_farm, relays, tmp_path,
                                                                                      open_fleet, heavy_r2, streamed):
    """web-2 goes silent while r2 streams into it, or once all of it has (while the server checks and unpacks):
    the stage ends within one deadline's worth, names web-2, leaves web-1 and web-3 as they were, says web-2 may
    keep its lock and what it was sent; once web-2 answers, unlock and the same stage put r2 in staging everywhere."""
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    with open_fleet(env) as fleet:
        fleet.stage(bundle("r1"))
        fleet.go_live()
    web2 = Path(str(env.app_root(env.server("web-2")))) / ".releaser"

    def drop() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _streamed(web2, streamed):
            time.sleep(0.001)
        relays["web-2"].drop()
    dropper = threading.Thread(target=drop, daemon=True)
    dropper.start()
    started = time.monotonic()
    with open_fleet(env) as fleet, pytest.raises(HostUnreachable) as failure:
        fleet.stage(heavy_r2)
    seconds = time.monotonic() - started
    dropper.join()
    relays["web-2"].heal()

    assert seconds < BOUND_SECONDS, f"took {seconds:.1f} s"
    message = str(failure.value)
    assert message.startswith("web-2: did not answer while staging r2") and "no server's staging changed" in message
    assert "web-2 may keep what it was sent" in message and "it may still hold the lock" in message, message
    assert message.count("did not answer") == 1, message  # the silence is said once, not again for the unlock
    assert {state.staging for state in read_slots(env).values()} == {None}
    left = leftovers(env)
    assert left["web-1"] == [] and left["web-3"] == [] and "lock" in left["web-2"], left
    with open_fleet(env) as fleet:
        fleet.unlock(reason="web-2 answers again")
        fleet.stage(heavy_r2)
    assert {state.staging for state in read_slots(env).values()} == {"r2"}
    assert leftovers(env) == {name: [] for name in ("web-1", "web-2", "web-3")}


def test_a_connection_reset_mid_stream_is_a_broken_connection_never_silence(sshd_farm, relays, tmp_path):
    """The relay resets web-2's connections while a stream is under way, six times: each upload says at once that
    the connection broke, never that web-2 went silent. (QA: at LogLevel=ERROR ssh says nothing of a reset it meets
    while writing, "Connection reset by" being an INFO line; it passed for silence, so the stage left its lock and its
    upload's files on a server that was up, and said it did not answer.)"""
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    host = make_hosts(env)["web-2"]
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(16 << 20))
    said = []
    try:
        for _ in range(6):
            cut = []

            def sent(done: int, total: int) -> None:
                if done >= 2 << 20 and not cut:
                    cut.append(relays["web-2"].reset())
            started = time.monotonic()
            with pytest.raises(HostUnreachable) as failure:
                host.stream(payload, ["sh", "-c", "cat > /dev/null"], timeout=30, sent=sent)
            assert time.monotonic() - started < 10
            said.append((failure.value.silent, str(failure.value)))
            host.reconnect()
    finally:
        host.close()

    assert [silent for silent, _ in said] == [False] * 6, said
    assert all("the connection was closed (ssh: " in message for _, message in said), said


def test_a_silent_drop_at_commit_is_named_mixed_and_the_others_are_put_back(sshd_farm, relays, tmp_path, open_fleet):
    """web-2 goes silent just before its rename: nobody can know whether it renamed, so the fleet may be MIXED
    (exit 7) naming web-2, every other server is back on r1 and unlocked, within the commit deadline."""
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    morning(open_fleet, env)
    hosts = hosts_with(env, "web-2", when=lambda argv, e: script_of(argv) == "commit", before=relays["web-2"].drop)

    error, seconds = timed_go_live(open_fleet, env, hosts, FleetMixed)

    assert seconds < BOUND_SECONDS, f"took {seconds:.1f} s"
    message = str(error)
    assert "web-1, web-3 are back on r1" in message and "web-2 did not answer, so it may still serve r2" in message
    assert "the fleet may be MIXED" in message and "keep web-2 away from the public" in message  # nobody knows yet
    assert error.exit_code == 7
    slots = read_slots(env)
    assert slots["web-1"] == slots["web-3"] == OLD
    left = leftovers(env)
    assert left["web-1"] == [] and left["web-3"] == []
    assert ("go-live", "mixed") in journal_events(tmp_path)


def test_a_silent_drop_after_the_commit_names_the_server_that_kept_the_lock(sshd_farm, relays, tmp_path, open_fleet):
    """web-2 renames, then goes silent before the unlock: r2 is live everywhere (verified over HTTP), and the
    result says loudly that web-2 did not answer, may still hold the lock and lack the journal line, never a
    plain 'done' (nor that it failed: nobody knows what it did)."""
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    morning(open_fleet, env)
    hosts = hosts_with(env, "web-2", when=lambda argv, e: script_of(argv) == "commit", after=relays["web-2"].drop)
    reconnects, reconnect = [], hosts["web-2"].reconnect
    hosts["web-2"].reconnect = lambda: (reconnects.append(time.monotonic()), reconnect())

    started = time.monotonic()
    with open_fleet(env, hosts=hosts) as fleet:
        result = fleet.go_live()
    seconds = time.monotonic() - started

    assert seconds < BOUND_SECONDS, f"took {seconds:.1f} s"
    # silent until the finish step's deadline: not asked again on a new connection (its handshake would wait out
    # connect_timeout, then the step, for an answer the warning calls "may" all the same)
    assert reconnects == []
    assert result.release == "r2" and all(r.ok for r in result.results)
    warning = " ".join(result.warnings)
    assert warning.startswith("web-2 did not answer the step that frees this command's lock"), warning
    assert "it may still hold the lock and its journal may lack this command's events" in warning
    assert "run: invoke status, and once it answers: invoke unlock --reason TEXT" in warning
    assert set(read_slots(env).values()) == {NEW}
    left = leftovers(env)
    assert left["web-1"] == [] and left["web-3"] == [] and left["web-2"] == ["lock"]


def test_a_connection_reset_at_commit_is_reconnected_and_every_server_put_back(sshd_farm, relays, tmp_path, open_fleet):
    """The relay resets web-2's connection as its commit is sent: the revert reconnects and puts it back."""
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    morning(open_fleet, env)
    hosts = hosts_with(env, "web-2", when=lambda argv, e: script_of(argv) == "commit", before=relays["web-2"].reset)

    with open_fleet(env, hosts=hosts) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.go_live()

    assert "go-live failed on web-2" in str(failure.value) and "every server is back on r1" in str(failure.value)
    assert set(read_slots(env).values()) == {OLD}
    assert leftovers(env) == {name: [] for name in ("web-1", "web-2", "web-3")}


def test_a_byte_changed_between_prepare_and_commit_is_refused_and_every_server_stays_old(sshd_farm, ssh_env, open_fleet):
    """Someone edits one file of r2 on web-2 after prepare verified it: the commit there refuses before renaming,
    and every server stays on r1."""
    morning(open_fleet, ssh_env)
    page = Path(str(ssh_env.app_root(ssh_env.server("web-2")))) / "releases" / "r2" / "public" / "index.html"

    def flip_a_byte() -> None:
        data = bytearray(page.read_bytes())
        data[0] ^= 0x01
        page.write_bytes(bytes(data))

    hosts = hosts_with(ssh_env, "web-2", when=lambda argv, e: script_of(argv) == "commit", before=flip_a_byte)
    with open_fleet(ssh_env, hosts=hosts) as fleet, pytest.raises(FleetReverted) as failure:
        fleet.go_live()

    message = str(failure.value)
    assert "web-2 (commit failed: release r2 changed on this server after it was prepared" in message
    assert "every server is back on r1" in message
    assert set(read_slots(ssh_env).values()) == {OLD}
    assert leftovers(ssh_env) == {name: [] for name in ("web-1", "web-2", "web-3")}


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_while_the_lock_is_taken_frees_it_everywhere_and_is_journaled(sshd_farm, ssh_env, open_fleet, tmp_path):
    """Ctrl-C lands while web-2 is taking go-live's lock: no lock and no prepared link stays on any server, the
    message says so truthfully, and the journal keeps the cancellation."""
    morning(open_fleet, ssh_env)
    hosts = hosts_with(ssh_env, "web-2", when=lambda argv, e: script_of(argv) == "lock", before=ctrl_c)

    with open_fleet(ssh_env, hosts=hosts) as fleet, pytest.raises(Cancelled) as cancelled:
        fleet.go_live()

    assert str(cancelled.value).startswith("go-live cancelled while the lock was being taken (Ctrl-C); the lock was "
                                           "freed, and nothing was switched")
    assert set(read_slots(ssh_env).values()) == {OLD}
    assert leftovers(ssh_env) == {name: [] for name in ("web-1", "web-2", "web-3")}
    assert journal_events(tmp_path)[-1] == ("go-live", "cancelled")
    with open_fleet(ssh_env) as fleet:  # the next command is not blocked for 30 minutes
        assert fleet.go_live().release == "r2"
    assert set(read_slots(ssh_env).values()) == {NEW}


def test_ctrl_c_after_the_lock_was_taken_and_before_the_switch_is_said_so_and_journaled(ssh_env, open_fleet, tmp_path):
    """QA: a press just after the lock's round trip (here while go-live asks to go ahead) said "outside any switch"
    and left no journal line; it is a cancellation before the switch, journaled with the unlock."""
    morning(open_fleet, ssh_env)

    def answer_with_ctrl_c(action, plans):
        ctrl_c()
        time.sleep(1)  # the press arrives as this waits

    with open_fleet(ssh_env) as fleet, pytest.raises(Cancelled) as cancelled:
        fleet.go_live(approve=answer_with_ctrl_c)

    assert str(cancelled.value).startswith("go-live cancelled before the switch (Ctrl-C); nothing was switched")
    assert set(read_slots(ssh_env).values()) == {OLD}
    assert leftovers(ssh_env) == {name: [] for name in ("web-1", "web-2", "web-3")}
    assert journal_events(tmp_path)[-1] == ("go-live", "cancelled")


def test_ctrl_c_during_the_switchs_prepare_is_journaled(ssh_env, open_fleet, tmp_path, monkeypatch):
    """QA: a press while the coordinator prepared left no journal line; it is journaled as a cancelled rollback."""
    from releaser.participants.links import ServerLinks

    morning(open_fleet, ssh_env)
    with open_fleet(ssh_env) as fleet:
        fleet.go_live()
    prepare = ServerLinks.prepare

    def pressed_during(self, timeout):
        if self.server == "web-2":
            ctrl_c()
            time.sleep(0.5)
        return prepare(self, timeout)

    monkeypatch.setattr(ServerLinks, "prepare", pressed_during)
    with open_fleet(ssh_env) as fleet, pytest.raises(Cancelled) as cancelled:
        fleet.rollback()

    assert str(cancelled.value).startswith("rollback cancelled during prepare (Ctrl-C); nothing was switched")
    assert set(read_slots(ssh_env).values()) == {NEW}
    assert leftovers(ssh_env) == {name: [] for name in ("web-1", "web-2", "web-3")}
    assert journal_events(tmp_path)[-1] == ("rollback", "cancelled")


@pytest.fixture
def farm20(tmp_path):
    from sshfarm import SshdFarm, sshd_path

    if sshd_path() is None:
        pytest.skip("openssh-server is not installed")
    with SshdFarm(tmp_path / "farm20", 20, skip_shell_rc=True) as farm:
        yield farm


def test_at_twenty_servers_ctrl_c_at_the_lock_and_a_silent_drop_leave_nothing_behind(farm20, tmp_path, open_fleet):
    """The same two faults on 20 servers: Ctrl-C while the lock is taken, then web-7 silent at the lock."""
    proxies = {server.name: TcpProxy(server.port) for server in farm20.servers}
    try:
        env = relayed_environment(farm20, proxies, tmp_path / "env20.toml")
        with open_fleet(env) as fleet:
            fleet.stage(bundle("r1"))
            fleet.go_live()
            fleet.stage(bundle("r2"))
        names = [server.name for server in env.servers]
        twenty_old = {name: OLD for name in names}
        assert read_slots(env) == twenty_old

        hosts = hosts_with(env, "web-13", when=lambda argv, e: script_of(argv) == "lock", before=ctrl_c)
        with open_fleet(env, hosts=hosts) as fleet, pytest.raises(Cancelled):
            fleet.go_live()
        assert read_slots(env) == twenty_old
        assert leftovers(env) == {name: [] for name in names}

        hosts = hosts_with(env, "web-7", when=lambda argv, e: script_of(argv) == "lock", before=proxies["web-7"].drop)
        started = time.monotonic()
        with open_fleet(env, hosts=hosts) as fleet, pytest.raises(HostUnreachable, match=r"^web-7: did not answer while the lock was being taken"):
            fleet.go_live()
        assert time.monotonic() - started < BOUND_SECONDS
        proxies["web-7"].heal()
        assert read_slots(env) == twenty_old
        left = leftovers(env)
        assert all(left[name] == [] for name in names if name != "web-7")
    finally:
        for proxy in proxies.values():
            proxy.close()


def test_a_lock_directory_without_its_info_file_is_shown_locked_by_an_unknown_owner(ssh_env, open_fleet):
    """A lock whose info.json was never written still holds: status says LOCKED, deploy refuses it."""
    morning(open_fleet, ssh_env)
    (Path(str(ssh_env.app_root(ssh_env.server("web-3")))) / ".releaser" / "lock").mkdir()
    with open_fleet(ssh_env) as fleet:
        reports = {report.server: report for report in fleet.read_status(with_health=False)}
    assert reports["web-3"].locked and reports["web-3"].lock is None
    assert not reports["web-1"].locked


def test_the_next_stage_removes_what_an_interrupted_command_left(ssh_env, open_fleet):
    """A part-written upload and a temporary link from a command that died are gone after the next stage."""
    morning(open_fleet, ssh_env)
    meta = Path(str(ssh_env.app_root(ssh_env.server("web-1")))) / ".releaser"
    (meta / "upload-r9-deadbeef.tar.gz").write_bytes(b"x" * 1000)
    (meta / "next-live").symlink_to("releases/r1")
    (meta / "verified-r1.tmp-4242").write_text("")  # a checksum check killed before its stamp was put in place
    with open_fleet(ssh_env) as fleet:
        fleet.stage(bundle("r3"))
    assert leftovers(ssh_env)["web-1"] == []
    assert not list(meta.glob("verified-*.tmp-*"))
    assert read_slots(ssh_env)["web-1"].staging == "r3"


def test_a_live_url_that_goes_silent_during_verify_costs_its_deadline_and_every_server_goes_back(
        sshd_farm, ssh_env, open_fleet, tmp_path):
    """web-2's public URL accepts connections and never answers (the kernel completes the handshake, nobody
    reads): verify gives up at its deadline, names web-2, and every server is put back on r1 and unlocked."""
    from releaser.sandbox import serving

    morning(open_fleet, ssh_env)
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # never accepted: requests vanish into the backlog
    try:
        servers = [s.model_copy(update={"live_url": f"http://127.0.0.1:{hole.getsockname()[1]}"}) if s.name == "web-2"
                   else s for s in ssh_env.servers]
        silent = ssh_env.model_copy(update={"servers": servers, "sandbox": None})
        started = time.monotonic()
        with serving(ssh_env), open_fleet(silent) as fleet, pytest.raises(FleetReverted) as failure:
            fleet.go_live()
        seconds = time.monotonic() - started
    finally:
        hole.close()

    assert seconds < ssh_env.deadlines.verify + ssh_env.deadlines.revert + 5, f"took {seconds:.1f} s"
    message = str(failure.value)
    assert "go-live failed on web-2" in message and "every server is back on r1" in message
    assert set(read_slots(ssh_env).values()) == {OLD}
    assert leftovers(ssh_env) == {name: [] for name in ("web-1", "web-2", "web-3")}
    assert ("go-live", "reverted") in journal_events(tmp_path)


def test_ctrl_c_during_the_journal_and_unlock_step_of_a_committed_go_live_still_says_it_is_live(
        sshd_farm, ssh_env, open_fleet, tmp_path):
    """A real SIGINT lands while web-2 writes go-live's journal lines and frees its lock, after every server
    committed: that step ends first, the go-live reports r2 live, and no lock or missing line is left."""
    morning(open_fleet, ssh_env)
    hosts = hosts_with(ssh_env, "web-2", when=lambda argv, e: script_of(argv) == "finish", before=ctrl_c)

    with open_fleet(ssh_env, hosts=hosts) as fleet:
        result = fleet.go_live()

    assert hosts["web-2"].fired
    assert result.release == "r2" and all(r.ok for r in result.results)
    assert result.warnings == ()
    assert set(read_slots(ssh_env).values()) == {NEW}
    assert leftovers(ssh_env) == {name: [] for name in ("web-1", "web-2", "web-3")}
    for server in ssh_env.servers:
        journal = Path(str(ssh_env.app_root(server))) / ".releaser" / "journal.jsonl"
        events = [json.loads(line) for line in journal.read_text().splitlines()]
        assert (events[-1]["action"], events[-1]["outcome"]) == ("go-live", "done"), server.name
