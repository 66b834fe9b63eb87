"""The README, the runbooks and docs/ say what the code does, and point only at things inside the repository."""

from __future__ import annotations

import re

import pytest

from checkenv import NOW, environment
from conftest import PROJECT
from releaser.checks import CHECKS, Limits
from releaser.checks.rehearsal import RehearsalFacts, judge

DOCS = sorted([PROJECT / "README.md", *(PROJECT / "runbooks").glob("*.md"), *(PROJECT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def shown(path) -> str:
    return str(path.relative_to(PROJECT))


@pytest.mark.parametrize("doc", DOCS, ids=shown)
def test_docs_name_no_path_outside_the_repository(doc):
    """A user with only the repository can follow every pointer: no `../` path, and every relative link exists."""
    text = doc.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{shown(doc)} points at ../shared, which is not in the repository"
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # a URL
        resolved = (doc.parent / target).resolve()
        assert resolved.is_relative_to(PROJECT), f"{shown(doc)} links to {target}, outside the repository"
        assert resolved.exists(), f"{shown(doc)} links to {target}, which does not exist"


def test_the_readme_points_at_the_breach_reports_summary():
    """The two breach reports releaser grew out of are summarised in the repository, and README links there."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    why = (PROJECT / "docs" / "why.md").read_text(encoding="utf-8")
    assert "(docs/why.md)" in readme
    assert "135 minutes" in why and "08:15" in why and "no backup" in why.lower()


def check_table_rows() -> dict[str, str]:
    """README's check table: check name -> its 'FAIL when' text."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| check | FAIL when |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[1].strip(): cells[2].strip() for cells in rows}


def test_every_check_is_in_the_readme_table():
    """Each registered check has a row saying when it FAILs."""
    rows = check_table_rows()
    assert sorted(rows) == sorted(module.NAME for module in CHECKS)


def test_the_rehearsal_check_fails_and_the_docs_say_so():
    """No rehearsal on record is a FAIL in the code, so README and the go-live runbook may not call it a warning."""
    [result] = judge(RehearsalFacts("r2", None), Limits(environment(go_live={"rehearsal_max_age_days": 7})), NOW)
    assert result.status == "FAIL"
    assert "rehearsal_max_age_days" in check_table_rows()["rehearsal"]
    runbook = (PROJECT / "runbooks" / "go-live.md").read_text(encoding="utf-8")
    assert "warns when there is no rehearsal" not in runbook
    assert "the `rehearsal` check **FAILs**" in runbook


def test_every_check_is_in_the_go_live_runbooks_failing_check_table():
    """A FAIL at T-10 min has somewhere to go: each registered check is named in the go-live runbook's table."""
    runbook = (PROJECT / "runbooks" / "go-live.md").read_text(encoding="utf-8")
    table = runbook.split("| failing check | follow |", 1)[1].split("\n\n", 1)[0]
    missing = [module.NAME for module in CHECKS if f"`{module.NAME}`" not in table]
    assert not missing, f"runbooks/go-live.md's failing-check table does not name {', '.join(missing)}"


def test_the_stale_copy_section_gives_the_exit_status_really_gives():
    """One server's stale copy makes status exit 7 with a MIXED warning, so the runbook may not promise exit 0."""
    from releaser.identity import Marker, Served
    from releaser.serverstate import ServerReport, status_exit_code
    from releaser.slots import SlotState
    from releaser.web import Probe

    def serving(server: str, release: str) -> ServerReport:
        served = Served("http://x/.releaser/release.json", Marker(release, ""))
        return ServerReport(server, SlotState("r2", "r1", None), health=Probe("http://x/healthz", True, 200, "", served=served))

    code = status_exit_code([serving("web-1", "r2"), serving("web-2", "r2"), serving("web-3", "r1")])
    section = (PROJECT / "runbooks" / "server-failure.md").read_text(encoding="utf-8").split(
        "## A server serves a stale copy", 1)[1]
    assert code == 7
    assert "Status still exits 0" not in section
    assert "exits 7" in section and "the fleet is MIXED" in section
    mixed = (PROJECT / "runbooks" / "rollback.md").read_text(encoding="utf-8").split("## MIXED", 1)[1]
    assert "STALE" in mixed.split("2. Free the failed command's lock", 1)[0]


@pytest.mark.parametrize("plan, slots", [
    ("plan_data_rollback", dict(live="r1", backup="r2")),
    ("plan_data_rollback", dict(live="r3", backup="r1")),
    ("plan_data_go_live", dict(live="r3", backup="r1", staging="r2")),
], ids=["backup-apart", "live-apart-rollback", "live-apart-go-live"])
def test_a_switch_refused_because_files_and_data_disagree_points_at_a_section_about_it(plan, slots):
    """QA on-call: with the data's slots apart from the servers' the switch is refused and points at a runbook
    section; that section must say what to do about the database, not only about servers."""
    from releaser import dataslots
    from releaser.errors import PlanRefused

    with pytest.raises(PlanRefused) as refused:
        getattr(dataslots, plan)(dataslots.DataSlots("phof", **slots), "r2" if plan == "plan_data_go_live" else "r1",
                                 "r2" if plan == "plan_data_rollback" else "r1")
    section = re.search(r"invoke runbook rollback \(section ([^)]+)\)", refused.value.hint).group(1)
    runbook = (PROJECT / "runbooks" / "rollback.md").read_text(encoding="utf-8")
    heading = next(line for line in runbook.splitlines() if line.startswith("## ") and section in line)
    body = runbook.split(heading, 1)[1].split("\n## ", 1)[0]
    assert "files and data disagree" in body and "ALTER SCHEMA" in body
