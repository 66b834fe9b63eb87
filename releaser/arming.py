"""A participant's commit script started ahead of the second and released at T by one line (switch.ArmedCommit).

A scheduled go-live waits for T with every connection open. A participant whose commit is one script on a
server starts that script during the wait (`arm`: its own channel and shell, blocked reading one line), and at
T the coordinator only writes "go" to it (`go`); the participant's commit then reads the script's answer
(`answer`). The script itself must move nothing on end of file or once its own bound passes (exit NO_GO), so a
client lost before T never commits late; a participant that was not armed in time commits the usual way.
Used by the slot links and by the front.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from releaser.errors import HostUnreachable
from releaser.transport import Completed, Host, Running

NO_GO = 8  # an armed script's exit status when no go line came (end of file, or its bound passed): nothing moved
ARM_AT_MOST = 0.5  # seconds an arm may take: under the coordinator's second of grace, so no revert starts before the
                   # server's own bound has ended


# The gate of an armed script written in python3 (releaser.remote's links, the front's socket link): one process
# started while arming that at T reads the go line and moves, starting nothing. go_line(deadline) is True for
# the line "go" before the monotonic `deadline`; False on end of file, another line, or the deadline passing.
GO_LINE_PY = r"""
import os, select, sys, time
def go_line(deadline):
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([0], [], [], left)[0]:
            return False
        chunk = os.read(0, 64)
        if not chunk:
            return False
        line += chunk
    # a line read past the deadline came too late, even if it arrived in time (the process was stopped meanwhile)
    return line.split(b"\n", 1)[0] == b"go" and time.monotonic() < deadline
"""


def python_first(program: str) -> str:
    """The first line of an armed sh script: where the server has python3, `cd "$1"` and become `program` in it
    (its argv: ".", then the script's arguments after the first); else go on in sh. `program` holds no single quote."""
    if "'" in program:
        raise ValueError("an armed python3 program must hold no single quote: it is passed in one")
    return f"""if command -v python3 >/dev/null 2>&1; then cd "$1" || exit 3; shift; exec python3 -I -S -c '{program}' . "$@"; fi\n"""


class ArmedScript:
    """One server's commit script, started ahead and waiting for its go line; at most one at a time."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._lock = threading.Lock()
        self._armed: Running | None = None  # the script started ahead, waiting for its go line
        self._fired: Running | None = None  # the armed script the go line was written to
        self._late = 0.0  # how long the arm took: the server's bound may end that much after the commit deadline
        self._disarmed = False  # once true, an arm that ends late closes its script instead of keeping it

    def arm(self, argv: Sequence[str], timeout: float) -> None:
        """Start the script and wait for its "armed" line. One that does not come within `timeout`, or takes more
        than ARM_AT_MOST (the commit would then wait that much longer for the server), is closed: the
        participant then commits the usual way."""
        started = time.monotonic()
        running = self.host.start(argv, timeout=timeout)
        try:
            line = running.readline(timeout)
        except BaseException:
            running.close()
            raise
        took = time.monotonic() - started
        with self._lock:
            if line == "armed" and took < ARM_AT_MOST and not self._disarmed:
                self._armed, self._late = running, took
                return
        running.close()  # the commit (or the abort) began without it, it was slow, or the script said something else

    def go(self) -> None:
        """Write the go line to the armed script, if there is one; never waits for its answer."""
        with self._lock:
            running, self._armed, self._disarmed = self._armed, None, True
        if running is None:
            return
        try:
            running.send("go\n")
        except HostUnreachable:  # not written: the script reads end of file and moves nothing; commit runs anew
            running.close()
        else:
            self._fired = running

    def answer(self, timeout: float) -> Completed | None:
        """The fired script's result, waiting up to `timeout` (plus what its arm took: its bound started that much
        later); None when no go line was written to one. Exit NO_GO: it moved nothing, commit the usual way."""
        fired, self._fired = self._fired, None
        return fired.wait(timeout + self._late) if fired is not None else None

    def disarm(self) -> None:
        """Close an armed script that was never told go (it moves nothing), and any arm still on its way."""
        with self._lock:
            running, self._armed, self._disarmed = self._armed, None, True
        if running is not None:
            running.close()
