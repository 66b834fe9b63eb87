"""The rehearsal check's verdicts: pure, from journal events."""

from datetime import timedelta

import pytest

from checkenv import NOW, environment
from releaser.checks import Limits
from releaser.checks.rehearsal import RehearsalFacts, judge


def rehearsal(release="r2", outcome="done", days_ago=1.0):
    """A rehearse journal event for `release`, `days_ago` before NOW."""
    at = (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return {"action": "rehearse", "outcome": outcome, "at": at, "releases": {"staging": release},
            "timings": {"switch": 0.2, "revert": 0.1}, "detail": "GET /healthz -> 404"}


LIMITS = Limits(environment(go_live={"rehearsal_max_age_days": 7}))


@pytest.mark.parametrize("facts, status, words", [
    pytest.param(RehearsalFacts("r2", rehearsal()), "PASS", "r2 rehearsed", id="recent-same-release"),
    pytest.param(RehearsalFacts("r2", None), "FAIL", "no rehearsal on record", id="never-rehearsed"),
    pytest.param(RehearsalFacts("r2", rehearsal(outcome="failed")), "FAIL", "failed: GET /healthz -> 404", id="failed"),
    pytest.param(RehearsalFacts("r3", rehearsal()), "FAIL", "was of r2, but r3 is staged", id="other-release"),
    pytest.param(RehearsalFacts("r2", rehearsal(days_ago=9)), "FAIL", "9 days ago (limit 7)", id="too-old"),
])
def test_rehearsal_verdicts(facts, status, words):
    """Go-live requires a passing rehearsal of the staged release within the limit; each miss says what to run."""
    [result] = judge(facts, LIMITS, NOW)
    assert result.status == status and words in result.detail


def test_rehearsal_not_required_when_the_limit_is_zero():
    """rehearsal_max_age_days = 0 turns the requirement off, and says so."""
    [result] = judge(RehearsalFacts("r2", None), Limits(environment(go_live={"rehearsal_max_age_days": 0})), NOW)
    assert result.status == "PASS" and "not required" in result.detail
