"""Real processes interrupted at a chosen moment: SIGINT a given time after the entry point took Ctrl-C over.

The moment is counted from a marker file the harness's sitecustomize (tests/cli/interrupt_marker) writes when
releaser's guard_startup runs, so a sweep of delays covers the imports, Invoke's parsing, the task and its work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

HARNESS = Path(__file__).parent / "cli" / "interrupt_marker"


def interrupted_after(argv, delay: float, *, cwd: Path, marker: Path) -> subprocess.CompletedProcess:
    """Start argv, wait for the marker, sleep `delay`, send SIGINT, and return the finished process."""
    marker.unlink(missing_ok=True)
    environ = {**os.environ, "RELEASER_ACTOR": "cli@tests", "NO_COLOR": "1", "COLUMNS": "200",
               "RELEASER_INTERRUPT_MARKER": str(marker),
               "PYTHONPATH": os.pathsep.join([str(HARNESS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    environ.pop("RELEASER_PROJECT", None)
    process = subprocess.Popen(argv, cwd=cwd, env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert marker.exists(), "the command never reached guard_startup"
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # it hung: do not leave it behind
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


