"""`invoke TASK` inside the checkout: the tasks live in releaser/cli_tasks.py, shared with the installed `releaser`."""

from releaser.interrupts import guard_startup

guard_startup()  # from here on, Ctrl-C before a task's work starts is one line and exit 130, not Invoke's silent 1
from releaser.cli_tasks import *  # noqa: E402,F401,F403  (Invoke collects every Task this module holds)
