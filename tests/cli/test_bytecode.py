"""Invoke turns off Python's bytecode cache for its whole process; releaser turns it back on for its own modules."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT

RELEASER = Path(sys.executable).with_name("releaser")


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of releaser/ and tasks.py with no compiled modules yet, like a fresh clone."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    shutil.copytree(PROJECT / "releaser", copy / "releaser", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "tasks.py", copy / "tasks.py")
    return copy


def run(argv, checkout: Path, **extra) -> subprocess.CompletedProcess:
    """Run argv with the copy's code first on the path and the machine's bytecode setting left out, unless given."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environ.update(PYTHONPATH=str(checkout), NO_COLOR="1", **extra)
    done = subprocess.run(argv, cwd=checkout, env=environ, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done


def compiled(checkout: Path) -> set[str]:
    """The module names with a cached .pyc under the copy's releaser/."""
    return {path.name.split(".")[0] for path in (checkout / "releaser" / "__pycache__").glob("*.pyc")}


def test_invoke_tasks_leave_releasers_modules_compiled_but_no_tasks_pyc(checkout):
    """`invoke runbook list`: the modules imported before and inside the task are cached; tasks.py is not."""
    done = run([sys.executable, "-m", "invoke", "-r", str(checkout), "runbook", "list"], checkout)
    assert "rollback" in done.stdout
    assert {"cli_tasks", "interrupts", "runbooks"} <= compiled(checkout)
    assert not (checkout / "__pycache__").exists()


def test_the_releaser_command_caches_what_its_tasks_import(checkout):
    """The installed program loads its tasks before Invoke turns the cache off; what a task imports is cached too."""
    assert RELEASER.is_file()
    run([str(RELEASER), "runbook", "list"], checkout)
    assert {"program", "cli_tasks", "runbooks"} <= compiled(checkout)


def test_pythondontwritebytecode_is_still_obeyed(checkout):
    """Someone who turned the cache off keeps it off."""
    run([sys.executable, "-m", "invoke", "-r", str(checkout), "runbook", "list"], checkout, PYTHONDONTWRITEBYTECODE="1")
    assert compiled(checkout) == set()
