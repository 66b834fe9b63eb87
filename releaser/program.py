"""The installed `releaser` command: Invoke's Program over the tasks of releaser/cli_tasks.py.

`releaser TASK` runs the very tasks `invoke TASK` runs in a checkout, from any directory, with the
collection loaded from the package rather than searched for as a tasks.py beside the current directory.
Shell completion: `releaser --print-completion-script bash` (or zsh, fish) prints a script to source.
"""

from __future__ import annotations

from releaser.interrupts import guard_startup

guard_startup()  # first: Ctrl-C while Invoke and the tasks import is one line and exit 130 (interrupts.py)
from invoke import Collection, Program  # noqa: E402

from releaser import __version__, cli_tasks  # noqa: E402


def make_program() -> Program:
    """Return the `releaser` program: every task of cli_tasks, named and versioned as releaser."""
    return Program(version=__version__, namespace=Collection.from_module(cli_tasks), name="releaser",
                   binary="releaser", binary_names=["releaser"])


program = make_program()


def main() -> None:
    """Run `releaser` with sys.argv (the console script's entry point)."""
    program.run()


if __name__ == "__main__":
    main()
