"""The commit armed before T (a scheduled go-live's), on real sshd servers: told go it renames at once; without
the go line (end of file, a dropped connection, its bound passed) it renames nothing and ends by itself."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import read_slots
from releaser import remote
from releaser.clock import SystemClock
from releaser.errors import Cancelled, FleetMixed, HostUnreachable
from releaser.fleet import make_hosts
from releaser.golive import go_live_at
from releaser.slots import LinkChange
from test_ssh_deadlines import leftovers, morning, relayed_environment, relays  # noqa: F401
from test_ssh_faults import NEW, OLD, script_of

pytestmark = pytest.mark.ssh

GO_LIVE = (LinkChange("backup", None, "r1"), LinkChange("live", "r1", "r2"), LinkChange("staging", "r2", None))


def prepared(env, host, name: str) -> Path:
    """r1 live, r2 staged and the go-live's links prepared on one server, as the lock's round trip leaves them."""
    root = env.app_root(env.server(name))
    assert host.run(remote.prepare_argv(root, GO_LIVE)).ok
    return Path(str(root))


def armed(env, host, name: str, *, bound: float, python: bool = True):
    """The server's commit started ahead, past its "armed" line: waiting for the go line (in python3, or in sh)."""
    root = prepared(env, host, name)
    running = host.start(remote.armed_commit_argv(env.app_root(env.server(name)), GO_LIVE, bound=bound, unchanged="r2",
                                                  python=python))
    assert running.readline(5) == "armed"
    return root, running


def gave_up(root: Path, within: float) -> bool:
    """True once the armed script took its no-go way out (it removes its own .releaser/armed-* directory)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not list((root / ".releaser").glob("armed-*")):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(params=[True, False], ids=["python3", "sh"])
def python(request) -> bool:
    """Each way the armed commit runs on a server: in one python3 process where there is one, else in sh."""
    return request.param


@pytest.fixture
def web1(ssh_env, open_fleet):
    morning(open_fleet, ssh_env)
    host = make_hosts(ssh_env)["web-1"]
    host.open()
    yield host
    host.close()


def test_told_go_it_renames_every_slot_at_once_and_says_when(ssh_env, web1, python):
    root, running = armed(ssh_env, web1, "web-1", bound=30, python=python)
    assert read_slots(ssh_env)["web-1"] == OLD  # armed is not moved
    waiting = [int(path.name.removeprefix("armed-")) for path in (root / ".releaser").glob("armed-*")]
    assert len(waiting) == 1  # python3: the one process that reads the go line, checks and renames, started ahead
    has_python = web1.run(["sh", "-c", "command -v python3"]).ok
    comm = Path(f"/proc/{waiting[0]}/comm").read_text().strip()
    assert comm.startswith("python3") if python and has_python else comm == "sh", comm
    told = time.time()
    running.send("go\n")
    done = running.wait(10)
    assert done.exit_code == 0, done
    assert float(done.stdout.split()[0]) >= told  # the time it says live was renamed: after the go line, never before
    assert read_slots(ssh_env)["web-1"] == NEW


def test_end_of_file_before_the_go_line_renames_nothing(ssh_env, web1, python):
    root, running = armed(ssh_env, web1, "web-1", bound=30, python=python)
    running.close()  # the client lets go of it: the script reads end of file
    assert gave_up(root, within=5)
    assert read_slots(ssh_env)["web-1"] == OLD


def test_a_connection_dropped_before_the_go_line_renames_nothing(ssh_env, web1, python):
    root, running = armed(ssh_env, web1, "web-1", bound=30, python=python)
    web1.close()  # the whole connection goes: sshd ends the session, the script's stdin closes
    assert gave_up(root, within=5)
    assert read_slots(ssh_env)["web-1"] == OLD


def test_the_bound_passing_ends_it_by_itself_with_nothing_renamed(ssh_env, web1, python):
    root, running = armed(ssh_env, web1, "web-1", bound=1.0, python=python)
    started = time.monotonic()
    done = running.wait(10)  # the channel stays open: only the bound can end it
    assert 0.9 < time.monotonic() - started < 5
    assert done.exit_code == 8 and "nothing was switched here" in done.stderr, done
    assert read_slots(ssh_env)["web-1"] == OLD


def test_a_go_line_after_the_bound_renames_nothing(ssh_env, web1, python):
    root, running = armed(ssh_env, web1, "web-1", bound=1.0, python=python)
    time.sleep(1.5)
    try:
        running.send("go\n")
        done = running.wait(10)
        assert done.exit_code == 8, done
    except HostUnreachable:  # the script had ended and the channel with it: the go line went nowhere
        pass
    assert read_slots(ssh_env)["web-1"] == OLD


def test_a_go_line_read_only_after_the_bound_renames_nothing_when_the_server_was_frozen(sshd_farm, ssh_env, web1,
                                                                                        python):
    """The server stops (SIGSTOP of sshd and the script: a paused VM, a stalled host) before T with the script armed;
    the go line waits in its socket, the coordinator gives web-1 up and reverts the others. Thawed past its bound, the
    script reads that go line at once: it must rename nothing, as when the line comes late on a live server.

    Before the fix the python3 gate checked its deadline only before each wait, so the go line read after the thaw
    renamed live there seconds after the command had said every other server was back: a MIXED fleet, made late."""
    root, running = armed(ssh_env, web1, "web-1", bound=1.0, python=python)
    sshd_farm.freeze("web-1")
    try:
        running.send("go\n")  # into the frozen server's socket buffer
        time.sleep(2.0)  # past the bound, frozen
    finally:
        sshd_farm.thaw("web-1")
    done = running.wait(10)
    assert done.exit_code == 8 and "nothing was switched here" in done.stderr, done
    assert read_slots(ssh_env)["web-1"] == OLD


def test_a_release_changed_since_prepare_is_refused_after_the_go_line(ssh_env, web1, python):
    root, running = armed(ssh_env, web1, "web-1", bound=30, python=python)
    (root / "releases" / "r2" / "public" / "index.html").write_text("changed after prepare")
    running.send("go\n")
    done = running.wait(10)
    assert done.exit_code == 4 and "changed on this server after it was prepared" in done.stderr, done
    assert read_slots(ssh_env)["web-1"] == OLD


def test_a_release_changed_after_prepare_and_before_the_arm_is_refused_after_the_go_line(ssh_env, web1, python):
    """A scheduled go-live prepares a minute before T and arms half a second before it: a byte changed in that
    minute must stop the commit as one changed after the arm does. (Arming hard-links the prepared link, which
    dates its inode's change time anew: the check must compare with the link's modification time, as -cnewer does.)"""
    root = prepared(ssh_env, web1, "web-1")
    (root / "releases" / "r2" / "public" / "index.html").write_text("changed after prepare, before the arm")
    time.sleep(0.05)  # past the kernel's tick for inode times: the arm comes strictly later
    running = web1.start(remote.armed_commit_argv(ssh_env.app_root(ssh_env.server("web-1")), GO_LIVE, bound=30,
                                                  unchanged="r2", python=python))
    assert running.readline(5) == "armed"
    running.send("go\n")
    done = running.wait(10)
    assert done.exit_code == 4 and "changed on this server after it was prepared" in done.stderr, done
    assert read_slots(ssh_env)["web-1"] == OLD


class Counting:
    """A server's real Host that notes how each releaser script was run: ahead (start) or at once (run)."""

    def __init__(self, host) -> None:
        self.host, self.name = host, host.name
        self.ran: list[str] = []
        self.started: list[str] = []

    def __getattr__(self, name):
        return getattr(self.host, name)

    def run(self, argv, **kwargs):
        self.ran.append(script_of(argv))
        return self.host.run(argv, **kwargs)

    def start(self, argv, **kwargs):
        self.started.append(script_of(argv))
        return self.host.start(argv, **kwargs)


def counted_hosts(env) -> dict[str, Counting]:
    return {name: Counting(host) for name, host in make_hosts(env).items()}


def test_a_scheduled_go_live_arms_every_commit_and_renames_after_the_second(ssh_env, open_fleet):
    morning(open_fleet, ssh_env)
    hosts = counted_hosts(ssh_env)
    clock = SystemClock()
    with open_fleet(ssh_env, hosts=hosts) as fleet:
        at = clock.now() + timedelta(seconds=2)
        result = go_live_at(fleet, at=at, clock=clock, lead=timedelta(seconds=1.5), prepare_ahead=timedelta(seconds=1))
    assert set(read_slots(ssh_env).values()) == {NEW}
    assert all(r.renamed_at is not None and r.renamed_at >= at.timestamp() for r in result.results), result
    for host in hosts.values():  # the commit was started ahead and told go, never run at T
        assert host.started == ["commit"] and "commit" not in host.ran, (host.name, host.started, host.ran)
    assert all(left == [] for left in leftovers(ssh_env).values()), leftovers(ssh_env)


def once_waiting_for_the_second(action):
    """A go-live tick that, a second into the wait for T (every commit armed by then), does `action` once."""
    done = []

    def tick(phase, now, moment):
        if phase == "switch" and not done:
            done.append(phase)
            time.sleep(1.0)
            action()
    return tick


def ctrl_c() -> None:
    raise KeyboardInterrupt


def test_ctrl_c_while_armed_renames_nothing_and_leaves_nothing(ssh_env, open_fleet):
    morning(open_fleet, ssh_env)
    hosts = counted_hosts(ssh_env)
    clock = SystemClock()
    with open_fleet(ssh_env, hosts=hosts) as fleet:
        at = clock.now() + timedelta(seconds=4)
        with pytest.raises(Cancelled, match="cancelled before the switch"):
            go_live_at(fleet, at=at, clock=clock, lead=timedelta(seconds=3.5), prepare_ahead=timedelta(seconds=3),
                       tick=once_waiting_for_the_second(ctrl_c))
    assert all(host.started == ["commit"] for host in hosts.values())  # they were armed when Ctrl-C came
    time.sleep(1.0)  # longer than any armed script takes to read end of file
    assert set(read_slots(ssh_env).values()) == {OLD}
    assert all(left == [] for left in leftovers(ssh_env).values()), leftovers(ssh_env)


def test_a_server_reset_while_armed_is_committed_the_usual_way_or_put_back(sshd_farm, relays, tmp_path, open_fleet):
    """web-2's connection is reset during the wait: its armed commit reads end of file; at T the fleet either
    commits it on a new connection or puts every server back, never a mix."""
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    morning(open_fleet, env)
    hosts = counted_hosts(env)
    clock = SystemClock()
    outcome = None
    with open_fleet(env, hosts=hosts) as fleet:
        at = clock.now() + timedelta(seconds=4)
        try:
            go_live_at(fleet, at=at, clock=clock, lead=timedelta(seconds=3.5), prepare_ahead=timedelta(seconds=3),
                       tick=once_waiting_for_the_second(relays["web-2"].reset))
            outcome = "live"
        except Exception as error:  # noqa: BLE001  (which error is what the assertions below read)
            outcome = str(error)
    slots = read_slots(env)
    assert set(slots.values()) in ({NEW}, {OLD}), (outcome, slots)
    assert hosts["web-2"].started == ["commit"]  # it was armed before the reset
    assert "web-2" in outcome or outcome == "live"


def test_a_go_live_late_past_the_bound_commits_the_usual_way(sshd_farm, tmp_path, open_fleet):
    """The wait overran the armed commits' bound (this process stalled): they renamed nothing, so every server
    commits as if it had never been armed, once, after the wait."""
    from conftest import ssh_environment_for

    env = ssh_environment_for(sshd_farm, tmp_path / "env.toml", extra="[deadlines]\ncommit = 1.0\n")
    morning(open_fleet, env)
    hosts = counted_hosts(env)
    waited = []

    def stalled() -> None:  # says 0.2 s, takes 2: past the 0.2 + 1.0 s every armed commit waits for its go line
        time.sleep(2.0)
        waited.append(time.time())

    with open_fleet(env, hosts=hosts) as fleet:
        result = fleet.go_live(before_commit=stalled, until_commit=lambda: 0.2)
    assert set(read_slots(env).values()) == {NEW}
    assert all(r.renamed_at >= waited[0] for r in result.results), result
    for host in hosts.values():
        assert host.started == ["commit"] and host.ran.count("commit") == 1, (host.name, host.started, host.ran)


def test_a_server_silent_at_the_second_costs_the_commit_and_revert_deadlines_and_no_more(sshd_farm, relays, tmp_path,
                                                                                       open_fleet):
    """web-2's packets vanish during the wait, after it was armed: its armed commit says nothing by the commit
    deadline. The host is then known silent, so freeing the lock does not wait out a new handshake to it (QA: a
    scheduled go-live ended 37 s after T, 5 s past the README's commit + revert + 2 s, where --now ended in time)."""
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    morning(open_fleet, env)
    clock = SystemClock()
    with open_fleet(env) as fleet:
        at = clock.now() + timedelta(seconds=4)
        with pytest.raises(FleetMixed) as failure:  # web-2 may have renamed before it went silent
            go_live_at(fleet, at=at, clock=clock, lead=timedelta(seconds=3.5), prepare_ahead=timedelta(seconds=3),
                       tick=once_waiting_for_the_second(relays["web-2"].drop))
        ended = time.time() - at.timestamp()
    relays["web-2"].heal()
    assert "web-2" in str(failure.value)
    assert ended < 2.0 + 3.0 + 2.0 + 1.0, f"ended {ended:.1f} s after the second"  # commit + revert + 2 s, and a margin
    assert read_slots(env)["web-1"] == read_slots(env)["web-3"] == OLD
