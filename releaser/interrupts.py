"""Ctrl-C at every moment of a command: one true line on stderr and exit 130, never a traceback or a silent exit 1.

Invoke's Program.run turns a KeyboardInterrupt into a silent `sys.exit(1)`, and before a task's own handling
(exit_on_user_error in cli_tasks) begins, nothing of releaser's is there to catch it: the imports, Invoke's
parsing of the flags, the imports at the top of the task. So the entry points (releaser/program.py for
`releaser`, tasks.py for `invoke`) call `guard_startup()` first: until a task's work starts, Ctrl-C writes
one line and ends the process at once, since nothing has been connected, written or asked by then. After
that a task goes through these phases, which say what a Ctrl-C that reaches the task's edge means:

    starting   the task's own imports and flag checks (library use, or a second task of one `invoke` run)
    working    inside exit_on_user_error, which answers Ctrl-C itself (a switch holds it: held_interrupts)
    finished   exit_on_user_error's block has ended: the command did its work and is showing the result

After a task ends, a command answers Ctrl-C with one line (AFTER_THE_END) and goes on for the few milliseconds
Invoke takes to print the task's message and exit with the task's own code. A Python session or a test that
imports tasks.py or releaser.program keeps its own Ctrl-C: only a process started as `releaser` or `invoke` is
changed.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BEFORE_START = "releaser: interrupted (Ctrl-C) before the command started; nothing was changed"
BEFORE_NEXT = ("releaser: interrupted (Ctrl-C) before this task started; the tasks before it on the command line "
               "had finished")
WHILE_WORKING = ("releaser: interrupted (Ctrl-C) outside any switch; to see where every server stands, run: "
                 "invoke status")
AFTER_WORK = ("releaser: interrupted (Ctrl-C) while showing the result; the command itself had finished "
              "(to see what it did, run: invoke history)")

WHILE_CONNECTING = "releaser: interrupted (Ctrl-C) while connecting to the servers; nothing was changed"

_COMMANDS = {"releaser", "invoke", "inv"}  # the console scripts' names
_MODULES = {"releaser.program", "invoke.__main__"}  # python -m ...
_state = {"phase": "starting", "tasks": 0}


def guard_startup() -> None:
    """In a `releaser` or `invoke` process, make Ctrl-C before a task's work starts print BEFORE_START, exit 130.

    The handler writes with os.write and leaves with os._exit: it may run in the middle of anything (an import,
    inspect.signature, a print), where raising would come out as a traceback or Invoke's silent exit 1.
    """
    if _started_as_command():
        signal.signal(signal.SIGINT, _exit_before_start)
        sys.excepthook = _quiet_about_a_closed_pipe


def _quiet_about_a_closed_pipe(kind, error, trace) -> None:
    """`releaser --list | head`: the reader went away, which is no error of ours; end quietly as Unix tools do.

    Only an uncaught BrokenPipeError at the top (Invoke printing to a closed stdout) is quieted; SIGPIPE stays
    ignored, as Python sets it, so a server connection that breaks mid-switch is still an error releaser handles.
    """
    if not issubclass(kind, BrokenPipeError):
        sys.__excepthook__(kind, error, trace)
        return
    try:  # the interpreter flushes stdout once more at exit: point it somewhere that takes the bytes
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def task_started(*, reading: str | None = None, local: str | None = None) -> None:
    """A task's body begins. A later task of the same `invoke` run gets Ctrl-C back as KeyboardInterrupt at once.

    `reading`: the task's name when it only reads the servers (status, check): its Ctrl-C line says nothing changed.
    `local`: what the task does when it never talks to a server (build): its Ctrl-C line says so.
    """
    _state["tasks"] += 1
    _state["reading"], _state["journaling"], _state["local"] = reading, None, local
    _state["phase"] = "starting" if _state["tasks"] == 1 else "next"
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, _say_after_the_end) and _started_as_command():
        signal.signal(signal.SIGINT, _raise_interrupt)


def work_started() -> None:
    """The task entered exit_on_user_error: Ctrl-C raises KeyboardInterrupt again, for the task to answer."""
    _state["phase"] = "working"
    _state["finished_what"] = None  # nothing of this task's has finished yet
    _state["raised"] = 0
    handler = signal.getsignal(signal.SIGINT)
    if handler is _exit_before_start or (handler is signal.default_int_handler and _started_as_command()):
        signal.signal(signal.SIGINT, _raise_interrupt)


def _raise_interrupt(signum, frame) -> None:
    """Python's own Ctrl-C (KeyboardInterrupt), counted: CPython drops one raised inside a weakref callback or a
    __del__ ("Exception ignored in ..."), and the command went on as if nothing was pressed (see raised_presses)."""
    _state["raised"] = _state.get("raised", 0) + 1
    raise KeyboardInterrupt


def raises_keyboard_interrupt(handler) -> bool:
    """True for a SIGINT handler that raises KeyboardInterrupt: Python's own, or this module's counting one."""
    return handler is signal.default_int_handler or handler is _raise_interrupt


def raised_presses() -> int:
    """How many Ctrl-C presses raised KeyboardInterrupt since this task's work started. Every one that was caught
    ended the command, so a code still running that finds this above zero knows a press was swallowed."""
    return _state.get("raised", 0)


def work_finished() -> None:
    """exit_on_user_error's block ended without an error: what is left is showing the result."""
    _state["phase"] = "finished"


AFTER_THE_END = "releaser: Ctrl-C came after the command's work had ended; it exits as that work did"


def task_ended() -> None:
    """A task's body is over: in a command, Ctrl-C no longer stops it while Invoke prints its message and exits
    with the task's own code; a press is answered with AFTER_THE_END, so it is not met with silence."""
    if (signal.getsignal(signal.SIGINT) in (signal.default_int_handler, _raise_interrupt, _exit_before_start)
            and _started_as_command()):
        signal.signal(signal.SIGINT, _say_after_the_end)
        if not _state.get("ignoring_at_exit"):
            atexit.register(_ignore_ctrl_c_at_exit)
            _state["ignoring_at_exit"] = True


def _ignore_ctrl_c_at_exit() -> None:
    """The interpreter's last steps: Ctrl-C is ignored, so the process ends with the task's own exit code.

    As it shuts down, CPython puts every signal with a Python handler back to its default, and a Ctrl-C in
    those last tens of milliseconds killed the process by SIGINT after the task's message (measured on check:
    a press 0.52 s in came after "pre-release checks failed" and ended it as SIGINT, not exit 4). An ignored
    signal stays ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _say_after_the_end(signum, frame) -> None:
    try:
        os.write(2, ("\n" + AFTER_THE_END + "\n").encode())
    except OSError:
        pass


def note_writing() -> None:
    """A task that only read the servers writes its journal line from here on (check): its Ctrl-C line says no
    more that nothing changed, but that no slot did and the line may be missing on some servers."""
    if _state.get("reading"):
        _state["journaling"] = _state["reading"]
    _state["reading"] = None


def note_finished(what: str) -> None:
    """The command's switch is over and `what` says how it ended: a later Ctrl-C says so instead of WHILE_WORKING."""
    _state["finished_what"] = what


def keep_the_exit_code() -> None:
    """Clear CPython's mark of an unhandled Ctrl-C, so the process ends with the exit code asked for.

    CPython 3.11 marks a KeyboardInterrupt raised inside any exec() of a string (dataclasses and namedtuple
    build their methods that way) as never handled and, under `python -m` (how tests/cli run invoke), ends the
    process by SIGINT instead of the exit code asked for, though the interrupt was caught (cpython gh-128130
    reworked that mark). One exec() of a string that does nothing clears the mark. Needed wherever a caught
    Ctrl-C ends the command: as KeyboardInterrupt (exit 130), and as the error it became (a cancelled switch).
    """
    exec("pass", {})  # noqa: S102  (a constant: see the docstring)


def interrupted_message() -> str:
    """The true line for a caught Ctrl-C, by how far the task had come; the process will exit 130 with it."""
    keep_the_exit_code()
    if _state["phase"] == "working" and _state.get("local"):
        return while_local(_state["local"])
    if _state["phase"] == "working" and _state.get("reading"):
        return while_reading(_state["reading"])
    if _state["phase"] == "working" and _state.get("journaling"):
        return while_journaling(_state["journaling"])
    if _state["phase"] == "working" and _state.get("finished_what"):
        return (f"releaser: interrupted (Ctrl-C) after the switch had ended ({_state['finished_what']}), while the "
                "command was closing; to see where every server stands, run: invoke status")
    return {"starting": BEFORE_START, "next": BEFORE_NEXT, "working": WHILE_WORKING,
            "finished": AFTER_WORK}[_state["phase"]]


def while_local(what: str) -> str:
    """The line for a Ctrl-C during work on this machine only (reading a bundle, building one): no server was asked."""
    return f"releaser: interrupted (Ctrl-C) while {what}, before any server was asked anything; nothing was changed"


@contextmanager
def working_locally(what: str) -> Iterator[None]:
    """A step of a server task that runs on this machine only (reading the bundle): its Ctrl-C line says so."""
    before = _state.get("local")
    _state["local"] = what
    yield  # a Ctrl-C raised in the block leaves `what` in place for the line the task then prints
    _state["local"] = before


def while_reading(task: str) -> str:
    """The line for a Ctrl-C during the work of a task that only reads the servers (status, check)."""
    return f"releaser: interrupted (Ctrl-C) during {task}, which only reads the servers; nothing was changed"


def while_journaling(task: str) -> str:
    """The line for a Ctrl-C while a task that only reads the servers writes its journal line (check)."""
    return (f"releaser: interrupted (Ctrl-C) while {task} was writing its journal line; it changed no slot, and "
            "some servers' journals may lack this run")


@contextmanager
def connecting() -> Iterator[None]:
    """While a command opens its connections, Ctrl-C prints WHILE_CONNECTING and ends the process at once (exit 130).

    The handshakes run in threads while the main thread imports what the command needs. A KeyboardInterrupt
    raised inside an import can leave CPython's import lock held ("Exception ignored in ... _get_module_lock"),
    and then every thread that imports, and the exit that waits for them, waits forever: the command hung.
    Nothing has been asked of any server before the connections are open, so ending at once is true and safe.
    """
    if not _started_as_command() or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _exit_while_connecting)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is _exit_while_connecting:
            signal.signal(signal.SIGINT, previous)


def _exit_while_connecting(signum, frame) -> None:
    _leave(WHILE_CONNECTING)


def _started_as_command() -> bool:
    """True when this process is the `releaser` or `invoke` command, not a program that imported releaser."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name in _MODULES:
        return True
    path = getattr(main, "__file__", None) or ""
    return os.path.splitext(os.path.basename(path))[0] in _COMMANDS


def _exit_before_start(signum, frame) -> None:
    """The SIGINT handler until a task's work starts: one line on stderr, exit 130, no unwinding through what ran."""
    _leave(BEFORE_START)


def _leave(line: str) -> None:
    """Write `line` on stderr (showing the cursor again, which a progress display may have hidden) and exit 130."""
    try:
        os.write(2, (("\x1b[?25h\n" if os.isatty(2) else "\n") + line + "\n").encode())
    except OSError:
        pass  # stderr is closed: the exit code still says it
    os._exit(130)
