"""Dry runs: what a command would change on every server, read without changing anything.

`--dry-run` (and Invoke's own `--dry`) on a task that changes servers ends here instead of in the fleet's
command: the servers are read, never locked, written or journaled, and the plan comes back as data for
`ui.show_preview`. A request the real command would refuse is refused here too, with the same error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from releaser.fleet import Fleet
from releaser.participants import moves_beside_the_links
from releaser.serverstate import states
from releaser.slots import Plan, SlotState, plan_fleet_go_live, plan_fleet_rollback, plan_fleet_stage, plan_prune


@dataclass(frozen=True)
class Preview:
    """What one command would do: per-server slot plans and/or one line per server, and a headline."""

    action: str
    headline: str
    plans: Mapping[str, Plan] = field(default_factory=dict)
    lines: Mapping[str, str] = field(default_factory=dict)
    also: tuple[str, ...] = ()  # what moves besides the links (participants.moves_beside_the_links)

    def changes_nothing(self) -> bool:
        """True when the command would change no server at all."""
        return not self.lines and all(plan.is_noop() for plan in self.plans.values())


def read_as_the_command(fleet: Fleet, doing: str) -> dict[str, SlotState]:
    """Every server's slots, refused as the command itself would be: a server that cannot be read, or a lock
    the command could not take (held by someone else, not expired)."""
    return states({report.server: report for report in _reports_as_the_command(fleet, doing)}, doing)


def _reports_as_the_command(fleet: Fleet, doing: str) -> list:
    from releaser.locking import lock_refusal

    fleet.group.require_all_reachable(doing)
    reports = fleet.read_status(with_health=False)
    refusal = lock_refusal({r.server: r.lock for r in reports if r.locked}, actor=fleet.recorder.actor,
                           kind="command", expired_at=fleet.clock.now())
    if refusal is not None:
        raise refusal
    return reports


def preview_stage(fleet: Fleet, release_id: str) -> Preview:
    """The stage plan of a (verified) bundle on every server."""
    plans = plan_fleet_stage(read_as_the_command(fleet, f"staging {release_id}"), release_id)
    if all(plan.is_noop() for plan in plans.values()):  # the real run only checks what is there
        return Preview("deploy", f"{release_id} is already staged on every server: the deploy would check its files "
                       "there and change nothing", plans=plans)
    return Preview("deploy", f"would stage {release_id} on every server", plans=plans)


def preview_go_live(fleet: Fleet, *, now: bool, at: str | None, force: bool = False, overrides=(),
                    reason: str | None = None) -> Preview:
    """The go-live plan and the moment of the switch: now, --at, or the staged release's calendar; refused as the
    command would refuse its flags (golive.refuse_request)."""
    from releaser.golive import environment_zone, next_publication_time, refuse_request

    moment_at = refuse_request(fleet.environment, now=now, at=at, force=force, overrides=overrides, reason=reason,
                               clock_now=fleet.clock.now())
    plans = plan_fleet_go_live(read_as_the_command(fleet, "go-live"))
    release = next(iter(plans.values())).before.staging
    zone = environment_zone(fleet.environment)
    if now:
        moment = "now (--now)"
    elif moment_at is not None:
        moment = f"at {moment_at.astimezone(zone):%a %d %b %Y %H:%M:%S %Z} (--at)"
    else:
        scheduled = next_publication_time(fleet.environment, fleet.read_manifest(release).publications, fleet.clock.now())
        moment = f"at {scheduled.at.astimezone(zone):%a %d %b %Y %H:%M:%S %Z} ({scheduled.publication}'s calendar)"
    return Preview("go-live", f"would switch {release} live {moment}, once every check passes", plans=plans,
                   also=tuple(moves_beside_the_links(fleet.environment, "go-live", plans)))


def preview_rollback(fleet: Fleet) -> Preview:
    """The rollback plan: the backup back live on every server."""
    plans = plan_fleet_rollback(read_as_the_command(fleet, "rollback"))
    release = next(iter(plans.values())).before.backup if plans else None
    return Preview("rollback", f"would put {release} back live on every server", plans=plans,
                   also=tuple(moves_beside_the_links(fleet.environment, "rollback", plans)))


def preview_prune(fleet: Fleet, keep: int | None) -> Preview:
    """Which releases prune would remove on each server (never one a slot points to)."""
    keep = fleet.environment.keep_releases if keep is None else keep
    plans = {report.server: plan_prune(report.state, keep, report.oldest_first)
             for report in _reports_as_the_command(fleet, "prune") if report.state is not None}
    return Preview("prune", f"would remove old releases, keeping {keep} besides those a slot points to", plans=plans)


def preview_lock(fleet: Fleet, minutes: int) -> Preview:
    """Which servers a lock would take (every one, or none if one is held by someone else)."""
    from releaser.locks import describe_lock

    fleet.require_all_reachable("lock")

    def line(report) -> str:
        if report.locked:
            return f"already {describe_lock(report.lock)}: the lock would be refused"
        return f"would lock for {minutes} min" if minutes else "would lock with no expiry"
    return Preview("lock", "would lock every server against deploys",
                   lines={r.server: line(r) for r in fleet.read_status(with_health=False)})


def preview_unlock(fleet: Fleet) -> Preview:
    """Which servers hold a lock that unlock would remove."""
    held = held_locks(fleet)
    lines = {server: f"would remove the {description}" for server, description in held.items()}
    headline = "would remove the lock on " + ", ".join(held) if held else "nothing is locked: unlock would change nothing"
    return Preview("unlock", headline, lines=lines)


def preview_notice(fleet: Fleet, message: str, *, clear: bool) -> Preview:
    """The notice each server's live site would show, or lose."""
    fleet.require_all_reachable("notice")
    what = "would remove the notice" if clear else f"would show: {message}"
    return Preview("notice", "would remove the delay notice" if clear else "would publish a delay notice",
                   lines={server.name: what for server in fleet.environment.servers})


def preview_data(fleet: Fleet, action: str, dataset: str, detail: str) -> Preview:
    """A data upload or sign-off: the staged release it would change on every server."""
    release = {r.state.staging for r in fleet.read_status(with_health=False) if r.state is not None}
    staged = ", ".join(sorted(str(r) for r in release)) or "nothing"
    return Preview(action, f"would {detail} data set {dataset} in the staged release ({staged})",
                   lines={server.name: f"would {detail} {dataset}" for server in fleet.environment.servers})


def held_locks(fleet: Fleet) -> dict[str, str]:
    """{server: who holds its lock} for every reachable server that is locked."""
    from releaser.locks import describe_lock

    return {r.server: describe_lock(r.lock) for r in fleet.read_status(with_health=False) if r.locked}

