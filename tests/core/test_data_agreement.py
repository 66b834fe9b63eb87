"""The data slots beside the servers' slots, for status and the data-slots check: slots in, verdicts out."""

from __future__ import annotations

import pytest

from checkenv import NOW, limits, statuses
from releaser.checks import ALL, ServerView, Unreadable
from releaser.checks.data_slots import DataFacts, judge
from releaser.dataslots import DataSlots, judge_data_status, status_exit_code_with_data
from releaser.slots import SlotState

DATABASE = {"schema": "phof", "dsn_env": "PHOF_DATABASE_URL"}


def data(live=None, backup=None, staging=None, pending=()) -> DataSlots:
    return DataSlots("phof", live, backup, staging, {}, tuple(pending))


def state(live=None, backup=None, staging=None) -> SlotState:
    return SlotState(live, backup, staging, frozenset(r for r in (live, backup, staging) if r))


def view(server, live=None, backup=None, staging=None, error=None) -> ServerView:
    return ServerView(server, live, backup, staging, error=error)


# ---- status ----

def test_status_agrees_when_every_server_and_the_data_hold_the_same_releases():
    """r2 live, r1 backup, r3 staged in the files and in the data: no line to print, exit as the servers say."""
    found = judge_data_status("phof", data("r2", "r1", "r3"), {"web-1": state("r2", "r1", "r3"),
                                                               "web-2": state("r2", "r1", "r3")})
    assert found.agrees and found.problems == () and not found.live_differs
    assert status_exit_code_with_data(0, found) == 0


def test_status_names_the_slot_and_both_sides_when_the_data_is_behind():
    """The servers went live with r3 but the data still has r2 live: MIXED, exit 7, both releases named."""
    found = judge_data_status("phof", data("r2", "r1"), {"web-1": state("r3", "r2"), "web-2": state("r3", "r2")})
    assert found.problems == ("live: the servers have r3, the database has r2",
                              "backup: the servers have r2, the database has r1")
    assert found.live_differs and status_exit_code_with_data(0, found) == 7


def test_status_names_the_servers_when_they_differ_among_themselves():
    """web-2 is on another release: each line says which servers it is about; a down server is left out."""
    found = judge_data_status("phof", data("r2", "r1"), {"web-1": state("r2", "r1"), "web-2": state("r1"),
                                                         "web-3": None})
    assert found.problems == ("web-2: live: the servers have r1, the database has r2",
                              "web-2: backup: the servers have nothing, the database has r1")
    assert found.live_differs


def test_status_warns_of_a_staging_or_a_leftover_transaction_without_calling_it_mixed():
    """Data not staged yet and a prepared transaction left behind are problems, but the live data agrees."""
    found = judge_data_status("phof", data("r2", "r1", pending=["releaser:phof:1"]),
                              {"web-1": state("r2", "r1", "r3")})
    assert found.problems == ("staging: the servers have r3, the database has no data staged for it",
                              "1 switch transaction(s) left prepared in the database (releaser:phof:1); "
                              "the next switch or prune rolls them back")
    assert not found.agrees and not found.live_differs and status_exit_code_with_data(0, found) == 0


@pytest.mark.parametrize("servers_code, expected", [(0, 5), (5, 5), (7, 7)])
def test_status_exits_5_when_the_database_does_not_answer_unless_the_servers_are_mixed(servers_code, expected):
    """An unreadable catalog is 'did not answer' (5); MIXED servers still say 7."""
    found = judge_data_status("phof", None, {"web-1": state("r2")}, error="database: cannot connect: refused")
    assert found.slots is None and found.error == "database: cannot connect: refused" and not found.agrees
    assert status_exit_code_with_data(servers_code, found) == expected


def test_status_without_a_database_exits_as_the_servers_say():
    assert [status_exit_code_with_data(code, None) for code in (0, 5, 7)] == [0, 5, 7]


# ---- the data-slots check ----

def test_check_passes_without_a_database_and_says_there_was_nothing_to_compare():
    """A static site has no data slots: one PASS that says so, not a claim that data agrees."""
    [result] = judge(DataFacts(None, None, {"web-1": view("web-1", "r1")}), limits(), NOW)
    assert (result.server, result.status) == (ALL, "PASS")
    assert result.detail == "no [database] declared: the releases carry no data slots to compare"


def test_check_passes_each_server_whose_slots_the_data_matches():
    facts = DataFacts("phof", data("r2", "r1", "r3"), {"web-1": view("web-1", "r2", "r1", "r3")})
    [result] = judge(facts, limits(database=DATABASE), NOW)
    assert result.status == "PASS"
    assert result.detail == "files and data agree (schema phof): live r2, backup r1, staging r3"


@pytest.mark.parametrize("servers, expected", [
    pytest.param(("r3", "r2", None), "FAIL", id="live-differs"),
    pytest.param(("r2", "r1", "r4"), "FAIL", id="staged-files-without-their-data"),
    pytest.param(("r2", "r0", "r3"), "WARN", id="backup-differs"),
    pytest.param(("r2", "r1", None), "WARN", id="data-staged-without-files"),
])
def test_check_fails_what_would_break_the_go_live_and_warns_of_the_rest(servers, expected):
    """Live, or staged files whose data is elsewhere, stop the go-live; a different backup or stale data staging
    are warnings."""
    facts = DataFacts("phof", data("r2", "r1", "r3"), {"web-1": view("web-1", *servers),
                                                       "web-2": view("web-2", "r2", "r1", "r3")})
    results = judge(facts, limits(database=DATABASE), NOW)
    assert statuses(results) == {"web-1": expected, "web-2": "PASS"}


def test_check_names_both_releases_in_a_failure():
    facts = DataFacts("phof", data("r2", "r1"), {"web-1": view("web-1", "r3", "r2")})
    [result] = judge(facts, limits(database=DATABASE), NOW)
    assert result.detail == ("live: the servers have r3, the database has r2; "
                             "backup: the servers have r2, the database has r1")


def test_check_fails_when_the_database_cannot_be_read_and_for_each_server_it_could_not_read():
    unreadable = DataFacts("phof", Unreadable("database: cannot connect: refused"), {})
    [result] = judge(unreadable, limits(database=DATABASE), NOW)
    assert (result.server, result.status, result.detail) == (ALL, "FAIL",
                                                             "not checked: database: cannot connect: refused")
    facts = DataFacts("phof", data("r2"), {"web-1": view("web-1", error="cannot read its slots: timeout")})
    assert statuses(judge(facts, limits(database=DATABASE), NOW)) == {"web-1": "FAIL"}


def test_check_warns_of_a_transaction_left_prepared():
    facts = DataFacts("phof", data("r2", pending=["releaser:phof:9"]), {"web-1": view("web-1", "r2")})
    results = judge(facts, limits(database=DATABASE), NOW)
    assert [(r.server, r.status) for r in results] == [("web-1", "PASS"), (ALL, "WARN")]
    assert "releaser:phof:9" in results[1].detail


def test_status_says_a_leftover_transaction_as_it_is_and_a_disagreement_as_one(capsys):
    """Under the status table: the staging gap is 'files and data disagree'; the prepared transaction is not."""
    from releaser import ui
    from releaser.fleet import ServerReport

    found = judge_data_status("phof", data("r2", "r1", pending=["releaser:phof:1"]), {"web-1": state("r2", "r1", "r3")})
    ui.show_status("prod", [ServerReport("web-1", state("r2", "r1", "r3"))], data=found)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("WARNING")]
    assert any(line.startswith("WARNING: files and data disagree: staging: the servers have r3") for line in warnings)
    assert any(line.startswith("WARNING: 1 switch transaction(s) left prepared") for line in warnings), warnings
