"""`invoke demo-app` end to end: instances behind real nginx, data slots in a real private PostgreSQL cluster.

The demo runs in a copy of the project under tmp_path (RELEASER_PROJECT), as a subprocess, and the test
reads back what it left: the slots on disk, no process still running, the cluster stopped. The parts a
machine lacks are skipped by the demo, saying so in one line; that is tested by hiding nginx or PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import EXAMPLES, PROJECT, read_slots
from releaser import demo_app, pgsandbox
from releaser.config import load_environment

HAS_NGINX = demo_app.find_nginx() is not None and shutil.which("curl") is not None
HAS_POSTGRES = pgsandbox.find_bindir() is not None


@pytest.fixture
def open_dir():
    """A fresh directory under /tmp that other users may enter (pytest's tmp_path is closed to them, and as root
    the demo's PostgreSQL runs as the postgres user); removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="releaser-demo-app-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def demo_copy(tmp_path: Path) -> Path:
    """A project directory with the example releases and the demo application, nothing else."""
    project = tmp_path / "project"
    (project / "environments").mkdir(parents=True)
    shutil.copy(PROJECT / "environments" / "local.toml", project / "environments" / "local.toml")
    shutil.copytree(EXAMPLES, project / "examples" / "releases")
    shutil.copytree(PROJECT / "examples" / "app", project / "examples" / "app")
    return project


def run_demo_app(project: Path) -> subprocess.CompletedProcess:
    environ = {**os.environ, "RELEASER_PROJECT": str(project), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "invoke", "demo-app"], cwd=PROJECT, capture_output=True, text=True,
                          timeout=240, env=environ, stdin=subprocess.DEVNULL)


def pids_recorded(base: Path) -> list[int]:
    return [int(p.read_text().strip()) for p in base.glob("*/root/.releaser/instances/*.pid")]


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not (HAS_NGINX and HAS_POSTGRES), reason="needs nginx, curl and PostgreSQL's server binaries")
def test_demo_app_switches_instances_and_data_together_and_leaves_nothing_running(open_dir):
    """Exit 0; the front served r1, r2, then r1 again, each with its own data from schema phof; the rollback
    reached the same r1 processes; afterwards no instance, nginx or postgres of the demo still runs."""
    project = demo_copy(open_dir)
    done = run_demo_app(project)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stderr
    assert "skipping" not in out
    served = [line.split("-> ", 1)[1] for line in out.splitlines() if line.startswith("GET http://127.0.0.1:")]
    assert served == ["release r1; schema phof holds release r1, 400 indicators",
                      "release r1; schema phof holds release r1, 400 indicators",
                      "release r2; schema phof holds release r2, 500 indicators",
                      "release r1; schema phof holds release r1, 400 indicators"]
    assert "r1 answers from the same processes as before r2 went live" in out
    assert "passed on the staging instance of r2 (port" in done.stdout
    assert "files and data agree (schema phof): live r1, backup nothing, staging r2" in done.stdout
    assert "demo-app finished in" in out

    base = project / "sandbox" / "app"
    environment = load_environment(str(base / "demo-app.toml"), project)
    assert {(s.live, s.backup) for s in read_slots(environment).values()} == {("r1", None)}
    assert not any(is_running(pid) for pid in pids_recorded(base))
    assert not (base / "postgres" / "data" / "postmaster.pid").exists()  # pg_ctl stopped the cluster
    for name in demo_app.SERVERS:
        assert not (base / name / "nginx" / "nginx.pid").exists()  # nginx removes it when it exits


@pytest.mark.skipif(not HAS_POSTGRES, reason="needs PostgreSQL's server binaries")
def test_demo_app_without_nginx_says_so_in_one_line_and_still_switches_the_data(open_dir, monkeypatch, capsys):
    """No nginx: one line says the instances are skipped; the static sandbox and the data still switch."""
    monkeypatch.setattr(demo_app, "find_nginx", lambda: None)
    monkeypatch.setenv(demo_app.DSN_ENV, "")  # the demo sets it; monkeypatch takes it away again afterwards
    project = demo_copy(open_dir)
    demo_app.run_demo_app(project)
    out = " ".join(capsys.readouterr().err.split())  # rich wraps the lines at the terminal's width
    assert "skipping the application instances: nginx is not installed (Debian: apt-get install nginx curl); " \
           "the releases are served as static sites" in out
    assert "GET http" in out and "-> release r2; schema phof holds release r2, 500 indicators" in out
    assert "demo-app finished in" in out


def test_demo_app_with_neither_says_what_is_missing_and_does_nothing(tmp_path, monkeypatch, capsys):
    """Neither nginx nor PostgreSQL: a line for each, one saying nothing is left to show, and no switch ran."""
    monkeypatch.setattr(demo_app, "find_nginx", lambda: None)
    monkeypatch.setattr(pgsandbox, "find_bindir", lambda: None)
    project = demo_copy(tmp_path)
    demo_app.run_demo_app(project)
    out = " ".join(capsys.readouterr().err.split())  # rich wraps the lines at the terminal's width
    assert "skipping the data slots: PostgreSQL is not installed (no initdb/pg_ctl; " \
           "Debian: apt-get install postgresql)" in out
    assert "skipping the application instances: nginx is not installed" in out
    assert "nothing left to show without nginx and PostgreSQL; `invoke demo` needs neither" in out
    assert not (project / "sandbox" / "app" / "demo-app.toml").exists()
