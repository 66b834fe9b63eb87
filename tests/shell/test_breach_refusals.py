"""Issue 12, item 7: a go-live refused because a server is down is journaled, so the breach report can show it."""

from __future__ import annotations

import pytest

from conftest import EXAMPLES
from releaser.bundle import read_bundle
from releaser.clock import FakeClock
from releaser.errors import HostUnreachable
from releaser.fleet import make_hosts
from releaser.golive import go_live_command
from releaser.transport import LocalHost


class DiesAtTheLock(LocalHost):
    """A sandbox server that answers every read and then drops the connection when the lock is taken."""

    dead = False

    def run(self, argv, **kwargs):
        if self.dead and len(argv) > 3 and argv[3] == "releaser-lock":
            raise HostUnreachable(self.name, "connection reset while taking the lock")
        return super().run(argv, **kwargs)


def test_a_server_lost_at_the_lock_is_a_journaled_refusal(local_env, open_fleet, fake_clock):
    """web-2 answers the plan, then dies as the lock is taken: exit 5, and history holds 'go-live refused'."""
    hosts = make_hosts(local_env)
    hosts["web-2"] = DiesAtTheLock("web-2")
    with open_fleet(local_env, hosts=hosts) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        hosts["web-2"].dead = True
        with pytest.raises(HostUnreachable) as refused:
            go_live_command(fleet, clock=fake_clock, now=True, reason="tests",
                            overrides=["deadline", "people", "rehearsal", "rollback-target"])
        history = fleet.read_history()
    assert refused.value.exit_code == 5
    last = [e for e in history if e["action"] == "go-live"][-1]
    assert last["outcome"] == "refused" and "connection reset while taking the lock" in last["detail"]
    assert last.get("attempt"), "the refusal carries its go-live command's attempt id"
    assert "switched_at" not in last, "nothing was switched: the refusal names no second of a switch"
