"""Where each server stands: the one script that reads its slots, releases, disk, lock and notice, and its parser.

The script (`remote.status_argv`) and `parse_status` are a pair, as a pyinfra fact pairs its command with
its parser: status, the checks, the lock's own round trip and every plan read a server through them, so
they all see a server the same way. `read_status` is the shell that runs the pair on every server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from releaser import remote
from releaser.bundle import RELEASE_ID_PATTERN
from releaser.errors import FleetMixed, HostUnreachable, ReleaserError
from releaser.locks import LockInfo, parse_lock
from releaser.slots import SlotState
from releaser.transport import Completed
from releaser.web import Probe

if TYPE_CHECKING:
    from releaser.group import Group
    from releaser.instances import ServerInstances


@dataclass(frozen=True)
class ServerReport:
    """Where one server stands: its slots, releases oldest first, free disk, lock and live health."""

    server: str
    state: SlotState | None
    oldest_first: tuple[str, ...] = ()
    free_bytes: int | None = None
    lock: LockInfo | None = None
    locked: bool = False
    notice: bool = False
    health: Probe | None = None
    error: str | None = None
    instances: ServerInstances | None = None  # when the environment has [application]
    no_root: bool = False  # its app root is not there: a server never deployed to, or a mistyped root


def public_release(report: ServerReport) -> str | None:
    """The release the public gets from a server: what its public URL names (a stale copy, or a server whose SSH
    did not answer, included), else where its live link points; None when neither is known."""
    served = report.health.served if report.health else None
    if served is not None and served.release:
        return served.release
    return report.state.live if report.state else None


def public_releases(reports: list[ServerReport]) -> set[str | None]:
    """What the public gets across the servers: each answering server's (None: it has no live release) and each
    silent server's whose public URL said; more than one is a MIXED fleet."""
    return set(servers_by_public_release(reports))


def servers_by_public_release(reports: list[ServerReport]) -> dict[str | None, list[str]]:
    """The servers the public gets each of those releases from (public_releases), in the reports' order."""
    serving: dict[str | None, list[str]] = {}
    for report in reports:
        release = public_release(report)
        if report.state is not None or release is not None:
            serving.setdefault(release, []).append(report.server)
    return serving


def status_exit_code(reports: list[ServerReport]) -> int:
    """What `invoke status` exits with, so a monitor or script can tell without reading the table.

    The codes a switch uses for the same states: 7 when the public gets different releases from different
    servers (MIXED: live links apart, a stale copy, or a silent server's web server still serving another), 5
    when a server did not answer, else 0.
    """
    if len(public_releases(reports)) > 1:
        return FleetMixed.exit_code
    if any(report.state is None for report in reports):
        return HostUnreachable.exit_code
    return 0


def parse_status(name: str, done: Completed) -> ServerReport:
    """Read the status script's output (remote.status_argv, or the lock script's tail) into a ServerReport."""
    if not done.ok:
        return ServerReport(name, None, error=f"cannot read its slots: {done.reason()}")
    if done.stdout.strip() == "noroot":
        return ServerReport(name, SlotState(None, None, None), notice=False, no_root=True)
    slots: dict[str, str | None] = {}
    ages: list[tuple[float, str]] = []
    free = lock_line = None
    notice = False
    for line in done.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "slot":
            slot, _, target = rest.partition(" ")
            slots[slot] = target.removeprefix("releases/").rstrip("/")
        elif kind == "release":
            mtime, _, release = rest.partition(" ")
            if RELEASE_ID_PATTERN.match(release):
                ages.append((float(mtime), release))
        elif kind == "df" and re.fullmatch(r"\d+\*\d+", rest.strip()):
            blocks, size = rest.strip().split("*")
            free = int(blocks) * int(size)
        elif kind == "lock":
            lock_line = rest
        elif kind == "notice":
            notice = True
    on_disk = frozenset(release for _, release in ages)
    state = SlotState(slots.get("live"), slots.get("backup"), slots.get("staging"), on_disk)
    return ServerReport(name, state, tuple(r for _, r in sorted(ages)), free,
                        parse_lock(lock_line) if lock_line else None, lock_line is not None, notice)


def read_status(group: Group, *, with_health: bool = True) -> list[ServerReport]:
    """Read every server's slots, disk, lock and (optionally) live health and instances, one round trip each."""
    from releaser.participants.links import check_health

    environment = group.environment

    def down(name: str, error: object) -> ServerReport:
        # SSH is not the web: what its public URL serves is still worth knowing (a MIXED fleet's odd server)
        health = check_health(environment, name) if with_health else None
        return ServerReport(name, None, error=str(error), health=health)

    def read(name: str) -> ServerReport:
        if name in group.unreachable:
            return down(name, group.unreachable[name])
        try:
            report = parse_status(name, group.hosts[name].run(remote.status_argv(group.root(name))))
        except ReleaserError as error:
            return down(name, error)
        if with_health and report.state and report.state.live:
            report = replace(report, health=check_health(environment, name))
        if environment.application is not None and report.state is not None:
            from releaser import instances  # issue 13: each slot's instance (port, pid, health, release)

            try:
                report = replace(report, instances=instances.read_instances(group.hosts[name], environment,
                                                                            group.root(name)))
            except ReleaserError:
                pass  # the slots were read; an instance table that cannot be is shown as absent, not as DOWN
        return report

    return [outcome if isinstance(outcome, ServerReport) else ServerReport(name, None, error=str(outcome))
            for name, outcome in group.each(read).items()]


_RUNBOOK = "see: invoke runbook server-failure"


def readable(reports: Iterable[ServerReport], doing: str) -> list[ServerReport]:
    """The reports, or a refusal of `doing` naming the first server whose slots could not be read."""
    reports = list(reports)
    broken = [r for r in reports if r.state is None]
    if broken:
        first = broken[0]
        why = (first.error or "cannot read its slots").removeprefix(f"{first.server}: ")
        why = why.removesuffix(f"; {_RUNBOOK}")  # said once, in the hint
        raise HostUnreachable(first.server, why, hint=f"nothing was changed, {doing} not started; {_RUNBOOK}")
    return reports


def states(reports: Mapping[str, ServerReport], doing: str) -> dict[str, SlotState]:
    """Every server's slots from reports read under the lock, or a refusal of `doing`."""
    return {report.server: report.state for report in readable(reports.values(), doing)}
