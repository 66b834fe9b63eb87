"""Ctrl-C at any moment of a real `releaser` or `invoke` process: one true line on stderr and exit 130, or the
command's own answer if it had already finished; never a traceback, never Invoke's silent exit 1.

Each run sends SIGINT a given time after the entry point took Ctrl-C over (a marker file, tests/cli/interrupt_marker),
so the sweep covers the imports, Invoke's parsing of the flags, the task's own imports and its work.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from checkenv import write_environment as complete_environment
from conftest import PROJECT
from interrupting import interrupted_after
from releaser.interrupts import AFTER_THE_END, AFTER_WORK, BEFORE_START, WHILE_CONNECTING, WHILE_WORKING, while_reading
from releaser.invocation import Invocation, suggested

DELAYS = [0, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.45]
NOT_STAGED = "nothing is staged"  # go-live's own answer on an environment where nothing was deployed


@pytest.mark.parametrize("command", ["releaser", "invoke"])
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(command, tmp_path):
    """Across the sweep every run ends in an interrupt line with 130, or in go-live's own refusal (exit 3) when
    SIGINT came after it had answered; never a traceback. Before the work starts, that line is all there is."""
    env_file = complete_environment(tmp_path, servers=2)
    go_live = ["go-live", "--now", "--yes", "--override", "window", "--override", "rehearsal", "--reason", "qa-int",
               "--env", str(env_file)]
    if command == "releaser":
        argv, cwd = [str(Path(sys.executable).with_name("releaser")), *go_live], tmp_path
    else:
        argv, cwd = [sys.executable, "-m", "invoke", *go_live], PROJECT
    ran_as = Invocation(command, str(env_file))  # the lines' suggested commands name that program and environment
    known = [suggested(line, ran_as) for line in (BEFORE_START, WHILE_CONNECTING, WHILE_WORKING, AFTER_WORK)]
    seen = []
    for delay in DELAYS:
        done = interrupted_after(argv, delay, cwd=cwd, marker=tmp_path / "marker")
        lines = without_the_after_the_end_line(done)
        assert "Traceback" not in done.stderr and lines, (delay, done.returncode, done.stderr)
        if done.returncode == 130:
            assert lines[-1] in known, (delay, lines)
        else:
            assert done.returncode == 3 and NOT_STAGED in lines[-1], (delay, done.returncode, lines)
        if lines[-1] in (BEFORE_START, WHILE_CONNECTING) or done.returncode == 3:  # once the work started, a step may first say it noted Ctrl-C
            assert len(lines) == 1, (delay, lines)
        seen.append(lines[-1])
    assert seen[0] == BEFORE_START  # SIGINT right after the entry point: before any task, nothing changed


def test_ctrl_c_during_status_says_nothing_was_changed(tmp_path):
    """status only reads: a Ctrl-C during its work says so, instead of sending the on-call engineer to run status."""
    env_file = complete_environment(tmp_path, servers=6)  # six servers' reads: a window the sweep cannot miss
    argv = [str(Path(sys.executable).with_name("releaser")), "status", "--env", str(env_file)]
    reading = while_reading("status")
    shown = suggested(AFTER_WORK, Invocation("releaser", str(env_file)))  # the table was being printed
    seen = set()
    for delay in [0, *(0.1 + 0.025 * i for i in range(24))]:
        done = interrupted_after(argv, delay, cwd=tmp_path, marker=tmp_path / "marker")
        lines = without_the_after_the_end_line(done)
        assert "Traceback" not in done.stderr, (delay, done.stderr)
        if done.returncode == 130:
            assert lines[-1] in (BEFORE_START, WHILE_CONNECTING, reading, shown), (delay, lines)
            seen.add(lines[-1])
        else:
            assert done.returncode == 0, (delay, done.returncode, lines)  # it had finished
    assert {BEFORE_START, reading} <= seen, seen  # the sweep reached the work too


def without_the_after_the_end_line(done) -> list[str]:
    """stderr's lines but AFTER_THE_END, which a press after the task's work ended adds before the command's own
    last words (its message, printed by Invoke after the task returned) and never with an exit of 130."""
    lines = [line for line in done.stderr.splitlines() if line]
    if AFTER_THE_END in lines:
        assert done.returncode != 130 and lines.count(AFTER_THE_END) == 1, (done.returncode, lines)
    return [line for line in lines if line != AFTER_THE_END]


def test_ctrl_c_after_the_work_ended_is_answered_and_the_command_keeps_its_exit_code():
    """A press once a task has ended (Invoke is printing its message) does not stop the process: it says so, goes on."""
    script = ("import releaser.interrupts as i, os, signal; i._started_as_command = lambda: True; i.task_ended(); "
              "os.kill(os.getpid(), signal.SIGINT); print('still here', flush=True)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)

    assert done.returncode == 0 and done.stdout == "still here\n", done
    assert done.stderr.strip() == AFTER_THE_END


def test_ctrl_c_while_the_interpreter_exits_keeps_the_tasks_exit_code():
    """In the interpreter's last steps CPython puts Python-handled signals back to their default, and a press then
    killed the process by SIGINT after the task's message (check exited -2 instead of 4); once the exit has begun,
    Ctrl-C is ignored. The press here comes from an exit handler that runs after releaser's own."""
    script = ("import atexit, os, signal, sys, releaser.interrupts as i; i._started_as_command = lambda: True; "
              "atexit.register(lambda: (print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN, flush=True), "
              "os.kill(os.getpid(), signal.SIGINT))); i.task_ended(); sys.exit(4)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)

    assert (done.returncode, done.stdout, done.stderr) == (4, "True\n", ""), done
