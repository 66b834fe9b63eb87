"""Every kind of thing a switch moves, and the one list that says which kinds take part.

A kind is a module with `participants(context) -> list[Participant]` (the Protocol in releaser.switch), called
for every switch: a stage (`context.slot == "staging"`), a go-live or rollback, and a rehearsal
(`context.rehearsal`). It returns [] when the environment does not declare it or it must not take part in
this switch. Adding a kind (a web front, a database) is one module and one line in `_kinds()`, plus a model in
releaser.config for any new section of the environment file; the coordinator (releaser.switch) does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from releaser.config import Environment
from releaser.slots import Plan
from releaser.switch import Participant
from releaser.transport import Host


@dataclass(frozen=True)
class SwitchContext:
    """What every participant kind may read about one switch: where, what moves, and from what to what.

    `action` is "stage", "go-live", "rollback" or "rehearsal"; `slot` the slot that changes release
    ("live", or "staging" for a stage); `plans` one per server; `target` the release the slot moves to and
    `previous` the one it leaves. `roots` are the app roots to act on (a rehearsal's are throwaway copies).
    `early` holds, per server, what the lock's round trip already prepared (see participants.links).
    """

    environment: Environment
    hosts: Mapping[str, Host]
    roots: Mapping[str, PurePosixPath]
    action: str
    slot: str
    plans: Mapping[str, Plan]
    target: str | None
    previous: str | None
    rehearsal: bool = False
    early: Mapping[str, object] = field(default_factory=dict)


def _kinds(environment: Environment) -> list[Callable[[SwitchContext], list[Participant]]]:
    """The participant kinds an environment can have; the database's (and psycopg) is imported only with [database]."""
    from releaser.participants import front, links

    kinds = [links.participants, front.participants]  # front: [] without [application.front] (issue 13)
    if environment.database is not None:  # issue 14; psycopg costs ~70 ms of start-up for every other command
        from releaser.participants import database

        kinds.append(database.participants)
    return kinds


def participants_for(context: SwitchContext) -> list[Participant]:
    """Every participant of one switch, kind by kind, in the order they are listed."""
    return [participant for kind in _kinds(context.environment) for participant in kind(context)]
