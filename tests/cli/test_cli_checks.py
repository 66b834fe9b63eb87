"""`invoke calendar`, `invoke check` and `invoke data-*` as a user meets them: subprocesses, output, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from checkenv import write_environment
from conftest import PROJECT
from releaser.config import load_environment

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLES = PROJECT / "examples" / "releases"
TASKS = ["calendar", "check", "data-upload", "data-sign-off", "data-status"]


def invoke(*args: str) -> subprocess.CompletedProcess:
    """Run `invoke ARGS` in the project directory, without colour, and return the finished process."""
    environ = {**os.environ, "RELEASER_ACTOR": "cli@tests", "NO_COLOR": "1", "COLUMNS": "220"}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120, env=environ, stdin=subprocess.DEVNULL)


@pytest.fixture
def env_file(tmp_path) -> str:
    """A two-server local sandbox environment with the issue-5 settings, its own roots and free ports."""
    return str(write_environment(tmp_path))


@pytest.mark.parametrize("task", TASKS)
def test_every_new_task_has_help_for_every_flag(task):
    """`invoke TASK --help` describes the task and each of its flags."""
    done = invoke(task, "--help")
    assert done.returncode == 0
    options = [line for line in done.stdout.split("Options:")[-1].splitlines() if re.match(r"  -\S", line)]
    assert options and all(re.search(r"\S\s{2,}\S", line) for line in options), options


def test_calendar_shows_both_publications_with_deadlines(env_file):
    """The table lists each publication's releases with the zone, the upload deadline and how far away each is."""
    done = invoke("calendar", "--env", env_file, "--months", "3")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("│")]
    assert {row.split("│")[1].strip() for row in rows} == {"phof", "excess-mortality"}
    assert all(re.search(r"09:30 (GMT|BST)|14:00 (GMT|BST)", row) for row in rows)
    assert all(row.count(" in ") >= 2 for row in rows)  # "in 7 days 21 h" for the release and for the deadline


def test_calendar_of_one_publication_writes_an_ics_file(env_file, tmp_path):
    """--publication keeps one publication's rows and --ics writes an iCalendar file with CRLF line ends."""
    ics = tmp_path / "phof.ics"
    done = invoke("calendar", "--env", env_file, "--publication", "phof", "--months", "6", "--ics", str(ics))
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("│")]
    assert rows and all(row.split("│")[1].strip() == "phof" for row in rows)
    text = ics.read_bytes().decode()
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    title = load_environment(env_file, PROJECT).publication("phof").title or "phof"
    assert text.count(f"SUMMARY:{title}: release\r\n") == len(rows)
    assert text.count(f"SUMMARY:{title}: upload deadline\r\n") == len(rows)
    assert "BEGIN:VTIMEZONE\r\nTZID:Europe/London\r\n" in text and "DTSTART;TZID=Europe/London:" in text
    assert f"wrote {len(rows)} {'release' if len(rows) == 1 else 'releases'} and their upload deadlines" in done.stderr


def test_calendar_from_a_past_day_lists_past_months(env_file):
    """--from shows the months from that day, past ones too, and says where it starts."""
    done = invoke("calendar", "--env", env_file, "--publication", "phof", "--from", "2024-12-01", "--months", "2", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [row["at"][:16] for row in found] == ["2024-12-03T09:30", "2025-01-07T09:30"]
    assert found[1]["upload_deadline"][:16] == "2024-12-31T17:00"
    assert found[1]["deadline_note"] == "upload deadline moved from Wed 1 Jan (New Year's Day)"
    table = invoke("calendar", "--env", env_file, "--publication", "phof", "--from", "2024-12-01", "--months", "2")
    assert "release calendar from Sun 1 Dec 2024 00:00 GMT" in table.stdout
    assert "upload deadline moved from Wed 1 Jan (New Year's Day)" in " ".join(table.stdout.split())


def test_calendar_refuses_an_unreadable_from_day(env_file):
    done = invoke("calendar", "--env", env_file, "--from", "1 Dec 2024")
    assert done.returncode == 2
    assert "releaser: --from '1 Dec 2024': cannot read the day; write it as YYYY-MM-DD" in done.stderr


def test_calendar_json_gives_times_with_offsets(env_file):
    """--json prints only JSON: each release with its time and deadline as ISO strings with the zone offset."""
    done = invoke("calendar", "--env", env_file, "--json", "--months", "2")
    releases = json.loads(done.stdout)
    assert releases and all(re.search(r"[+-]\d\d:\d\d$", r["at"]) for r in releases)


@pytest.mark.parametrize(
    "args, code, message",
    [
        pytest.param(["calendar", "--publication", "phfo"], 2, "no publication named 'phfo'", id="unknown-publication"),
        pytest.param(["check", "--only", "smoek"], 2, "unknown check 'smoek'; checks are: reachable", id="unknown-check"),
        pytest.param(["check", "--release", "../r1"], 3, "bad release id '../r1'", id="bad-release-id"),
        pytest.param(["data-upload", "--dataset", "phof-indicators", "--file", "README.md"], 3, "nothing is staged",
                     id="upload-with-nothing-staged"),
        pytest.param(["data-upload", "--dataset", "phof;rm -rf /", "--file", "README.md"], 3, "bad data set name",
                     id="upload-bad-data-set-name"),
        pytest.param(["data-sign-off", "--dataset", "../x"], 3, "bad data set name", id="sign-off-bad-data-set-name"),
    ],
)
def test_user_errors_exit_with_their_code_and_a_message(env_file, args, code, message):
    """A mistake is one line on stderr saying what is wrong, with the error tree's exit code."""
    done = invoke(*args, "--env", env_file)
    assert done.returncode == code, done.stderr
    assert message in done.stderr


def test_calendar_without_publications_says_what_to_add(tmp_path):
    """An environment without [[publications]] gets a ConfigError naming what to add."""
    done = invoke("calendar", "--env", str(write_environment(tmp_path, settings="")))
    assert done.returncode == 2 and "declares no publications; add [[publications]]" in done.stderr


def test_check_json_with_nothing_staged_fails_with_exit_4(env_file):
    """With nothing staged, `check --json` prints only JSON naming the failing checks and exits 4."""
    done = invoke("check", "--env", env_file, "--json")
    assert done.returncode == 4, done.stderr
    report = json.loads(done.stdout)
    failed = {(r["check"], r["server"]) for r in report["results"] if r["status"] == "FAIL"}
    assert {("staged", "web-1"), ("staged", "web-2"), ("rollback-target", "web-1")} <= failed
    assert report["failed"] is True
    assert "releaser: pre-release checks failed:" in done.stderr


def test_check_table_after_staging_and_its_journal_entry(env_file, tmp_path):
    """After a stage, `check --only` prints one row per server and journals the run on every server."""
    staged = invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", env_file)
    assert staged.returncode == 0, staged.stderr
    done = invoke("check", "--env", env_file, "--only", "staged,embargo,smoke")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [[cell.strip() for cell in line.split("│")[1:4]] for line in done.stdout.splitlines() if line.startswith("│")]
    assert rows == [["staged", "web-1", "PASS"], ["staged", "web-2", "PASS"], ["smoke", "web-1", "PASS"],
                    ["smoke", "web-2", "PASS"], ["embargo", "web-1", "PASS"], ["embargo", "web-2", "PASS"]]
    journal = (tmp_path / "web-2" / ".releaser" / "journal.jsonl").read_text().splitlines()
    last = json.loads(journal[-1])
    assert (last["action"], last["outcome"], last["releases"]["staging"]) == ("check", "done", "r1")


def test_data_status_after_staging_shows_the_manifests_data_set(env_file):
    """`data-status --json` lists the staged release's data set with its uploader and deadline."""
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", env_file).returncode == 0
    done = invoke("data-status", "--env", env_file, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [row] = report["datasets"]
    assert (report["release"], row["dataset"], row["uploaded"]["by"]) == ("r1", "phof-indicators", "ana@stats")
    assert row["deadline"] and row["status"] in ("PASS", "WARN", "FAIL")


def test_check_on_an_app_root_that_is_not_there_leaves_it_not_there(env_file, tmp_path):
    """A mistyped root fails the disk check; check's journal line must not create the root, or the next check
    would pass disk on an empty directory. The journal warning names why the line is missing there."""
    root = tmp_path / "web-1"
    assert not root.exists()
    done = invoke("check", "--env", env_file)
    assert done.returncode == 4
    assert "cannot read its free disk space (is the app root there?)" in done.stdout
    assert f"web-1 (no app root {root} on this server)" in done.stderr
    assert not root.exists()
    status = invoke("status", "--env", env_file)  # QA: it showed an empty server and said nothing
    assert status.returncode == 0
    assert ("WARNING: web-1, web-2 have no app root (the [[servers]] root of the environment file is not there): a "
            "server never deployed to, or a mistyped root") in status.stderr


def test_data_upload_refuses_a_file_that_is_not_a_regular_file_in_its_dry_run_too(env_file, tmp_path):
    """QA: the dry run said 'would put /tmp in place of ...' (exit 0) where the real run refused; both refuse now,
    saying what the path is instead."""
    for dry in (["--dry-run"], []):
        done = invoke("data-upload", "--env", env_file, "--dataset", "phof-indicators", "--file", str(tmp_path), *dry)
        assert done.returncode == 1
        assert f"releaser: data file {tmp_path} is a directory; pass --file PATH" in done.stderr
