"""Pruning: old releases, retired application instances and retired data schemas removed, never one a slot names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from releaser import remote
from releaser.approval import Approve, ask
from releaser.errors import HostUnreachable, ReleaserError
from releaser.group import summary
from releaser.serverstate import readable
from releaser.slots import plan_prune

if TYPE_CHECKING:
    from releaser.fleet import Fleet
    from releaser.locking import LockSession


def prune(fleet: Fleet, *, keep: int | None = None, approve: Approve | None = None) -> dict[str, tuple[str, ...]]:
    """Remove old releases on every server, keeping `keep` besides those a slot points to."""
    group = fleet.group
    keep = fleet.environment.keep_releases if keep is None else keep
    group.require_all_reachable("prune")
    with fleet.locked("prune") as session:
        plans = {report.server: plan_prune(report.state, keep, report.oldest_first)
                 for report in readable(session.reports.values(), "prune")}
        stopped = _stop_retired_instances(fleet)  # issue 13: never one a slot names
        if all(plan.is_noop() for plan in plans.values()):
            dropped = _prune_data(fleet, session)
            if stopped or dropped:
                fleet.record("prune", "done", extra={"stopped": stopped, "dropped_schemas": list(dropped)})
            return {name: () for name in plans}
        ask(approve, "prune", plans)

        def remove(name: str) -> tuple[str, ...]:
            for release in plans[name].removals:
                done = group.hosts[name].run(remote.remove_release_argv(group.root(name), release))
                if not done.ok:
                    raise HostUnreachable(name, f"cannot remove {release}: {done.reason()}")
            return plans[name].removals
        outcomes = group.each(remove)
        failures = outcomes.failed
        removed = outcomes.succeeded
        dropped = _prune_data(fleet, session, removed=[r for releases in removed.values() for r in releases])
        fleet.record("prune", "failed" if failures else "done", detail=summary(failures) if failures else "",
                     extra={"removed": {n: list(r) for n, r in removed.items()}, "stopped": stopped,
                            "dropped_schemas": list(dropped)})
    if failures:
        raise ReleaserError(f"prune failed on {summary(failures)}", hint="check the server's disk and permissions")
    return dict(outcomes)


def _stop_retired_instances(fleet: Fleet) -> dict[str, list[str]]:
    """Stop every application instance no slot names, on every server (issue 13); per server, the releases stopped."""
    if fleet.environment.application is None:
        return {}
    from releaser import instances

    group = fleet.group
    outcomes = group.each(lambda name: instances.stop_retired_instances(group.hosts[name], fleet.environment,
                                                                        group.root(name)))
    if outcomes.failed:
        raise ReleaserError(f"prune could not stop retired instances on {outcomes.summary()}",
                            hint="look at that server's instances (invoke status), then prune again")
    return {name: [i.release for i in stopped] for name, stopped in outcomes.items() if stopped}


def _prune_data(fleet: Fleet, session: LockSession, removed: list[str] = ()) -> tuple[str, ...]:
    """Drop retired data schemas (issue 14), keeping every release still on some server's disk."""
    if fleet.environment.database is None:
        return ()
    from releaser import datastore

    on_disk = {release for report in session.reports.values() if report.state for release in report.state.on_disk}
    return datastore.prune_data(fleet.environment, keep_ids=sorted(on_disk - set(removed)))
