"""Issue 12, item 7 (part): the breach report's grammar and its blank header fields. Pure: facts in, Markdown out."""

from datetime import date, datetime, timedelta, timezone

import pytest

from releaser.breach import BreachFacts, blank_fields, render_breach_report

DUE = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
FULL = {"producer": "Stats Office", "lead_official": "Dr A", "lead_official_contact": "a@stats", "output_url": "https://x"}


def report(minutes: int, metadata: dict) -> str:
    facts = BreachFacts("r3", DUE, DUE + timedelta(minutes=minutes), (), ())
    return render_breach_report(facts, metadata=metadata, publication="PHOF", today=date(2026, 12, 1))


@pytest.mark.parametrize(("minutes", "said"), [
    pytest.param(-1, "1 minute early.", id="one-early"),
    pytest.param(-35, "35 minutes early.", id="many-early"),
    pytest.param(1, "a delay of 1 minute.", id="one-late"),
    pytest.param(135, "a delay of 135 minutes.", id="many-late"),
])
def test_minutes_agree_in_number(minutes, said):
    """'1 minute', never '1 minutes'."""
    assert said in report(minutes, FULL)


def test_blank_header_fields_are_named_in_the_report():
    """A [breach] section without producer and lead official says so at the top, instead of blank cells alone."""
    text = report(10, {"output_url": "https://x"})
    assert blank_fields({"output_url": "https://x"}) == ["producer", "lead_official", "lead_official_contact"]
    assert "leaves producer, lead_official, lead_official_contact blank" in text
    assert "To complete" not in report(10, FULL)
