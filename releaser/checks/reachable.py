"""reachable: every server answers, and its clock agrees with this machine's (seconds matter at 09:30)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from releaser import remote
from releaser.checks import CheckResult, Limits, Unreadable, gather_each, not_checked

NAME = "reachable"


@dataclass(frozen=True)
class ClockReading:
    """A server's clock, read between two readings of this machine's clock (seconds since the epoch)."""

    remote: float
    local_before: float
    local_after: float

    @property
    def skew(self) -> float:
        """How far the server's clock is ahead of this machine's (negative: behind)."""
        return self.remote - (self.local_before + self.local_after) / 2

    @property
    def round_trip(self) -> float:
        """How long the question took, which bounds how exactly the skew is known."""
        return self.local_after - self.local_before


def gather(fleet, view, limits: Limits, *, local_time: Callable[[], float] = time.time) -> dict[str, object]:
    """Read every server's clock, bracketed by this machine's; a server that does not answer is Unreadable."""
    def read(name: str) -> object:
        before = local_time()
        done = fleet.hosts[name].run(remote.clock_argv())
        after = local_time()
        try:
            return ClockReading(float(done.stdout.strip()), before, after) if done.ok else Unreadable(done.reason())
        except ValueError:
            return Unreadable(f"its clock answered {done.stdout.strip()[:40]!r}")
    return gather_each(fleet, read)


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
