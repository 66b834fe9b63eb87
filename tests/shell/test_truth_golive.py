"""Issue 12, item 8: servers lost at release time are a server failure (exit 5), never a check to override."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from conftest import EXAMPLES, read_slots
from releaser.bundle import read_bundle
from releaser.checks import Limits, run_checks
from releaser.clock import FakeClock
from releaser.errors import HostUnreachable
from releaser.golive import go_live_at

pytestmark = pytest.mark.ssh
NINE = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)  # 09:00 GMT on the first Tuesday of December
AT = NINE + timedelta(minutes=30)


def test_servers_lost_after_the_lead_checks_stop_go_live_as_a_server_failure(sshd_farm, ssh_env, open_fleet, tmp_path):
    """web-2 and web-3 die between the T-10 checks and T-1: exit 5, one line per server, the server-failure runbook."""
    clock = FakeClock(NINE)
    with open_fleet(ssh_env) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.go_live()
        fleet.stage(read_bundle(EXAMPLES / "r2"))

        def checks(which: str):
            if which == "fast":
                sshd_farm.stop("web-2")
                sshd_farm.stop("web-3")
            return run_checks(fleet, Limits(ssh_env, actor="t"), now=clock.now(), only=("reachable",))

        with pytest.raises(HostUnreachable) as stopped:
            go_live_at(fleet, at=AT, clock=clock, run_checks=checks, lead=timedelta(minutes=10),
                       prepare_ahead=timedelta(minutes=1))
        history = fleet.read_history()
    message = str(stopped.value)
    assert stopped.value.exit_code == 5
    assert "go-live stopped at the fast checks before 09:30: 2 servers did not answer" in message
    assert "--override" not in message and "runbook go-live" not in message
    assert message.endswith("see: invoke runbook server-failure")
    assert "\n" not in message  # one line, each server named with why (a newline would be printed escaped)
    assert re.search(r"no check override can help \(web-2: .+; web-3: .+\)", message), message
    refused = [e for e in history if e["action"] == "go-live" and e["outcome"] == "refused"]
    assert refused and refused[-1]["unreachable"] == ["web-2", "web-3"]
    assert read_slots(ssh_env)["web-1"].live == "r1"
