"""The example releases' data sets pass the deadline check on whatever day the checks run.

They were dated in 2026-2027, so a check on r3 run in December 2026 said "uploaded 28 days late", and one
run before 25 Nov 2026 failed r1 too. Now they are stamped well in the past, before any release they meet.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conftest import EXAMPLES, PROJECT
from releaser.bundle import read_bundle
from releaser.checks import Limits, ReleaseView, deadline
from releaser.checks.deadline import DeadlineFacts
from releaser.config import load_environment

DAYS = [datetime(2025, 3, 1, 12, tzinfo=timezone.utc), datetime(2026, 11, 20, 12, tzinfo=timezone.utc),
        datetime(2026, 12, 1, 21, 48, tzinfo=timezone.utc), datetime(2027, 1, 28, 9, tzinfo=timezone.utc),
        datetime(2031, 7, 4, 12, tzinfo=timezone.utc)]


def sums_text(manifest) -> str:
    return "".join(f"{sha}  {name}\n" for name, sha in sorted(manifest.files.items()))


@pytest.mark.parametrize("release", ["r1", "r2", "r3"])
@pytest.mark.parametrize("now", DAYS, ids=lambda d: f"{d:%Y-%m-%d}")
def test_example_data_sets_meet_the_deadline_any_day(release, now):
    """The deadline check on the sandbox environment PASSes each example's data sets, any year, any month."""
    environment = load_environment("local", PROJECT)
    manifest = read_bundle(EXAMPLES / release).manifest
    view = ReleaseView({}, release, manifest, {}, sums_text(manifest))
    results = deadline.judge(DeadlineFacts(view), Limits(environment), now)
    assert results and all(r.status == "PASS" for r in results), [(r.status, r.detail) for r in results]


@pytest.mark.parametrize("release", ["r1", "r2", "r3"])
def test_example_stamps_are_in_the_past(release):
    """No example data set was uploaded or signed off after the day these tests can run (nor after today)."""
    manifest = read_bundle(EXAMPLES / release).manifest
    earliest = min(DAYS)
    for dataset in manifest.datasets:
        assert dataset.uploaded_at < earliest and dataset.qa_signed_off_at < earliest
        assert dataset.uploaded_by != dataset.qa_signed_off_by  # else the check WARNs: signed off by its own uploader
