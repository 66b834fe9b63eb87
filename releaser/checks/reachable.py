"""reachable: every server answers, and its clock agrees with this machine's (seconds matter at 09:30)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from releaser.checks import CheckResult, Limits, ReleaseView, Unreadable, not_checked, server_facts

NAME = "reachable"


@dataclass(frozen=True)
class ClockReading:
    """A server's clock, read between two readings of this machine's clock (seconds since the epoch)."""

    remote: float
    local_before: float
    local_after: float
    remote_spent: float = 0.0  # how long the server worked after reading its clock (the facts script's run)

    @property
    def skew(self) -> float:
        """How far the server's clock is ahead of this machine's (negative: behind)."""
        return self.remote - (self.local_before + self.local_after - self.remote_spent) / 2

    @property
    def round_trip(self) -> float:
        """How long the question took on the network, which bounds how exactly the skew is known."""
        return self.local_after - self.local_before - self.remote_spent


def gather(fleet, view: ReleaseView, limits: Limits) -> dict[str, object]:
    """Every server's clock, read at the start of its facts' round trip and bracketed by this machine's clock."""
    readings: dict[str, object] = {}
    for name in fleet.hosts:
        facts = server_facts(view, name)
        server = view.servers.get(name)
        if isinstance(facts, Unreadable):
            readings[name] = facts
        elif facts.clock is None:
            readings[name] = Unreadable("its clock did not answer with a time")
        else:
            readings[name] = ClockReading(facts.clock, server.local_before, server.local_after, facts.clock_spent)
    return readings


def judge(facts: Mapping[str, object], limits: Limits, now: datetime) -> list[CheckResult]:
    """FAIL a server that did not answer or whose clock is off by more than the limit; WARN above the warning level."""
    thresholds = limits.environment.thresholds
    results = []
    for server, reading in facts.items():
        if isinstance(reading, Unreadable):
            results.append(CheckResult(NAME, server, "FAIL", f"did not answer: {reading.reason}"))
            continue
        if not isinstance(reading, ClockReading):
            results.append(not_checked(NAME, server, Unreadable(str(reading))))
            continue
        skew = reading.skew
        side = "ahead of" if skew > 0 else "behind"
        said = f"answered in {reading.round_trip * 1000:.0f} ms; clock {abs(skew):.3f} s {side} this machine"
        if abs(skew) > thresholds.max_clock_skew_seconds:
            results.append(CheckResult(NAME, server, "FAIL", f"{said} (limit {thresholds.max_clock_skew_seconds:g} s): "
                                                            "fix its time sync (NTP) before release day"))
        elif abs(skew) > thresholds.warn_clock_skew_seconds:
            results.append(CheckResult(NAME, server, "WARN", f"{said} (warning above {thresholds.warn_clock_skew_seconds:g} s)"))
        else:
            results.append(CheckResult(NAME, server, "PASS", said))
    return results
