"""How data-status and the deadline check say when a file was uploaded: the year, when it is not the deadline's."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from releaser.datasets import moment_text

LONDON = ZoneInfo("Europe/London")


def test_a_moment_in_the_deadline_s_year_is_said_without_it():
    deadline = datetime(2026, 11, 25, 17, 0, tzinfo=LONDON)
    assert moment_text(datetime(2026, 11, 25, 14, 0, tzinfo=timezone.utc), deadline) == "Wed 25 Nov 14:00 GMT"


def test_a_moment_in_another_year_says_its_year():
    deadline = datetime(2026, 1, 6, 17, 0, tzinfo=LONDON)
    assert moment_text(datetime(2024, 1, 10, 14, 0, tzinfo=timezone.utc), deadline) == "Wed 10 Jan 2024 14:00 GMT"
