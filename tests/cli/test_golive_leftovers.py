"""`invoke go-live` whose server goes silent just after the switch: r2 is live, and the command says web-2 may
still hold the lock and lack the journal line, with what to do, never a plain "is live on every server"."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from conftest import EXAMPLES, read_slots, ssh_environment_for
from releaser import sandbox
from releaser.bundle import read_bundle
from releaser.slots import SlotState
from test_truth_cli import invoke

pytestmark = pytest.mark.ssh

DEADLINES = "[deadlines]\nstep = 3.0\ncommit = 3.0\nverify = 5.0\nrevert = 3.0\nkeepalive = 1.0\n"
QUICK = "[go_live]\nrehearsal_max_age_days = 0\n" + DEADLINES
NEW = SlotState("r2", "r1", None, frozenset({"r1", "r2"}))  # after go-live


def release_morning(open_fleet, env) -> None:
    """r1 live and r2 staged on every server."""
    with open_fleet(env) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        fleet.go_live()
        fleet.stage(read_bundle(EXAMPLES / "r2"))


def test_a_server_silent_right_after_its_switch_is_named_in_a_warning(sshd_farm, tmp_path, open_fleet, monkeypatch):
    """web-2's sshd (every process of it) is stopped when verify first asks web-2's live site for r2, i.e. after
    every commit answered: exit 0, r2 live everywhere, and a WARNING naming web-2 with status and unlock."""
    env = ssh_environment_for(sshd_farm, tmp_path / "prod.toml", extra=QUICK)
    release_morning(open_fleet, env)
    root = sshd_farm.server("web-2").root
    frozen = threading.Event()
    serve = sandbox.SlotHandler.do_GET

    def do_get(handler) -> None:  # the sites are served by this process; the command finds and shares them
        if (handler.slot == "live" and Path(handler.app_root) == root and not frozen.is_set()
                and os.readlink(root / "live") == "releases/r2"):
            frozen.set()
            sshd_farm.freeze("web-2")
        serve(handler)

    monkeypatch.setattr(sandbox.SlotHandler, "do_GET", do_get)
    try:
        with sandbox.serving(env):
            done = invoke("go-live", "--now", "--yes", "--override", "deadline", "--override", "people", "--reason", "tests",
                          "--env", str(env.path))
        assert frozen.is_set(), done.stderr
        lock = (root / ".releaser" / "lock").is_dir()
        journal = (root / ".releaser" / "journal.jsonl").read_text()
    finally:
        sshd_farm.thaw("web-2")

    assert done.returncode == 0, done.stderr  # the switch itself was done: README's exit 0, with the WARNING
    assert set(read_slots(env).values()) == {NEW}
    said = " ".join(done.stderr.split())  # rich may wrap a long line
    assert "WARNING: web-2 did not answer the step that frees this command's lock and writes its journal lines" in said
    assert "it may still hold the lock and its journal may lack this command's events" in said
    assert (f"run: invoke status --env {env.path}, and once it answers: invoke unlock --env {env.path} --reason TEXT"
            in said)  # the commands name the environment this one ran on (releaser/invocation.py)
    assert "r2 is live on every server; rollback target: r1" in said
    assert said.index("WARNING: web-2") < said.index("r2 is live on every server")
    # what the warning says was so: web-2 kept the lock and its journal has no go-live line of this attempt
    assert lock
    ours = [json.loads(line) for line in journal.splitlines() if '"action":"go-live"' in line]
    assert not [e for e in ours if e.get("releases", {}).get("live") == "r2"]
