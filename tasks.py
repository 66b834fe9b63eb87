"""`invoke TASK` inside the checkout: the tasks live in releaser/cli_tasks.py, shared with the installed `releaser`."""

from releaser.cli_tasks import *  # noqa: F401,F403  (Invoke collects every Task this module holds)
