"""data-slots: the database's data slots hold the same releases as every server's slots.

With [database], a go-live switches files and data together, so before it the data's live release must be
the servers' live release, and the staged files' data must be in the staging schema (else the switch is
refused at prepare). A backup or staging that differs otherwise, or a switch transaction left prepared,
is a warning. Without [database] there is nothing to compare, and the check says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from releaser.checks import ALL, CheckResult, Limits, ReleaseView, ServerView, Unreadable, not_checked
from releaser.dataslots import DataSlots, pending_problems, slot_disagreements

NAME = "data-slots"


@dataclass(frozen=True)
class DataFacts:
    """The data slots (or why they could not be read) and every server's slots, as the check's view read them."""

    schema: str | None
    data: DataSlots | Unreadable | None
    servers: Mapping[str, ServerView] = field(default_factory=dict)


def gather(fleet, view: ReleaseView, limits: Limits) -> DataFacts:
    """Read the data slots from the database's catalog; the servers' slots come from the view already read."""
    database = limits.environment.database
    if database is None:
        return DataFacts(None, None, view.servers)
    from releaser.datastatus import read_data_slots_or_error

    found = read_data_slots_or_error(limits.environment)
    return DataFacts(database.schema_name, Unreadable(found) if isinstance(found, str) else found, view.servers)


def judge(facts: DataFacts, limits: Limits, now: datetime) -> list[CheckResult]:
    """FAIL a server whose live (or staged) release is not the one the data slots hold; PASS without [database]."""
    if facts.schema is None:
        return [CheckResult(NAME, ALL, "PASS", "no [database] declared: the releases carry no data slots to compare")]
    if isinstance(facts.data, Unreadable):
        return [CheckResult(NAME, ALL, "FAIL", f"not checked: {facts.data.reason}")]
    data = facts.data
    results = []
    for server, view in facts.servers.items():
        if view.error is not None:
            results.append(not_checked(NAME, server, Unreadable(view.error)))
            continue
        found = slot_disagreements(view, data)
        if not found:
            results.append(CheckResult(NAME, server, "PASS", f"files and data agree (schema {facts.schema}): "
                                                              f"{_slots_line(data)}"))
            continue
        status = "FAIL" if any(d.blocks_go_live for d in found) else "WARN"
        results.append(CheckResult(NAME, server, status, "; ".join(d.describe() for d in found)))
    results.extend(CheckResult(NAME, ALL, "WARN", line) for line in pending_problems(data))
    return results


def _slots_line(data: DataSlots) -> str:
    return ", ".join(f"{slot} {data.slot(slot) or 'nothing'}" for slot in ("live", "backup", "staging"))
