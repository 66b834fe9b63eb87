"""Every kind of thing a switch moves, and the one list that says which kinds take part.

A kind is a module with `participants(context) -> list[Participant]` (the Protocol in releaser.switch), called
for every switch: a stage (`context.slot == "staging"`), a go-live or rollback, and a rehearsal
(`context.rehearsal`). It returns [] when the environment does not declare it or it must not take part in
this switch. Adding a kind (a web front, a database) is one module, one line in `_kinds()` and one in `moves_beside_the_links`
(what the approved plan says moves), plus a model in releaser.config for any new section of the environment
file; the coordinator (releaser.switch) does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import zip_longest
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
    """Every participant of one switch, the kinds taken in turns: the first of each kind, then the second of each...

    The coordinator tells the armed ones go in this order, one write after another while the servers already
    told start moving on the same cores: in turns, a server's front hears go right after its links, where kind
    by kind every front would wait for every server's links (the front is what an application's public sees).
    """
    by_kind = [kind(context) for kind in _kinds(context.environment)]
    return [participant for turn in zip_longest(*by_kind) for participant in turn if participant is not None]


def moves_beside_the_links(environment: Environment, action: str, plans: Mapping[str, Plan]) -> list[str]:
    """What a go-live or rollback moves besides the slot links shown in its plan, one line per kind, for the
    person approving it (and a dry run): the front's upstream and the database's data slots."""
    moving = [plan for plan in plans.values() if any(c.slot == "live" and c.new for c in plan.links)]
    if action not in ("go-live", "rollback") or not moving:
        return []
    target, previous = moving[0].after.live, moving[0].before.live
    lines = []
    application = environment.application
    if application is not None and application.front is not None:
        whose = "the warm backup instance" if action == "rollback" else "the staging instance"
        by_socket = application.front.socket is not None
        how = "the link to it is replaced; nginx is not reloaded" if by_socket else \
            "the include is replaced, then a graceful reload"
        lines.append(f"nginx on {len(moving)} server(s): the public moves to {whose} of {target} on its own "
                     f"{'socket' if by_socket else 'port'} "
                     f"(one whose process is gone is started again first; {how})")
    database = environment.database
    if database is not None:
        name = database.schema_name
        if action == "go-live":
            # a first release has no live data to keep as the backup, nor a backup to retire
            keeps = f", {previous}'s becomes the backup and any older backup is retired" if previous else ""
            lines.append(f"database schema {name}: {target}'s staged data becomes live{keeps}, in one transaction at the "
                         "second")
        else:
            retires = f" and {previous}'s is retired" if previous else ""
            lines.append(f"database schema {name}: {target}'s backup data becomes live again{retires}, in one "
                         "transaction at the second")
    return lines
