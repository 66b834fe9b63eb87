"""How the person at the terminal ran releaser, so that every command a message suggests can be typed as it is.

Messages end with what to do next ("run: invoke status"). Written once in the code, such a hint is wrong for
someone who ran `releaser rollback --env ~/prod.toml` from their own machine: `invoke` is not there, and without
`--env` the command would read the default environment (the local sandbox), not production. Each task records
its program and `--env` when it starts (cli_tasks.ReleaserTask), and ui passes every line it prints through
`for_this_run`, which names that program and adds that environment to each command of a task that takes one.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

from releaser.free_text import shell_word

DEFAULT_ENV = "local"
# The tasks that read an environment (their --env flag); the others (runbook, build, demo) take none.
ENV_TASKS = ("status", "rollback", "history", "check", "go-live", "deploy", "notice", "breach-report", "unlock",
             "lock", "prune", "data-status", "data-upload", "data-sign-off", "rehearse", "calendar", "dashboard",
             "serve")
OTHER_TASKS = ("runbook", "build", "demo-app", "demo")
_COMMAND = re.compile(r"\binvoke (?P<task>" + "|".join(map(re.escape, ENV_TASKS + OTHER_TASKS)) + r")(?![\w-])")
_END_OF_COMMAND = re.compile(r"[;,()\n]| then | and | or ")


@dataclass(frozen=True)
class Invocation:
    """The program the person typed ("invoke", "releaser") and the --env they gave (None: the default)."""

    program: str = "invoke"
    env: str | None = None


_current = [Invocation()]


def begin(program: str, env: str | None) -> None:
    """Record how the running task was started (its program's name and its --env value)."""
    _current[0] = Invocation(program, env)


def current() -> Invocation:
    """How the running task was started; outside a task, plain `invoke` with the default environment."""
    return _current[0]


def program_name(argv0: str | None = None) -> str:
    """The command's name as the person types it: `releaser` for the installed command, else `invoke`."""
    name = os.path.splitext(os.path.basename(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else "")))[0]
    return "releaser" if name == "releaser" else "invoke"


def suggested(text: str, invocation: Invocation) -> str:
    """`text` with each `invoke TASK ...` it suggests written for `invocation` (pure).

    The program becomes the one typed; a task that reads an environment gets ` --env ENV` after its name when the
    person gave a --env other than the default and the suggested command names none of its own.
    """
    if invocation.program == "invoke" and invocation.env in (None, DEFAULT_ENV):
        return text
    env = "" if invocation.env in (None, DEFAULT_ENV) else f" --env {shell_word(invocation.env)}"
    pieces, start = [], 0
    for match in _COMMAND.finditer(text):
        rest = text[match.end():]
        end = _END_OF_COMMAND.search(rest)
        own_env = "--env" in (rest[:end.start()] if end else rest)
        task = match.group("task")
        pieces += [text[start:match.start()], f"{invocation.program} {task}",
                   env if task in ENV_TASKS and not own_env else ""]
        start = match.end()
    return "".join(pieces) + text[start:]


def for_this_run(text: str) -> str:
    """`text` with its suggested commands written as the running task was started (see suggested)."""
    return suggested(text, current())
