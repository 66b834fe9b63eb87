"""deadline: every data set in the release was uploaded and QA-signed-off before its publication's upload deadline.

Each late item is named with how late it was. The records come from `invoke data upload` and `invoke data
sign-off` (releases/<id>/.releaser-datasets.json on every server), falling back to the manifest's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from releaser.calendar import next_release, upload_deadline_for
from releaser.checks import ALL, CheckResult, Limits, ReleaseView, ServerView, sums_digest
from releaser.config import Environment
from releaser.datasets import dataset_states, judge_dataset, parse_sums
from releaser.order import counted

NAME = "deadline"


@dataclass(frozen=True)
class DeadlineFacts:
    """The release as the fleet sees it (its manifest and records), and which servers' records differ."""

    view: ReleaseView
    differing: tuple[str, ...] = ()


def gather(fleet, view: ReleaseView, limits: Limits) -> DeadlineFacts:
    """Nothing more to read: the release view already holds the manifest, the records and the sums."""
    return DeadlineFacts(view, records_differ(view.servers))


def records_differ(servers: Mapping[str, ServerView]) -> tuple[str, ...]:
    """Name the servers whose data records differ from the most common ones."""
    readable = {name: sums_digest(view.records) for name, view in servers.items() if view.error is None and view.release}
    if not readable:
        return ()
    common = max(set(readable.values()), key=list(readable.values()).count)
    return tuple(counted(name for name, digest in readable.items() if digest != common))


def upload_deadline(environment: Environment, publication: str, at: datetime | None, now: datetime) -> datetime | None:
    """Return the upload deadline of `publication`'s release on the day of `at` (default: its next release), or None."""
    declared = next((p for p in environment.publications if p.name == publication), None)
    if declared is None:
        return None
    schedule = declared.schedule()
    if at is not None:
        return upload_deadline_for(schedule, at.astimezone(ZoneInfo(declared.timezone)).date())
    release = next_release(schedule, now)
    return release.upload_deadline if release else None


def judge(facts: DeadlineFacts, limits: Limits, now: datetime) -> list[CheckResult]:
    """One row per data set: FAIL when late (saying how late) or unknown to the calendar; WARN while still open."""
    view = facts.view
    if view.manifest is None:
        return [CheckResult(NAME, ALL, "FAIL", f"not checked: {view.problem or 'no release to check'}")]
    results = []
    if facts.differing:
        results.append(CheckResult(NAME, ALL, "FAIL", f"data records differ on {', '.join(facts.differing)}: "
                                                      "run the upload or sign-off again so every server agrees"))
    if not view.manifest.datasets:
        return results + [CheckResult(NAME, ALL, "WARN", f"{view.release} declares no data sets: nothing to check")]
    states = dataset_states(view.manifest, view.records, parse_sums(view.sums))
    for state in states:
        deadline = upload_deadline(limits.environment, state.publication, limits.at, now)
        if deadline is None:
            results.append(CheckResult(NAME, ALL, "FAIL", f"{state.name}: publication {state.publication!r} is not in "
                                                          "the environment's [[publications]], so it has no deadline"))
            continue
        verdict = judge_dataset(state, deadline, now)
        results.append(CheckResult(NAME, ALL, verdict.status, verdict.detail))
    return results

