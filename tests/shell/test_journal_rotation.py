"""Issue 17 item 2 (with #12): the rehearsal check reads a one-line summary per server, and journals rotate by
size or age, on the servers and on this machine, without losing anything from the history."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from conftest import EXAMPLES
from releaser import journal
from releaser.bundle import read_bundle
from releaser.checks import Limits, run_checks
from releaser.journal import append_local, make_event, read_local


def server_dir(environment, server) -> Path:
    return Path(str(environment.app_root(server))) / ".releaser"


def test_rehearsal_check_reads_the_summary_not_the_journal(local_env, open_fleet, fake_clock):
    """After a rehearsal each server holds it in rehearsal.json; with the journals emptied the check still PASSes."""
    with open_fleet(local_env) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.rehearse()
        for server in local_env.servers:
            [summary] = (server_dir(local_env, server) / "rehearsal.json").read_text().splitlines()
            assert json.loads(summary)["action"] == "rehearse" and json.loads(summary)["outcome"] == "done"
            (server_dir(local_env, server) / "journal.jsonl").write_text("")  # the check must not need it
        fleet.journal_path.write_text("")
        environment = local_env.model_copy(update={"go_live": local_env.go_live.model_copy(
            update={"rehearsal_max_age_days": 7})})
        fleet.environment = environment
        [result] = run_checks(fleet, Limits(environment, actor="t"), now=fake_clock.now(), only=("rehearsal",))
    assert result.status == "PASS", result.detail
    assert "r1 rehearsed" in result.detail


def test_server_journals_rotate_by_size_and_history_keeps_every_event(local_env, open_fleet, monkeypatch):
    """With a 600-byte limit the servers' journals split into numbered parts; history still has every event in order."""
    monkeypatch.setattr(journal, "ROTATE_BYTES", 600)
    with open_fleet(local_env) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.go_live()
        for number in range(8):
            fleet.record("check", "done", detail=f"run {number}")
        history = fleet.read_history()
        local = read_local(fleet.journal_path)
    parts = sorted(p.name for p in server_dir(local_env, local_env.servers[0]).glob("journal.jsonl.*"))
    assert len(parts) >= 3, parts
    assert [e["id"] for e in history] == [e["id"] for e in local]
    assert [e["detail"] for e in history if e["action"] == "check"] == [f"run {n}" for n in range(8)]
    assert all(not e.get("local_only") for e in history)


def test_a_server_journal_begun_long_ago_moves_aside_before_the_next_line(local_env, open_fleet):
    """A journal begun more than ROTATE_DAYS ago becomes journal.jsonl.1; the new line starts a fresh one."""
    for server in local_env.servers:  # a journal goes only into an app root that is there
        Path(str(local_env.app_root(server))).mkdir(parents=True)
    with open_fleet(local_env) as fleet:
        fleet.record("check", "done", detail="old")
        long_ago = time.time() - (journal.ROTATE_DAYS + 2) * 86400
        for server in local_env.servers:
            os.utime(server_dir(local_env, server) / "journal.started", (long_ago, long_ago))
        fleet.record("check", "done", detail="new")
        history = [e["detail"] for e in fleet.read_history()]
    web1 = server_dir(local_env, local_env.servers[0])
    assert [json.loads(line)["detail"] for line in (web1 / "journal.jsonl.1").read_text().splitlines()] == ["old"]
    assert [json.loads(line)["detail"] for line in (web1 / "journal.jsonl").read_text().splitlines()] == ["new"]
    assert history == ["old", "new"]


def test_the_local_journal_rotates_by_size_and_age_and_reads_whole(tmp_path, monkeypatch, fake_clock):
    """This machine's journal splits at the size limit and when its first event is too old; reading joins the parts."""
    monkeypatch.setattr(journal, "ROTATE_BYTES", 400)
    path = tmp_path / "production.journal.jsonl"
    old = make_event("check", event_id="old", environment="production", actor="t", outcome="done",
                     now=fake_clock.now().replace(year=2020))
    append_local(path, old)
    events = [make_event("check", event_id=f"e{n}", environment="production", actor="t", outcome="done",
                         now=fake_clock.now(), detail="x" * 50) for n in range(10)]
    for event in events:
        append_local(path, event)
    assert path.with_name(path.name + ".1").read_text().count("\n") == 1  # the 2020 journal moved aside by age
    assert path.with_name(path.name + ".3").exists()  # and by size since
    assert [e["id"] for e in read_local(path)] == ["old"] + [f"e{n}" for n in range(10)]
