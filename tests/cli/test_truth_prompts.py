"""Issue 12, item 2: a question is on screen when releaser waits for its answer, and y / n do what they say.

These run `invoke` in a real pseudo-terminal (the pty module) and keep a small model of the screen, so a
progress line drawn over the question would show as a screen without the question.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

from checkenv import write_environment as complete_environment
from conftest import EXAMPLES, PROJECT, read_slots
from releaser.config import load_environment

CSI = re.compile(rb"\x1b\[([0-9;?]*)([A-Za-z])")


class Screen:
    """The lines a terminal shows, for the few controls rich uses (CR, LF, erase line, cursor up)."""

    def __init__(self) -> None:
        self.lines = [""]
        self.row = 0

    def feed(self, data: bytes) -> None:
        position = 0
        for match in CSI.finditer(data):
            self._text(data[position:match.start()])
            self._control(match.group(1).decode(), match.group(2).decode())
            position = match.end()
        self._text(data[position:])

    def _text(self, data: bytes) -> None:
        for char in data.decode(errors="replace"):
            if char == "\n":
                self.row += 1
                if self.row == len(self.lines):
                    self.lines.append("")
            elif char == "\r":
                self.lines[self.row] = self.lines[self.row]  # the next text overwrites from the start
                self._column = 0
            elif char.isprintable():
                column = getattr(self, "_column", len(self.lines[self.row]))
                line = self.lines[self.row].ljust(column)
                self.lines[self.row] = line[:column] + char + line[column + 1:]
                self._column = column + 1

    def _control(self, parameters: str, command: str) -> None:
        count = int(parameters) if parameters.isdigit() else 1
        if command == "A":
            self.row = max(0, self.row - count)
        elif command == "K":
            self.lines[self.row] = ""
            self._column = 0

    def text(self) -> str:
        return "\n".join(self.lines)


def run_in_terminal(args, *, question: str, answer: str, quiet: float = 0.5, deadline: float = 20):
    """Run `invoke ARGS` on a pty; once `question` shows and the screen is quiet, type `answer`.

    Returns (screen text when the answer was typed, exit code). The screen counts as settled when no byte
    arrives for `quiet` seconds; a display that keeps redrawing never settles, and after `deadline` the
    screen is taken as it is.
    """
    primary, secondary = os.openpty()
    environ = {**os.environ, "RELEASER_ACTOR": "truth@tests", "NO_COLOR": "1", "COLUMNS": "120", "LINES": "40",
               "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=PROJECT, env=environ,
                               stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    screen, shown, typed = Screen(), None, False
    end = time.monotonic() + deadline
    last_byte = time.monotonic()
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([primary], [], [], 0.05)
            if ready:
                try:
                    data = os.read(primary, 65536)
                except OSError:
                    break  # the child closed the terminal
                if not data:
                    break
                screen.feed(data)
                last_byte = time.monotonic()
            elif process.poll() is not None:
                break
            seen = question in "".join(screen.lines)
            if not typed and (seen or shown is not None) and time.monotonic() - last_byte >= quiet:
                shown = screen.text()
                os.write(primary, answer.encode() + b"\r")
                typed = True
            elif not typed and seen and shown is None and time.monotonic() > end - 1:
                shown = screen.text()
        if not typed:
            shown = screen.text()
            os.write(primary, answer.encode() + b"\r")
        return shown, process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)


def invoke(*args):
    environ = {**os.environ, "RELEASER_ACTOR": "truth@tests", "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120, env=environ, stdin=subprocess.DEVNULL)


def two_releases_live(tmp_path):
    """An environment where r1 went live and then r2, so r1 is the rollback target."""
    path = complete_environment(tmp_path, servers=2)
    for release in ("r1", "r2"):
        assert invoke("deploy", "--stage", "--release", str(EXAMPLES / release), "--env", str(path)).returncode == 0
        done = invoke("go-live", "--now", "--yes", "--override", "rollback-target", "--override", "deadline",
                      "--reason", "tests", "--env", str(path))
        assert done.returncode == 0, done.stderr
    return load_environment(str(path), PROJECT)


def test_rollback_question_is_on_screen_and_y_rolls_back(tmp_path):
    """The rollback plan and its [y/n] question stay visible until answered; y puts r1 back live."""
    environment = two_releases_live(tmp_path)
    shown, code = run_in_terminal(["rollback", "--reason", "tests", "--env", str(environment.path)],
                                  question="rollback on 2 server(s)?", answer="y")
    assert "rollback on 2 server(s)? [y/n]" in shown
    assert "waiting" not in shown
    assert code == 0
    assert {state.live for state in read_slots(environment).values()} == {"r1"}


def test_rollback_question_answered_n_changes_nothing(tmp_path):
    """n at the rollback question leaves r2 live everywhere and exits 130 (cancelled)."""
    environment = two_releases_live(tmp_path)
    shown, code = run_in_terminal(["rollback", "--reason", "tests", "--env", str(environment.path)],
                                  question="rollback on 2 server(s)?", answer="n")
    assert "rollback on 2 server(s)? [y/n]" in shown
    assert code == 130
    assert {state.live for state in read_slots(environment).values()} == {"r2"}
