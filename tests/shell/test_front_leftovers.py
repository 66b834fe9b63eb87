"""What a switch of an nginx front left beside its link or include when its server was lost mid-go-live (the
prepared .releaser-next, a revert's .releaser-back) goes with the other leftovers: removed in the round trip that
takes the lock, and by a forced unlock; never while another command holds the lock (a switch may be under way)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from releaser.errors import LockHeld
from releaser.switch import PrepareCancelled

pytestmark = pytest.mark.ssh

BOTH_WAYS = pytest.mark.parametrize("app_farm", ["socket", "include"], indirect=True)


def front_file(farm, name: str) -> Path:
    """The front's link (the socket way) or include on a server, as a path on this machine."""
    front = farm.environment.application.front
    return Path(str(farm.roots()[name])) / (front.socket or front.include)


def leave_what_a_lost_go_live_left(farm, name: str) -> list[Path]:
    """The front prepared for r2 (as the socket way's and the include way's prepare write it) and a revert's
    temporary, left on `name` as by a go-live that lost the server after prepare; the slot links' one too."""
    target = front_file(farm, name)
    staging = farm.read()[name].of_slot("staging").port
    prepared, back = target.with_name(target.name + ".releaser-next"), target.with_name(target.name + ".releaser-back")
    if farm.environment.application.front.socket is not None:
        prepared.symlink_to(f"instance-{staging}.sock")
        back.symlink_to(os.readlink(target))
    else:
        prepared.write_text(f"server 127.0.0.1:{staging};\n")
        back.write_text(target.read_text())
    meta = Path(str(farm.roots()[name])) / ".releaser"
    (meta / "next-live").symlink_to("releases/r2")
    return [prepared, back, meta / "next-live"]


def served_by_nginx(farm):
    """The farm's environment, its public sites served by the fronts (not by a sandbox of this process)."""
    return farm.environment.model_copy(update={"sandbox": None})


def front_as_it_is(farm, name: str) -> str:
    target = front_file(farm, name)
    return os.readlink(target) if target.is_symlink() else target.read_text()


@BOTH_WAYS
def test_the_next_command_to_take_the_lock_removes_the_front_a_lost_go_live_prepared(app_farm, open_fleet):
    """The lock's own round trip removes web-2's prepared front and revert temporary; the front itself, and what
    the public gets through it, stay as they were (r1)."""
    left = leave_what_a_lost_go_live_left(app_farm, "web-2")
    before = front_as_it_is(app_farm, "web-2")
    with open_fleet(served_by_nginx(app_farm)) as fleet, fleet.locked("tests"):
        pass
    assert [path for path in left if os.path.lexists(path)] == []
    assert front_as_it_is(app_farm, "web-2") == before
    assert app_farm.served("web-2") == {(200, "r1")}


def test_a_lock_another_command_holds_keeps_the_front_it_prepared_and_a_forced_unlock_removes_it(app_farm, open_fleet):
    """While someone else's lock stands (their switch may be about to rename the prepared link), a command that
    is refused the lock leaves it; `invoke unlock` (forced: that holder is gone) removes it with the rest."""
    with open_fleet(served_by_nginx(app_farm), actor="ana@build-01") as other:
        other.take_lock("go-live r2", token="theirs", kind="command", minutes=30)
    left = leave_what_a_lost_go_live_left(app_farm, "web-2")
    with open_fleet(served_by_nginx(app_farm)) as fleet:
        with pytest.raises(LockHeld):
            with fleet.locked("tests"):
                pass
        assert [path for path in left if not os.path.lexists(path)] == []
        fleet.unlock(reason="ana's go-live lost web-2")
    assert [path for path in left if os.path.lexists(path)] == []
    assert not (Path(str(app_farm.roots()["web-2"])) / ".releaser" / "lock").exists()
    assert app_farm.served("web-2") == {(200, "r1")}


class CtrlCWhileTheFrontPrepares:
    """web-2's connection, where a real SIGINT reaches this process as the front's prepare starts, and that prepare
    then takes a moment longer (a slow server): the abort Ctrl-C brings must not overtake it."""

    def __init__(self, host) -> None:
        self._host = host

    def __getattr__(self, name):
        return getattr(self._host, name)

    def run(self, argv, **kwargs):
        if len(argv) > 3 and argv[3] == "releaser-front-prepare":
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        return self._host.run(argv, **kwargs)


def test_ctrl_c_while_a_front_prepares_leaves_nothing_beside_its_link(app_farm):
    """The abort waits for the prepare under way: before, it ran at once, found nothing to remove, and the prepare
    then wrote web-2's .releaser-next, left there after "nothing was switched"."""
    app_farm.hosts["web-2"] = CtrlCWhileTheFrontPrepares(app_farm.hosts["web-2"])
    with pytest.raises(PrepareCancelled):
        app_farm.switch("go-live")
    time.sleep(1.0)  # a prepare still running after the abort has ended by now
    target = front_file(app_farm, "web-2")
    assert not os.path.lexists(target.with_name(target.name + ".releaser-next"))
    assert app_farm.served("web-2") == {(200, "r1")}


class SlowFrontPrepare(CtrlCWhileTheFrontPrepares):
    """web-2's connection, where the front's prepare takes half a second longer (a slow server)."""

    def run(self, argv, **kwargs):
        if len(argv) > 3 and argv[3] == "releaser-front-prepare":
            time.sleep(0.5)
        return self._host.run(argv, **kwargs)


def test_ctrl_c_as_the_prepare_steps_start_leaves_nothing_beside_a_link(app_farm, monkeypatch):
    """A real SIGINT the moment web-2's front prepare thread has started, before the coordinator knew of it (a press
    inside Thread.start): before, that prepare went on unwatched and wrote .releaser-next after the abort."""
    from releaser import switch

    class PressedAsItStarts(threading.Thread):
        def start(self):
            super().start()
            if self.name == "prepare-web-2:front":
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the signal is handled here, in start, as a press during its wait would be

    app_farm.hosts["web-2"] = SlowFrontPrepare(app_farm.hosts["web-2"])
    monkeypatch.setattr(switch.threading, "Thread", PressedAsItStarts)
    with pytest.raises(PrepareCancelled):
        app_farm.switch("go-live")
    monkeypatch.undo()
    time.sleep(1.0)  # a prepare still running after the abort has ended by now
    target = front_file(app_farm, "web-2")
    assert not os.path.lexists(target.with_name(target.name + ".releaser-next"))
    assert app_farm.served("web-2") == {(200, "r1")}


class CtrlCTwice(CtrlCWhileTheFrontPrepares):
    """web-2's connection, where a real SIGINT reaches this process as the front prepares, and another as its
    prepared link is being removed: a double press."""

    def run(self, argv, **kwargs):
        if len(argv) > 3 and argv[3] in ("releaser-front-prepare", "releaser-front-abort"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        return self._host.run(argv, **kwargs)


def test_ctrl_c_again_while_the_prepared_front_is_removed_still_cancels(app_farm):
    """Before, the second press raised out of the cleanup itself: a bare KeyboardInterrupt instead of the
    cancellation (the command said "interrupted outside any switch", journaled nothing, and left web-3's
    .releaser-next). Now it is counted: the switch is cancelled, and only the wait is cut short."""
    app_farm.hosts["web-2"] = CtrlCTwice(app_farm.hosts["web-2"])
    try:
        with pytest.raises(PrepareCancelled):
            app_farm.switch("go-live")
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C came out of the cleanup as a bare KeyboardInterrupt")
    time.sleep(1.0)
    for name in ("web-1", "web-2", "web-3"):
        target = front_file(app_farm, name)
        assert not os.path.lexists(target.with_name(target.name + ".releaser-next")), name
    assert app_farm.served("web-2") == {(200, "r1")}


class CtrlCWhileItsPrepareIsAwaited(CtrlCWhileTheFrontPrepares):
    """web-1's connection, where the front's prepare takes a moment (a slow server) and a real SIGINT reaches this
    process part way through it, while the coordinator waits for that very prepare (Thread.join)."""

    def run(self, argv, **kwargs):
        if len(argv) > 3 and argv[3] == "releaser-front-prepare":
            time.sleep(0.2)  # every other step has ended: the coordinator is joining this one
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.4)
        return self._host.run(argv, **kwargs)


def test_ctrl_c_while_the_coordinator_waits_for_a_front_prepare_leaves_nothing_beside_its_link(app_farm):
    """CPython 3.11's Thread.join, interrupted by Ctrl-C, marks the thread it waited for as ended while it still runs
    (bpo-45274's cleanup releases the lock the running thread holds): before, the abort then did not wait for web-1's
    prepare, found nothing to remove, and that prepare wrote .releaser-next after "nothing was switched"."""
    app_farm.hosts["web-1"] = CtrlCWhileItsPrepareIsAwaited(app_farm.hosts["web-1"])
    with pytest.raises(PrepareCancelled):
        app_farm.switch("go-live")
    time.sleep(1.0)  # a prepare still running after the abort has ended by now
    for name in ("web-1", "web-2", "web-3"):
        target = front_file(app_farm, name)
        assert not os.path.lexists(target.with_name(target.name + ".releaser-next")), name
    assert app_farm.served("web-1") == {(200, "r1")}
