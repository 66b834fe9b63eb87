"""Where releaser gets the time: the one place that reads the real clock or sleeps."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    """A source of the current time that can also wait until a moment."""

    def now(self) -> datetime:
        """Return the current time, always timezone-aware."""
        ...

    def sleep_until(self, moment: datetime) -> None:
        """Return once `moment` has been reached (at once if it already has)."""
        ...


class SystemClock:
    """The machine's clock, in UTC. Production code uses this; tests pass a FakeClock."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(timezone.utc)

    def sleep_until(self, moment: datetime) -> None:
        """Sleep until `moment`, waking in short steps so a late wake-up never drifts far."""
        while True:
            remaining = (moment - self.now()).total_seconds()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.5))


class FakeClock:
    """A clock tests drive: it starts at a given moment and `sleep_until` jumps there at once."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        """Return the fake current time."""
        return self._now

    def sleep_until(self, moment: datetime) -> None:
        """Move the fake time forward to `moment` (never backwards)."""
        if moment > self._now:
            self._now = moment

    def advance(self, seconds: float) -> None:
        """Move the fake time forward by `seconds`."""
        self._now += timedelta(seconds=seconds)


def span_text(minutes: int) -> str:
    """A number of minutes as a message says it: "5 days 14 h 37 min", each part only when it is not zero."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{mins} min"] if mins else []
    return " ".join(parts)


def seconds_text(seconds: float) -> str:
    """A number of seconds as a message says it: to a tenth, without a trailing ".0" (10, 10.2; never 10.1553),
    and under a second to two digits (0.25, 0.05)."""
    return f"{seconds:.2g}" if 0 < seconds < 1 else f"{seconds:.1f}".removesuffix(".0")
