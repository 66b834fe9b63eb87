"""The check registry, the release view, overrides and the environment fields the checks read."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path

import pytest

from checkenv import NOW, environment, limits
from releaser.checks import (
    CHECKS, CheckResult, Limits, ServerView, apply_overrides, check_names, due_moment, parse_moment, parse_server_view,
    select_checks, summarise, view_from_servers,
)
from releaser.config import load_environment
from releaser.errors import ConfigError, ReleaserError

PROJECT = Path(__file__).resolve().parents[2]


def test_registry_order_is_the_table_order():
    """Checks run and show in one fixed order, each module named as the table shows it."""
    assert check_names() == ("reachable", "disk", "staged", "rollback-target", "serving", "data-slots", "smoke", "config-parity",
                             "embargo", "lock", "deadline", "window", "people", "rehearsal")
    assert all(callable(module.gather) and callable(module.judge) for module in CHECKS)


def test_select_checks_by_name_and_refuse_typos():
    """--only takes comma-separated names in any order and refuses an unknown one, listing the real ones."""
    assert [m.NAME for m in select_checks("people, smoke")] == ["smoke", "people"]
    with pytest.raises(ReleaserError, match="checks are: reachable"):
        select_checks("smoek")


def test_status_must_be_a_word_we_know():
    """A CheckResult is PASS, WARN or FAIL and nothing else."""
    with pytest.raises(ValueError):
        CheckResult("disk", "web-1", "OK", "")


RESULTS = [CheckResult("deadline", "all", "FAIL", "a: uploaded 2 h late"), CheckResult("smoke", "web-1", "FAIL", "404"),
           CheckResult("disk", "web-1", "PASS", "plenty")]


def test_apply_overrides_turns_named_fails_into_marked_warnings():
    """Only the named check's FAIL becomes WARN, its detail starting "overridden: reason"; the input is unchanged."""
    after = apply_overrides(RESULTS, {"deadline": "data verified by phone with the producer"})
    assert [r.status for r in after] == ["WARN", "FAIL", "PASS"]
    assert after[0].detail == "overridden: data verified by phone with the producer; a: uploaded 2 h late"
    assert RESULTS[0].status == "FAIL"


@pytest.mark.parametrize(
    "overrides, message",
    [
        pytest.param({"deadlines": "x"}, "unknown check 'deadlines'", id="typo"),
        pytest.param({"deadline": " "}, "needs a reason", id="no-reason"),
    ],
)
def test_apply_overrides_refuses_typos_and_empty_reasons(overrides, message):
    """An override can never wave a FAIL through by accident."""
    with pytest.raises(ReleaserError, match=message):
        apply_overrides(RESULTS, overrides)


def test_summarise_counts_and_names_failures():
    """One line says how many failed, where, and how many passed."""
    assert summarise(RESULTS) == "2 FAIL (deadline, smoke on web-1), 1 PASS"


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_parse_server_view_reads_slots_and_files():
    """The release-view script's lines become slots, the release under check and its decoded files."""
    text = (f"slot live releases/r1\nslot staging releases/r2\nrelease r2\n"
            f"file .releaser-sha256sums {encoded('sums')}\nfile manifest.json {encoded('{}')}\n")
    view = parse_server_view("web-1", text)
    assert (view.live, view.backup, view.staging, view.release, view.on_disk) == ("r1", None, "r2", "r2", True)
    assert (view.sums, view.manifest, view.records) == ("sums", "{}", "")
    assert parse_server_view("web-1", "release r9\nmissing\n").on_disk is False


MANIFEST = '{"release_id": "r2", "publications": ["phof"], "files": {}}'


def test_view_takes_the_most_common_release_and_its_due_time():
    """The release most servers stage is the one checked, and it is due at phof's next release."""
    servers = {name: ServerView(name, "r1", None, "r2", "r2", True, "s", MANIFEST) for name in ("web-1", "web-2")}
    view = view_from_servers(servers, limits(), NOW)
    assert (view.release, view.problem, view.publications) == ("r2", None, ("phof",))
    assert view.due == datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "servers, problem",
    [
        pytest.param({"web-1": ServerView("web-1", "r1")}, "nothing is staged", id="nothing-staged"),
        pytest.param({"web-1": ServerView("web-1", "r1", None, "r2", "r2", True, "s", "{not json")},
                     "r2's manifest.json on web-1 is unreadable", id="bad-manifest"),
        pytest.param({"web-1": ServerView("web-1", "r1", None, "r2", "r2", False)}, "release r2 is not on any server",
                     id="not-on-disk"),
    ],
)
def test_view_says_why_a_release_cannot_be_checked(servers, problem):
    """Without a readable staged release the view carries the reason every release check will show."""
    assert view_from_servers(servers, limits(), NOW).problem.startswith(problem)


def test_due_moment_prefers_at_then_the_earliest_publication():
    """--at wins; otherwise the earliest next release among the release's publications."""
    at = datetime(2027, 1, 5, 9, 30, tzinfo=timezone.utc)
    assert due_moment(Limits(environment(), at=at), ("phof",), NOW) == at
    assert due_moment(limits(), ("excess-mortality", "phof"), NOW) == datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
    assert due_moment(limits(), (), NOW) is None


def test_parse_moment_reads_wall_time_in_the_zone():
    """A time without an offset is wall time in the publication's zone, across the clock change too."""
    assert parse_moment("2027-04-06 09:30", "Europe/London").utcoffset().total_seconds() == 3600
    with pytest.raises(ReleaserError, match="cannot read the time"):
        parse_moment("tomorrow", "Europe/London")


def write(tmp_path, text: str) -> str:
    path = tmp_path / "env.toml"
    path.write_text('transport = "local"\n[[servers]]\nname = "a"\nroot = "/tmp/a"\nlive_url = "http://h:1"\n'
                    'staging_url = "http://h:2"\n' + text)
    return str(path)


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param('[[publications]]\nname = "p"\nrule = "first Tuesday at 9.30"\ndeadline = "Wednesday before at 17:00"\n',
                     "publications[0].rule: cannot read release rule; expected one of:", id="rule"),
        pytest.param('[[publications]]\nname = "p"\nrule = "every Monday at 07:00"\ndeadline = "Friday after at 17:00"\n',
                     "publications[0].deadline: cannot read deadline rule; expected one of:", id="deadline"),
        pytest.param('[[publications]]\nname = "p"\nrule = "every Monday at 07:00"\ndeadline = "1 working day before at 17:00"\n'
                     'timezone = "Europe/Londn"\n', "publications[0].timezone: unknown time zone;", id="zone"),
        pytest.param('[thresholds]\nmin_free_gb = 3\n', "thresholds.min_free_gb: unknown field", id="typo"),
        pytest.param('[people]\nrelease_manager = "ana"\n[[people.on_call]]\nname = "ben"\nleave = [{start = 2026-12-04, end = 2026-12-01}]\n',
                     "people.on_call[0].leave[0]: leave ends (2026-12-01) before it starts (2026-12-04)", id="leave"),
    ],
)
def test_bad_issue_5_fields_name_file_and_field(tmp_path, text, message):
    """A calendar or threshold mistake is a ConfigError in the "file: field: message" form."""
    with pytest.raises(ConfigError) as error:
        load_environment(write(tmp_path, text), PROJECT)
    assert message in str(error.value) and str(error.value).startswith(str(tmp_path))


def test_sandbox_token_is_refused_outside_the_sandbox(tmp_path):
    """A token written in the file is for the local sandbox only; SSH environments must use the variable."""
    path = write(tmp_path, '[staging_access]\nsandbox_token = "x"\n')
    Path(path).write_text(Path(path).read_text().replace('transport = "local"', 'transport = "ssh"'))
    with pytest.raises(ConfigError, match="sandbox_token is for the local sandbox only"):
        load_environment(path, PROJECT)


def test_shipped_local_environment_declares_what_the_checks_need():
    """environments/local.toml loads with publications, smoke checks, a staging credential, people and thresholds."""
    local = load_environment("local", PROJECT)
    assert [p.name for p in local.publications] == ["phof", "excess-mortality"]
    assert local.smoke and local.staging_access and local.people.release_manager
    assert sum(p.can_rollback for p in local.people.on_call) >= local.thresholds.min_on_call
