"""Issue 12: everything releaser says is true. `invoke ...` run as a subprocess, as a user meets it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, PROJECT, read_slots, sandbox_servers, write_environment
from releaser.config import load_environment


def invoke(*args, env_extra=None, columns: int = 200):
    """Run `invoke ARGS` in the project directory and return the finished process."""
    environ = {**os.environ, "RELEASER_ACTOR": "truth@tests", "NO_COLOR": "1", "COLUMNS": str(columns), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120, env=environ, stdin=subprocess.DEVNULL)


def environment_file(base: Path, name: str, *, servers: int = 2, extra: str = "") -> Path:
    """A local sandbox environment called `name` with its own roots and free ports under `base`."""
    return write_environment(base / f"{name}.toml", servers=sandbox_servers(base / name, servers), extra=extra)


REHEARSAL_REQUIRED = "[go_live]\nrehearsal_max_age_days = 7\n"


# ---- 1. one journal per environment ----

def test_rehearsal_on_uat_does_not_count_for_production(tmp_path):
    """A rehearsal on uat leaves production's rehearsal check FAIL and its history without uat's events."""
    uat = environment_file(tmp_path, "uat", extra=REHEARSAL_REQUIRED)
    production = environment_file(tmp_path, "production", extra=REHEARSAL_REQUIRED)
    for env in (uat, production):
        assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(env)).returncode == 0
    assert invoke("rehearse", "--yes", "--env", str(uat)).returncode == 0

    checked = invoke("check", "--only", "rehearsal", "--env", str(production))
    assert checked.returncode == 4
    assert "no rehearsal on record" in checked.stdout
    history = json.loads(invoke("history", "--json", "--env", str(production)).stdout)
    assert {e["environment"] for e in history} == {"production"}
    assert "rehearse" not in {e["action"] for e in history}
    assert (tmp_path / "uat.journal.jsonl").is_file() and (tmp_path / "production.journal.jsonl").is_file()


def test_rebuilt_servers_do_not_inherit_old_rehearsals(tmp_path):
    """Servers rebuilt from scratch FAIL the rehearsal check; the old rehearsal shows as this machine's only."""
    production = environment_file(tmp_path, "production", extra=REHEARSAL_REQUIRED)
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(production)).returncode == 0
    assert invoke("rehearse", "--yes", "--env", str(production)).returncode == 0
    assert invoke("check", "--only", "rehearsal", "--env", str(production)).returncode == 0

    shutil.rmtree(tmp_path / "production")  # the servers are rebuilt; this machine's journal remains
    assert invoke("deploy", "--stage", "--release", str(EXAMPLES / "r1"), "--env", str(production)).returncode == 0
    checked = invoke("check", "--only", "rehearsal", "--env", str(production))
    assert checked.returncode == 4, checked.stdout
    history = json.loads(invoke("history", "--json", "--env", str(production)).stdout)
    rehearsals = [e for e in history if e["action"] == "rehearse"]
    assert rehearsals and all(e.get("local_only") and e["seen_on"] == [] for e in rehearsals)
