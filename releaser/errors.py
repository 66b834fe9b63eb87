"""Failures a user can cause or fix. Each one says what is wrong and what to do next.

ReleaserError                                                 exit 1
+-- ConfigError      bad or unknown environment file           exit 2
+-- UsageError       a flag is missing or its value unreadable exit 2
+-- PlanRefused      the request would break a slot invariant  exit 3
|   +-- LockHeld     another deploy holds the lock             exit 3
|   +-- BundleInvalid  a release bundle is malformed or corrupt exit 3
+-- ChecksFailed     a pre-release check is FAIL               exit 4
+-- HostUnreachable  a server did not answer                   exit 5
|   +-- HostKeyChanged  its host key differs from known_hosts   exit 5  (never overridable)
+-- FleetReverted    a switch failed; every server is back     exit 6
+-- FleetMixed       a switch failed and could not be undone   exit 7
+-- Cancelled        the user said no, or pressed Ctrl-C       exit 130

Raise in the core, translate at the edge. Only tasks.py turns these into an exit code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from releaser.web import Probe


class ReleaserError(Exception):
    """A failure with a user-facing message: what is wrong, and a hint saying what to do."""

    exit_code = 1

    def __init__(self, what: str, *, hint: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.what}; {self.hint}" if self.hint else self.what


class ConfigError(ReleaserError):
    """An environment file is missing, unparsable or has a bad field."""

    exit_code = 2


class UsageError(ReleaserError):
    """A flag is missing, or its value cannot be read (a time, a number): nothing was asked of any server."""

    exit_code = 2


class PlanRefused(ReleaserError):
    """The request would break a slot invariant, so nothing was changed."""

    exit_code = 3


class LockHeld(PlanRefused):
    """Another deploy holds the lock on at least one server."""


class BundleInvalid(PlanRefused):
    """A release bundle is malformed, has a bad release id, or its files do not match its checksums."""


class ChecksFailed(ReleaserError):
    """At least one pre-release check is FAIL."""

    exit_code = 4


class HostUnreachable(ReleaserError):
    """A server did not answer, or a command on it could not be run at all."""

    exit_code = 5

    def __init__(self, server: str, what: str, *, hint: str | None = None, answered: bool = False,
                 silent: bool = False, unsent: bool = False) -> None:
        super().__init__(f"{server}: {what}", hint=hint)
        self.server = server
        self.answered = answered  # the server did answer, with an error (a full disk refusing an upload's bytes)
        self.silent = silent  # nothing came back before the step's deadline (not a closed or reset connection)
        self.unsent = unsent  # not one byte of the command left this machine: none of it ran on the server


class HostKeyChanged(HostUnreachable):
    """A server's host key is not the one known_hosts holds: possibly an attack, so no check may override it."""


class FleetReverted(ReleaserError):
    """A switch failed on some server; every reachable server was put back on the release it had.

    `exposed`: the most seconds the release switched to can have been live anywhere (from the start of the
    commit to the end of the revert), when the switch got as far as a commit. `answers`: the failing GETs of
    the check after the switch, by server (releaser.web.Probe), whose bodies say why; shown with the message.
    """

    exit_code = 6

    def __init__(self, what: str, *, hint: str | None = None, exposed: float | None = None,
                 answers: Mapping[str, Probe] | None = None) -> None:
        super().__init__(what, hint=hint)
        self.exposed = exposed
        self.answers = dict(answers or {})


class FleetMixed(ReleaserError):
    """A switch failed and some server could not be put back: the fleet is mixed. Loud on purpose.

    `answers`: as FleetReverted's, the failing GETs of the check after the switch, by server.
    """

    exit_code = 7

    def __init__(self, what: str, *, hint: str | None = None, answers: Mapping[str, Probe] | None = None) -> None:
        super().__init__(what, hint=hint)
        self.answers = dict(answers or {})


class Cancelled(ReleaserError):
    """The user declined a confirmation or interrupted before anything changed."""

    exit_code = 130
