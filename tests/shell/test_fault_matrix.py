"""The fault table: every fault at every phase of a go-live on three real sshd servers, one invariant for all.

web-2 is reached through a TCP relay the test controls. At each phase (the lock's round trip, which also
prepares the links; the commit; verification, right after web-2 renamed) one fault hits web-2: its sshd
killed, Ctrl-C, a connection reset, or a silent drop. Then the servers are healed and read back, and:

- the command ended within one deadline's worth of time;
- exit 0 means r2 is live everywhere; exit 5 or 6 (or a Ctrl-C refusal) means r1 is live everywhere;
  exit 7 (MIXED) means every server but the one named is back on r1;
- no server but web-2 keeps a lock or a temporary file, and web-2 keeps one only when the message said so;
- the message names web-2 whenever something went wrong there (unless the user pressed Ctrl-C).
"""

from __future__ import annotations

import time

import pytest

from conftest import read_slots
from releaser.errors import ReleaserError
from test_ssh_deadlines import BOUND_SECONDS, ctrl_c, leftovers, morning, relayed_environment, relays  # noqa: F401
from test_ssh_faults import NEW, OLD, hosts_with, script_of

pytestmark = pytest.mark.ssh

PHASES = {  # where the fault fires: before or after which of web-2's scripts
    "prepare": ("lock", "before"),
    "commit": ("commit", "before"),
    "verify": ("commit", "after"),
}


def fault_for(name: str, sshd_farm, relay):
    """The fault itself, and what brings web-2 back afterwards."""
    return {
        "killed": (lambda: sshd_farm.stop("web-2"), lambda: sshd_farm.restart("web-2")),
        "ctrl-c": (ctrl_c, lambda: None),
        "reset": (relay.reset, lambda: None),
        "silent": (relay.drop, relay.heal),
    }[name]


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("fault", ["killed", "ctrl-c", "reset", "silent"])
def test_every_fault_at_every_phase_leaves_one_release_live_and_says_so(fault, phase, sshd_farm, relays, tmp_path,
                                                                        open_fleet):
    env = relayed_environment(sshd_farm, relays, tmp_path / "env.toml")
    morning(open_fleet, env)
    script, moment = PHASES[phase]
    hurt, heal = fault_for(fault, sshd_farm, relays["web-2"])
    hosts = hosts_with(env, "web-2", when=lambda argv, e: script_of(argv) == script, **{moment: hurt})

    started = time.monotonic()
    error, result = None, None
    try:
        with open_fleet(env, hosts=hosts) as fleet:
            result = fleet.go_live()
    except ReleaserError as raised:
        error = raised
    seconds = time.monotonic() - started
    heal()

    assert hosts["web-2"].fired, "the fault never fired"
    assert seconds < BOUND_SECONDS, f"took {seconds:.1f} s"
    said = str(error) if error else " ".join((*result.notes, *result.warnings))  # the error and its hint, or the notes
    slots = read_slots(env)
    code = error.exit_code if error else 0
    if code == 0:
        assert set(slots.values()) == {NEW}, said
    elif code == 7:
        assert "web-2" in said and "MIXED" in said
        assert slots["web-1"] == slots["web-3"] == OLD, said
    else:
        assert code in (5, 6, 130), said
        assert set(slots.values()) == {OLD}, said
    left = leftovers(env)
    if fault != "ctrl-c" and (code != 0 or left["web-2"]):  # a reset that a reconnect mended leaves nothing to say
        assert "web-2" in said, said
    assert left["web-1"] == [] and left["web-3"] == [], (said, left)
    if left["web-2"]:  # a lock or a link left on the hurt server must have been named, with what to do
        assert "web-2" in said and ("unlock" in said or "temporary links" in said or "MIXED" in said), (said, left)
