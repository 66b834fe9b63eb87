"""A Ctrl-C that a switch turned into its own error (a cancelled prepare) ends the process with that error's code.

CPython 3.11 marks a KeyboardInterrupt raised inside code built by exec() (dataclasses' methods) as unhandled even
once caught, and under `python -m` then ends the process by SIGINT, whatever code was asked for (QA: 3 double
presses after "cancelled before the switch" ended as SIGINT, -2 to the calling program, not 130).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import PROJECT

MODULE = textwrap.dedent('''
    import signal, sys
    from invoke.exceptions import Exit
    from releaser import interrupts, ui  # noqa: F401  (imported before, as in a command: no exec() runs after the press)
    from releaser.cli_tasks import exit_on_user_error
    from releaser.errors import Cancelled

    signal.signal(signal.SIGINT, interrupts._raise_interrupt)  # what a command's work runs under

    def pressed_inside_exec_built_code():
        exec("import os, signal, time; os.kill(os.getpid(), signal.SIGINT); time.sleep(5)", {})

    try:
        with exit_on_user_error():
            try:
                pressed_inside_exec_built_code()
            except KeyboardInterrupt:
                raise Cancelled("go-live cancelled before the switch (Ctrl-C); nothing was switched")
    except Exit as stop:
        print(stop.message, file=sys.stderr)
        sys.exit(stop.code)
''')


def test_a_cancelled_switch_exits_130_not_killed_by_sigint(tmp_path):
    (tmp_path / "cancelled_module.py").write_text(MODULE)
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT)])}
    done = subprocess.run([sys.executable, "-m", "cancelled_module"], cwd=tmp_path, env=environ, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert "cancelled before the switch (Ctrl-C); nothing was switched" in done.stderr
