"""Issue 12, items 7 and 9 through the CLI: a forced publication says it is a breach, and the breach report
follows the publication across release ids."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from conftest import EXAMPLES, sandbox_servers, write_environment
from test_truth_cli import invoke

LONDON = ZoneInfo("Europe/London")


def production_like(tmp_path, *, minutes_ago: int):
    """An environment without --now whose only publication was due `minutes_ago` minutes ago (every week)."""
    due = (datetime.now(LONDON) - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)
    extra = f"""
    [[publications]]
    name = "phof"
    title = "Public Health Outcomes Framework"
    rule = "every {due:%A} at {due:%H:%M}"
    deadline = "1 working days before at 17:00"
    timezone = "Europe/London"
    """
    return write_environment(tmp_path / "production.toml", servers=sandbox_servers(tmp_path / "servers", 2),
                             extra=extra, allow_now=False), due


def working_day_minutes_ago(low_days: float, high_days: float) -> int:
    """Minutes ago of the first whole hour (plus 40 min) between the two that fell on a working day, so a weekly
    rule on that day is not moved off a weekend or bank holiday, whatever day the tests run."""
    from releaser.calendar import is_working_day

    now = datetime.now(LONDON)
    for minutes in range(int(low_days * 1440) + 40, int(high_days * 1440), 60):
        if is_working_day((now - timedelta(minutes=minutes)).date()):
            return minutes
    raise AssertionError(f"no working day between {low_days} and {high_days} days ago")


def forced(env, *more):
    """`go-live --now --force`, accepting the checks that depend on the day and on the first release."""
    return invoke("go-live", "--now", "--force", "--yes", "--reason", "late figures approved",
                  "--override", "rollback-target", "--override", "deadline", "--override", "people", "--override", "rehearsal", *more,
                  "--env", str(env))


def test_forced_late_publication_says_how_late_that_it_is_a_breach_and_what_to_run(tmp_path):
    """40 minutes after the slot, `go-live --now --force` warns '40 minutes late', 'breach', and the exact command."""
    env, due = production_like(tmp_path, minutes_ago=40)
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(env)).returncode == 0
    done = forced(env)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert re.search(r"r1 went live 4[01] minutes late against phof's scheduled release at "
                     + due.strftime("%H:%M %Z on %A %d %B %Y"), said), said
    assert "is a breach of the Code of Practice for Statistics" in said
    assert f"draft the report with: invoke breach-report --release r1 --env {env} --out breach.md" in said


def test_a_publication_more_than_a_day_after_a_missed_slot_is_late_for_it_and_its_report_says_so(tmp_path):
    """QA-b finding 1: a slot one to three days ago was missed with nothing journaled; `go-live --now --force` now is
    late for it (not early for the next), and `breach-report`, with or without `--scheduled` that slot
    as the late-release runbook runs it, finds the go-live and says how late."""
    minutes_ago = working_day_minutes_ago(1.1, 3.4)  # more than a day late, and nearer this slot than the next
    env, due = production_like(tmp_path, minutes_ago=minutes_ago)
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(env)).returncode == 0
    done = forced(env)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    warned = re.search(r"r1 went live (\d+) minutes \(\d days? [^)]*\) late against phof's scheduled release at "
                       + re.escape(due.strftime("%H:%M %Z on %A %d %B %Y")), said)
    assert warned and abs(int(warned[1]) - minutes_ago) <= 61, said  # an hour either way for a clock change
    assert " early against " not in said

    scheduled = due.strftime("%Y-%m-%dT%H:%M")
    for asked in ((), ("--scheduled", scheduled)):
        report = invoke("breach-report", "--release", "r1", *asked, "--env", str(env))
        assert report.returncode == 0, report.stderr
        text = " ".join(report.stdout.split())
        assert f"was due on {due:%A %d %B %Y at %H:%M %Z}" in text, text
        assert re.search(rf"as release r1, a delay of {warned[1]} minutes\.", text), text
        assert "has not been published" not in text
        assert re.search(r"- \d\d \w+ [\d:]+ go-live of r1 done: late figures approved", text), text


def test_breach_report_scheduled_at_a_missed_slot_finds_a_go_live_journaled_for_the_next(tmp_path):
    """Four to six days after a missed weekly slot the go-live is nearer the next slot and journals that one (early); the
    runbook's `breach-report --scheduled` the missed slot still finds that go-live and reports it late for it."""
    minutes_ago = working_day_minutes_ago(4.1, 6.9)  # nearer the next slot than this one
    env, due = production_like(tmp_path, minutes_ago=minutes_ago)
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(env)).returncode == 0
    done = forced(env)
    assert done.returncode == 0, done.stderr
    assert "early against phof's scheduled release" in " ".join(done.stderr.split())

    report = invoke("breach-report", "--release", "r1", "--scheduled", due.strftime("%Y-%m-%dT%H:%M"), "--env", str(env))
    assert report.returncode == 0, report.stderr
    text = " ".join(report.stdout.split())
    assert f"was due on {due:%A %d %B %Y at %H:%M %Z}" in text, text
    late = re.search(r"as release r1, a delay of (\d+) minutes\.", text)
    assert late and abs(int(late[1]) - minutes_ago) <= 61, text
    assert "has not been published" not in text
    assert re.search(r"- \d\d \w+ [\d:]+ go-live of r1 done: late figures approved", text), text


def test_breach_report_is_the_same_publication_with_the_failed_or_the_fixed_release_id(tmp_path):
    """r3 fails and reverts, a notice goes up, r2 is published as the fix: both ids give one report of the slot,
    and `history --release r3` keeps the overrides (naming the checks), the stopped go-live and the notice."""
    env, due = production_like(tmp_path, minutes_ago=40)
    for release in ("r1",):
        assert invoke("deploy", "--stage", "--release", str(EXAMPLES / release), "--env", str(env)).returncode == 0
    assert forced(env).returncode == 0  # r1 publishes today's slot, 40 minutes late
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r3"), "--env", str(env)).returncode == 0
    stopped = forced(env)
    assert stopped.returncode == 4, stopped.stderr  # r3's configuration differs from live's: stopped by the checks
    failed = forced(env, "--override", "config-parity")
    assert failed.returncode == 6, failed.stderr  # r3's /healthz is missing: verification fails, every server reverts
    assert "early against phof's scheduled release" not in failed.stderr
    assert invoke("notice", "--message", "Figures delayed; next update 11:00", "--env", str(env)).returncode == 0
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r2"), "--env", str(env)).returncode == 0
    fixed = forced(env, "--override", "config-parity")
    assert fixed.returncode == 0, fixed.stderr
    assert invoke("notice", "--clear", "--env", str(env)).returncode == 0
    assert "early against phof's scheduled release" in " ".join(fixed.stderr.split())

    by_failed = invoke("breach-report", "--release", "r3", "--env", str(env))
    by_fix = invoke("breach-report", "--release", "r2", "--env", str(env))
    assert by_failed.returncode == 0 and by_fix.returncode == 0, by_failed.stderr + by_fix.stderr
    dated = lambda text: re.sub(r"Date of report \| [^|]*", "", text)
    assert dated(by_failed.stdout) == dated(by_fix.stdout)
    report = by_fix.stdout
    next_week = due + timedelta(days=7)
    assert f"was due on {next_week:%A %d %B %Y at %H:%M %Z}" in report
    assert re.search(r"It was published at .* as release r2, \d+ minutes \(\d+ days?[^)]*\) early\.|"
                     r"It was published at .* as release r2, \d+ minutes early\.", report), report
    assert "go-live of r3 stopped: every check before" in report and "go-live of r3 reverted" in report
    assert "go-live of r2 done" in report
    assert "overrode deadline, people, rehearsal, rollback-target: late figures approved" in report
    assert 'notice published: "Figures delayed; next update 11:00"' in report and "notice cleared" in report
    assert "of r1 " not in report  # r1 published the slot before: it is another publication

    history = invoke("history", "--release", "r3", "--json", "--env", str(env))
    rows = [(e["action"], e["outcome"]) for e in json.loads(history.stdout)]
    assert ("override", "done") in rows and ("go-live", "stopped") in rows and ("notice", "done") in rows, rows
    table = invoke("history", "--release", "r3", "--env", str(env), columns=300).stdout
    assert "overrode deadline, people, rehearsal, rollback-target: late figures approved" in table
