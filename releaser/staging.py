"""Staging a release: upload, verify and unpack it on every server, load its data, point every staging slot at it.

Staging moves only when every server holds the verified release; otherwise (an upload failed, or the switch of
the staging links was refused, reverted or cancelled) the releases this run unpacked are removed again and no
server's staging changes. Ctrl-C stops every upload at its next chunk and
removes what was uploaded or unpacked. Ctrl-C while the staged release's instance starts ends that wait at
once and stops the instances it started; staging stays on the release (see _start_staging_instances). Leftovers of an earlier run (partial uploads, temporary links) are
removed by the lock's own round trip.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from releaser import remote, shipping
from releaser.bundle import Bundle, sha256sums_text
from releaser.errors import Cancelled, FleetReverted, HostUnreachable, PlanRefused, ReleaserError
from releaser.group import summary
from releaser.order import counted
from releaser.results import FleetResult, HostResult, with_leftovers
from releaser.serverstate import states
from releaser.slots import Plan, fleet_release, plan_fleet_stage
from releaser.switch import held_interrupts

if TYPE_CHECKING:
    from releaser.fleet import Fleet


def stage(fleet: Fleet, bundle: Bundle, *, reason: str | None = None) -> FleetResult:
    """Upload, verify and unpack the bundle on every server, then point every staging slot at it."""
    started = time.perf_counter()
    release_id = bundle.release_id
    fleet.group.require_all_reachable(f"staging {release_id}")
    with fleet.locked(f"stage {release_id}") as session:
        read = states(session.reports, f"staging {release_id}")
        plans = plan_fleet_stage(read, release_id)
        previous = fleet_release(read, "staging")
        try:
            outcomes, lost = _upload_everywhere(fleet, bundle, plans)
        except KeyboardInterrupt:
            _undo_after_ctrl_c(fleet, release_id, plans, "uploaded or unpacked",
                               "Ctrl-C while staging; anything it had unpacked was removed")
            raise Cancelled(f"staging {release_id} stopped (Ctrl-C); what it had uploaded or unpacked was removed and "
                            "no server's staging changed", hint="run the same command again when ready") from None
        failed = {name: detail for name, (ok, detail) in outcomes.items() if not ok and detail != STOPPED}
        stopped = counted(name for name, (ok, detail) in outcomes.items() if detail == STOPPED)
        if failed:
            others = f"; the uploads to {', '.join(stopped)} were stopped" if stopped else ""
            # also where the upload failed: a connection cut after the last byte can hide a server that finished
            kept = counted(_remove_release(fleet, release_id, plans))
            fleet.record("stage", "failed", releases={"staging": release_id}, detail=summary(failed))
            if set(failed) <= lost:  # only servers that did not answer: exit 5 and the server-failure runbook
                why = next(iter(failed.values())) if len(failed) == 1 else summary(failed)
                left = (f"; {', '.join(kept)} may keep what {'it was' if len(kept) == 1 else 'they were'} sent, which "
                        f"the next stage there removes or, once checked, reuses") if kept else ""
                raise HostUnreachable(", ".join(counted(failed)), f"did not answer while staging {release_id} ({why})"
                                      f"{others}; no server's staging changed{left}",
                                      hint="see: invoke runbook server-failure; once it answers, run the same command again")
            raise FleetReverted(f"staging {release_id} failed on {summary(failed)}{others}; no server's staging changed",
                                hint=stage_hint(release_id, failed))
        upload_seconds = time.perf_counter() - started
        _stage_data(fleet, bundle, plans)  # issue 14: data slots; nothing when there is no [database]
        try:
            fleet.switch(plans, action="stage", verify=False)
        except ReleaserError:  # refused, reverted or cancelled: what this run unpacked must not stay on every disk
            # the server refuses to remove a release a slot points at, so a server that may have moved keeps it
            _remove_release(fleet, release_id, plans)
            raise
        _start_staging_instances(fleet, release_id, previous)  # issue 13: nothing when there is no [application]
        fleet.record("stage", "done", releases={"staging": release_id, "previous_staging": previous}, reason=reason,
                     timings={"upload": upload_seconds, "total": time.perf_counter() - started})
    return with_leftovers(FleetResult("stage", release_id, previous,
                                      tuple(HostResult(name, True, detail) for name, (ok, detail) in outcomes.items()),
                                      seconds={"upload": upload_seconds, "total": time.perf_counter() - started}), session)


def stage_hint(release_id: str, failed: Mapping[str, str]) -> str:
    """What to do after a failed stage: running it again mends a full disk, not a damaged copy already there."""
    damaged = counted(name for name, detail in failed.items() if _DAMAGED.search(detail))
    if damaged:
        return (f"the {release_id} already on {', '.join(damaged)} is not this bundle's files, and a release id never "
                f"changes its files: build the bundle as a new release id and stage that (invoke build --help)")
    if any(detail.startswith("after-unpack hook") for detail in failed.values()):
        return ("fix the after_unpack hook ([hooks] in the environment file) or what it needs on that server, then run "
                "the same command again: it unpacks the release and runs the hook anew")
    return "fix that server (disk, permissions) and run the same command again"


_DAMAGED = re.compile(r"fails its checksums on this server|has different files from the bundle")


def _start_staging_instances(fleet: Fleet, release_id: str, previous: str | None) -> None:
    """Start the staged release's instance on every server and wait for its health (issue 13).

    The staging links have moved by then; a server where the instance does not come up is named, and
    the stage is journaled as failed: staging points at a release that is not running there. Ctrl-C ends
    every server's wait at once and stops the instances this stage started; staging keeps pointing at the
    release, as after a failed start: its data (with a [database]) has replaced the staging data already, and
    the previous staging instance may have been stopped to free the port, so pointing back would not give
    back the staging there was.
    """
    if fleet.environment.application is None:
        return
    from releaser import instances

    group = fleet.group
    starting: dict[str, int] = {}  # server -> the port this stage started the instance on
    group.stop.clear()  # a Ctrl-C that ended an earlier step of this fleet must not stop these starts
    try:
        started = group.each(lambda name: instances.start_staging_instance(
            group.hosts[name], fleet.environment, group.root(name), release_id, stop=group.stop.is_set,
            starting=lambda port: starting.__setitem__(name, port)))
    except KeyboardInterrupt:
        group.stop.clear()  # every server's step has ended (or was given up on): now stop what they started
        with held_interrupts(f"Ctrl-C noted; the instances of {release_id} this stage started are being stopped "
                             "first (each stop has a deadline), then it stops"):
            stopped = group.each(lambda name: instances.stop_started_instance(
                group.hosts[name], fleet.environment, group.root(name), release_id, starting[name]), list(starting))
            left = f"; it could not be stopped on {stopped.summary()} and may still run there" if stopped.failed else ""
            fleet.record("stage", "interrupted", releases={"staging": release_id, "previous_staging": previous},
                         detail=f"Ctrl-C while its instance was starting; the instances it had started were stopped{left}")
        raise Cancelled(f"staging {release_id} stopped (Ctrl-C) while its instance was starting; the instances of "
                        f"{release_id} it had started were stopped{left}; staging still points at {release_id} on every "
                        "server (live and backup were not touched)",
                        hint=f"run the same command again to start {release_id}'s instance, or stage another release"
                        + ("; see: invoke status" if left else "")) from None
    if started.failed:
        fleet.record("stage", "failed", releases={"staging": release_id}, detail=f"instance: {started.summary()}")
        raise ReleaserError(f"staging now points at {release_id}, but its instance did not start on {started.summary()}",
                          hint="look at the instance's log on that server, fix it, then stage again; live and backup "
                               "were not touched")


def _stage_data(fleet: Fleet, bundle: Bundle, plans: Mapping[str, Plan]) -> None:
    """Load the release's data into the database's staging slot (issue 14); on failure undo the unpacking."""
    if fleet.environment.database is None:
        return
    from releaser import datastore  # psycopg only for environments with a database

    try:
        datastore.load_staging(fleet.environment, bundle)
    except KeyboardInterrupt:
        # the load's session closed with it, so its transaction (phof__loading) rolled back: staging kept its data
        _undo_after_ctrl_c(fleet, bundle.release_id, plans, "unpacked",
                           "Ctrl-C while its data loaded; what it had unpacked was removed")
        raise Cancelled(f"staging {bundle.release_id} stopped (Ctrl-C) while its data loaded; what it had unpacked was "
                        "removed, no server's staging changed and the database's staging data was not replaced",
                        hint="run the same command again when ready") from None
    except ReleaserError as error:
        _remove_release(fleet, bundle.release_id, plans)
        fleet.record("stage", "failed", releases={"staging": bundle.release_id}, detail=f"database: {error.what}")
        raise


def _undo_after_ctrl_c(fleet: Fleet, release_id: str, plans: Mapping[str, Plan], what: str, detail: str) -> None:
    """After a Ctrl-C (every server's step has ended): remove what this stage unpacked and journal it, holding
    further presses meanwhile; `what` says what is removed, `detail` is the journal's."""
    fleet.group.stop.clear()
    with held_interrupts(f"Ctrl-C noted; removing what this stage of {release_id} {what}, then it stops"):
        _remove_release(fleet, release_id, plans)
        fleet.record("stage", "interrupted", releases={"staging": release_id}, detail=detail)


def _remove_release(fleet: Fleet, release_id: str, plans: Mapping[str, Plan]) -> dict[str, str]:
    """Remove a release this stage unpacked (every server its plan unpacks on; never one a slot points to); the
    servers where that failed, with why.

    On a new connection where the connection broke (a server that finished its unpack may have lost only its
    connection); the removal is safe to run twice, and a server silent earlier in the command is not asked again.
    """
    group = fleet.group
    return group.each_reconnecting(lambda name: group.hosts[name].run(remote.remove_release_argv(group.root(name), release_id)),
                            [name for name, plan in plans.items() if plan.unpack]).failed


def _upload_everywhere(fleet: Fleet, bundle: Bundle, plans: Mapping[str, Plan]
                       ) -> tuple[dict[str, tuple[bool, str]], set[str]]:
    """Put the verified release on every server that lacks it (releaser.shipping), and check it where it already is.

    Returns (ok, detail) per server, and the servers that did not answer (dead, silent, connection lost).
    """
    group, release_id = fleet.group, bundle.release_id
    sums_sha = hashlib.sha256(sha256sums_text(bundle.manifest.files).encode()).hexdigest()
    group.stop.clear()  # a Ctrl-C that ended an earlier step of this fleet must not stop these uploads
    failed_somewhere = threading.Event()  # then the stage fails whatever the others do: their uploads stop too

    def stopped() -> bool:
        return group.stop.is_set() or failed_somewhere.is_set()

    with tempfile.TemporaryDirectory(prefix="releaser-") as workdir:
        needs_upload = any(plan.unpack for plan in plans.values())
        upload = shipping.prepare_upload(bundle, Path(workdir)) if needs_upload else None  # a .tar.gz as it is

        def place(name: str) -> tuple[bool, str]:
            host, root = group.hosts[name], group.root(name)
            if not plans[name].unpack:
                group.progress(name, f"checking {release_id} already on the server")
                done = host.run(remote.check_release_argv(root, release_id, sums_sha))
                return (done.ok, "already on the server, verified" if done.ok else done.reason())
            ok, detail = shipping.send(host, root, upload, stop=stopped, step=fleet.environment.deadlines.step,
                                       progress=lambda message: group.progress(name, message))
            if not ok:
                return False, detail
            # a hook that did not run through fails the stage, which removes the release (stage()): kept, the same
            # stage run again would find it "already on the server" and never run the hook (a chmod would be missing)
            hook = fleet.run_hook(name, "after_unpack", release_id, "staging")
            return (True, detail) if hook is None else (False, hook)

        def place_noting_failure(name: str) -> tuple[bool, str]:
            try:
                placed = place(name)
            except BaseException:
                failed_somewhere.set()
                raise
            if not placed[0]:
                failed_somewhere.set()
            return placed

        outcomes = group.each(place_noting_failure)
    lost = {name for name, o in outcomes.items() if isinstance(o, HostUnreachable) and not o.answered}
    return {name: (False, STOPPED) if isinstance(o, Cancelled) and failed_somewhere.is_set() and not group.stop.is_set()
            else o if isinstance(o, tuple) else (False, _what_failed(name, o)) for name, o in outcomes.items()}, lost


STOPPED = "its upload was stopped: the stage had failed elsewhere"  # not a failure of its own


def _what_failed(name: str, error: Exception) -> str:
    """What went wrong on one server, without the error's own hint: the stage's message ends with the hint to follow."""
    return (getattr(error, "what", None) or str(error)).removeprefix(f"{name}: ")
