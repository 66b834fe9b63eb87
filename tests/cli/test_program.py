"""The installed `releaser` command, run as a subprocess from a directory that is not the checkout."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from checkenv import write_environment as complete_environment
from conftest import EXAMPLES, PROJECT, read_slots
from releaser.config import load_environment
from releaser.project import find_project

RELEASER = Path(sys.executable).with_name("releaser")  # the console script pip put beside this Python


def releaser(*args, cwd: Path, env_extra=None):
    """Run the installed `releaser ARGS` in `cwd` and return the finished process."""
    assert RELEASER.is_file(), f"{RELEASER} is missing: run .venv/bin/pip install -e '.[test]' (it comes from [project.scripts])"
    environ = {**os.environ, "RELEASER_ACTOR": "cli@tests", "NO_COLOR": "1", "COLUMNS": "200", **(env_extra or {})}
    environ.pop("RELEASER_PROJECT", None)
    return subprocess.run([str(RELEASER), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=environ,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """An empty directory with no tasks.py and no environments/, where an on-call engineer might stand."""
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    return directory


def test_releaser_lists_the_tasks_invoke_lists(elsewhere):
    """`releaser --list` from an empty directory shows every task the checkout's tasks.py has."""
    import importlib

    from invoke import Collection

    done = releaser("--list", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines()[1:] if line.startswith("  ") and not line.startswith("   ")}
    assert listed == set(Collection.from_module(importlib.import_module("tasks")).task_names)
    assert "Can't find any collection" not in done.stderr


def test_releaser_says_its_version(elsewhere):
    """`releaser --version` names the program, not Invoke."""
    done = releaser("--version", cwd=elsewhere)
    assert done.returncode == 0 and done.stdout.startswith("releaser 0.")


def test_releaser_goes_live_and_rolls_back_from_another_directory(tmp_path, elsewhere):
    """With only an environment file's path: stage and go live twice, status --json, then rollback puts r1 back."""
    env_file = str(complete_environment(tmp_path, servers=2))
    for release in ("r1", "r2"):
        staged = releaser("deploy", "--stage", "--release", str(EXAMPLES / release), "--env", env_file, cwd=elsewhere)
        assert staged.returncode == 0, staged.stderr
        live = releaser("go-live", "--now", "--yes", "--override", "rollback-target", "--override", "deadline",
                        "--reason", "tests", "--env", env_file, cwd=elsewhere)
        assert live.returncode == 0, live.stderr
    status = releaser("status", "--json", "--env", env_file, cwd=elsewhere)
    assert status.returncode == 0, status.stderr
    assert [s["live"] for s in json.loads(status.stdout)["servers"]] == ["r2", "r2"]
    back = releaser("rollback", "--yes", "--reason", "tests", "--env", env_file, cwd=elsewhere)
    assert back.returncode == 0, back.stderr
    assert {s.live for s in read_slots(load_environment(env_file, PROJECT)).values()} == {"r1"}


def test_what_releaser_tells_you_to_run_is_a_releaser_command_on_your_environment(tmp_path, elsewhere):
    """Hints and runbooks name the program typed; a hint adds the --env given, so it never reads the sandbox."""
    env_file = str(complete_environment(tmp_path, servers=2))
    refused = releaser("deploy", "--release", str(EXAMPLES / "r1"), "--env", env_file, cwd=elsewhere)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"releaser: deploy only stages; pass --stage (then go live with: releaser "
                                      f"go-live --env {env_file})")
    runbook = releaser("runbook", "rollback", cwd=elsewhere)
    assert runbook.returncode == 0, runbook.stderr
    assert "releaser rollback --env production" in runbook.stdout and "invoke rollback" not in runbook.stdout


def test_an_unknown_task_is_a_usage_error(elsewhere):
    """A typo in the task name exits 1 with Invoke's message, not a traceback."""
    done = releaser("stauts", cwd=elsewhere)
    assert done.returncode != 0 and "No idea what 'stauts' is!" in done.stderr and "Traceback" not in done.stderr


def test_completion_script_names_releaser(elsewhere):
    """`releaser --print-completion-script bash` completes `releaser`, for the README's instructions."""
    done = releaser("--print-completion-script", "bash", cwd=elsewhere)
    assert done.returncode == 0 and "complete -F _complete_releaser" in done.stdout and "releaser" in done.stdout


@pytest.mark.parametrize("layout, environ, expected", [
    pytest.param({"cwd/environments"}, {}, "cwd", id="current-directory-with-environments"),
    pytest.param(set(), {}, "checkout", id="falls-back-to-the-checkout"),
    pytest.param({"cwd/environments"}, {"RELEASER_PROJECT": "configured"}, "configured", id="configured-wins"),
])
def test_find_project_picks_configured_then_current_then_checkout(tmp_path, layout, environ, expected):
    """The project directory comes from RELEASER_PROJECT, else the current directory, else the checkout."""
    for folder in layout | {"cwd"}:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    environ = {key: str(tmp_path / value) for key, value in environ.items()}
    found = find_project(tmp_path / "cwd", environ)
    assert found == {"cwd": tmp_path / "cwd", "checkout": PROJECT, "configured": tmp_path / "configured"}[expected].resolve()


def test_a_copy_installed_without_the_checkout_serves_status_runbooks_and_the_dashboard(tmp_path, elsewhere):
    """pip install (not -e) into a bare directory: `releaser` runs there with its page's files and runbooks from the package."""
    import shutil
    import urllib.request

    from conftest import free_ports

    source = tmp_path / "source"  # a copy, so the build's scratch files stay out of the shared checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT / name, source / name)
    shutil.copytree(PROJECT / "releaser", source / "releaser", ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    environ = {**os.environ, "PYTHONPATH": str(site), "RELEASER_ACTOR": "cli@tests", "NO_COLOR": "1"}
    environ.pop("RELEASER_PROJECT", None)
    where = subprocess.run([sys.executable, "-c", "import releaser.program as p; print(p.__file__)"], cwd=elsewhere,
                           env=environ, capture_output=True, text=True)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr

    env_file = str(complete_environment(tmp_path, servers=2))
    status = subprocess.run([str(site / "bin" / "releaser"), "status", "--json", "--env", env_file], cwd=elsewhere,
                            env=environ, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert [s["server"] for s in json.loads(status.stdout)["servers"]] == ["web-1", "web-2"]

    # The runbooks come with the package: no runbooks/ directory here, nor a checkout to find one in.
    assert not (elsewhere / "runbooks").exists() and not (site / "runbooks").exists()
    shown = subprocess.run([str(site / "bin" / "releaser"), "runbook", "rollback"], cwd=elsewhere, env=environ,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "Rollback: put the previous release back live on every server" in shown.stdout
    listed = subprocess.run([str(site / "bin" / "releaser"), "runbook", "list"], cwd=elsewhere, env=environ,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "late-release" in listed.stdout and "server-failure" in listed.stdout

    port = free_ports(1)[0]
    dashboard = subprocess.Popen([str(site / "bin" / "releaser"), "dashboard", "--port", str(port), "--env", env_file],
                                 cwd=elsewhere, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        page = _fetch_when_up(f"http://127.0.0.1:{port}/dashboard.js", dashboard)
        assert b"EventSource" in page
    finally:
        dashboard.send_signal(signal.SIGINT)  # Ctrl-C, to its PID: it stops its servers and exits
        try:
            dashboard.wait(timeout=10)
        except subprocess.TimeoutExpired:
            dashboard.kill()
            dashboard.wait(timeout=10)


def _fetch_when_up(url: str, process: subprocess.Popen) -> bytes:
    """GET url once the process answers, polling until a 30 s deadline."""
    import time
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"releaser dashboard exited {process.returncode}: {process.stderr.read().decode()}"
        try:
            with opener.open(url, timeout=2) as response:
                return response.read()
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


@pytest.mark.parametrize("command", [[str(RELEASER)], [str(Path(sys.executable).with_name("invoke")), "-r", str(PROJECT)]])
def test_a_listing_read_by_head_ends_quietly_when_the_reader_goes(tmp_path, command):
    """`releaser --list | head -1`: the closed pipe is the reader's choice, not an error to show with a traceback."""
    reader = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    listing = subprocess.run([*command, "--list"], stdout=reader.stdin, stderr=subprocess.PIPE, text=True, timeout=60,
                             cwd=tmp_path, env={**os.environ, "COLUMNS": "40"})
    reader.stdin.close()
    reader.wait(10)
    assert "Traceback" not in listing.stderr and "BrokenPipeError" not in listing.stderr, listing.stderr
