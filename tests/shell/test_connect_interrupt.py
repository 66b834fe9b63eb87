"""Ctrl-C while a cold command connects: the handshakes run in threads while the main thread imports, and a
KeyboardInterrupt inside an import could leave CPython's import lock held, so the command hung for good (QA: about
1 run in 14 on 20 servers). Now every press in that window ends the command at once, with one true line."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import PROJECT, ssh_environment_for
from interrupting import interrupted_after
from releaser.interrupts import AFTER_WORK, BEFORE_START, WHILE_CONNECTING, while_reading
from releaser.invocation import Invocation, suggested
from sshfarm import SSHD_MISSING, SshdFarm, sshd_path

pytestmark = pytest.mark.ssh

DELAYS = [0.02 * i for i in range(30)]  # from the task's imports, through the handshakes, to the first step


@pytest.fixture
def farm8(tmp_path):
    if sshd_path() is None:
        pytest.fail(SSHD_MISSING) if os.environ.get("CI") else pytest.skip(SSHD_MISSING)
    with SshdFarm(tmp_path / "farm", 8, skip_shell_rc=True) as farm:
        yield farm


def test_ctrl_c_while_connecting_always_ends_the_command_at_once(farm8, tmp_path):
    """SIGINT at 30 moments after the entry point took Ctrl-C over (tests/cli/interrupt_marker): each run ends in
    one true line and 130, within seconds, or status's own answer; never a hang or a traceback."""
    env = ssh_environment_for(farm8, tmp_path / "prod.toml")
    argv = [sys.executable, "-m", "invoke", "status", "--env", str(env.path)]
    marker = tmp_path / "marker"
    ran_as = Invocation("invoke", str(env.path))  # the lines' suggested commands name the environment it ran on
    known = [suggested(line, ran_as) for line in (BEFORE_START, WHILE_CONNECTING, while_reading("status"), AFTER_WORK)]
    seen = []
    for delay in DELAYS:
        started = time.monotonic()
        try:
            done = interrupted_after(argv, delay, cwd=PROJECT, marker=marker)
        except subprocess.TimeoutExpired:
            pytest.fail(f"invoke status still running 60 s after Ctrl-C at {delay:.2f} s: it hung")
        took = time.monotonic() - started - delay
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, (delay, done.stderr)
        if done.returncode == 130:
            assert lines and lines[-1] in known, (delay, lines)
            assert took < 8, (delay, took)  # at once: not after a handshake's or a step's deadline
        else:
            assert done.returncode == 0, (delay, done.returncode, done.stderr)  # status had already finished
        seen.append(lines[-1] if lines else done.returncode)
    assert WHILE_CONNECTING in seen, seen  # the window this test is about was hit
