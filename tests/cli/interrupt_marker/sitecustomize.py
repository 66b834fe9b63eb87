"""Harness for tests/cli/test_interrupt.py, put first on PYTHONPATH of the command under test: it touches the file
$RELEASER_INTERRUPT_MARKER the moment releaser.interrupts.guard_startup() has returned, so the test can
send SIGINT at known moments after the entry point took Ctrl-C over (before it, Ctrl-C is Python's and Invoke's)."""

import importlib.abc
import importlib.machinery
import os
import sys

MARKER = os.environ.get("RELEASER_INTERRUPT_MARKER")


class _MarkAfterRefuse(importlib.abc.MetaPathFinder):
    """Loads releaser.interrupts as usual, then wraps guard_startup to touch the marker after it."""

    def find_spec(self, name, path, target=None):
        if name != "releaser.interrupts":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            guard = module.guard_startup

            def guard_and_mark():
                guard()
                with open(MARKER, "w"):
                    pass
            module.guard_startup = guard_and_mark
        spec.loader.exec_module = exec_module
        return spec


if MARKER:
    sys.meta_path.insert(0, _MarkAfterRefuse())
