"""Every server of one environment at once: connections, status, staging, the switch's shell, lock, prune, journal.

The switch itself is decided by releaser.switch (the coordinator) over the participants releaser.participants
builds (the slot links on every server, and a front and a database when the environment declares them).
This module gives it the servers, turns its one decision into the one error a user sees (FleetReverted,
FleetMixed, HostUnreachable), and journals it. The deploy lock is a held value (LockSession) that every
changing command takes inside its protected region and frees whatever happens, with the command's journal
lines in the same round trip.
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NoReturn

from releaser import remote, shipping
from releaser.bundle import MANIFEST, RELEASE_ID_PATTERN, Bundle, Manifest, sha256sums_text
from releaser.clock import Clock
from releaser.config import Environment
from releaser.errors import (Cancelled, FleetMixed, FleetReverted, HostKeyChanged, HostUnreachable, LockHeld, PlanRefused,
                             ReleaserError)
from releaser.hooks import run_hook
from releaser.participants import SwitchContext, participants_for
from releaser.participants.links import EarlyPrepare, ServerLinks, check_health
from releaser.switch import INTERRUPTED, Deadlines, Decision, State, SwitchReport, held_interrupts, run_switch
from releaser.journal import append_local, event_line, make_event, merge_history, parse_lines, read_local
from releaser.locks import LockInfo, describe_lock, is_expired, new_lock, parse_lock
from releaser.slots import Plan, SlotState, fleet_release, plan_fleet_go_live, plan_fleet_rollback, plan_fleet_stage, plan_prune
from releaser.transport import Completed, Host, make_hosts, once_more_on_a_new_connection
from releaser.web import Probe

if TYPE_CHECKING:
    from releaser.instances import ServerInstances

Progress = Callable[[str, str], None]
Approve = Callable[[str, Mapping[str, Plan]], bool]
BeforeCommit = Callable[[], None]


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


def status_exit_code(reports: list[ServerReport]) -> int:
    """What `invoke status` exits with, so a monitor or script can tell without reading the table.

    The codes a switch uses for the same states: 7 when the servers that answered serve different live
    releases (MIXED), 5 when a server did not answer, else 0.
    """
    if len({report.state.live for report in reports if report.state}) > 1:
        return FleetMixed.exit_code
    if any(report.state is None for report in reports):
        return HostUnreachable.exit_code
    return 0


@dataclass(frozen=True)
class HostResult:
    """What one command did on one server."""

    server: str
    ok: bool
    detail: str
    renamed_at: float | None = None


@dataclass(frozen=True)
class FleetResult:
    """What a fleet command did: the release now in the slot it moved, one result per server, timings."""

    action: str
    release: str | None
    previous: str | None
    results: tuple[HostResult, ...]
    notes: tuple[str, ...] = ()
    seconds: Mapping[str, float] | None = None
    skew: float | None = None


@dataclass
class LockSession:
    """The deploy lock one command holds: its token, where it was taken, what was read under it.

    `lines` are the journal events that travel to the servers with the unlock; once the lock is freed,
    `stuck` names each server where freeing it or writing those lines failed, with why.
    """

    token: str
    reason: str
    taken: list[str]
    reports: dict[str, ServerReport] = field(default_factory=dict)
    early: dict[str, EarlyPrepare] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    stuck: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # how long taking it took (with `early`, that round trip also prepared the links)

    def leftover_warning(self) -> str:
        """Say which servers kept this command's lock or lack its journal lines, and what to do."""
        kept = sorted(name for name in self.stuck if name in self.taken)
        missing = sorted(self.stuck) if self.lines else []
        parts = []
        if kept:
            why = self.stuck[kept[0]] if len(kept) == 1 else _summary({n: self.stuck[n] for n in kept})
            parts.append(f"{', '.join(kept)} still {'holds' if len(kept) == 1 else 'hold'} this command's lock "
                         f"({why}): once back, run: invoke unlock --reason TEXT")
        if missing:
            parts.append(f"the journal on {', '.join(missing)} lacks this command's events (the local journal has them)")
        return "; ".join(parts)


def _with_leftovers(result: FleetResult, session: LockSession) -> FleetResult:
    """The result, with a loud note when some server kept the lock or missed the journal lines."""
    if not session.stuck:
        return result
    return replace(result, notes=(*result.notes, f"WARNING: {session.leftover_warning()}"))


def _switch_result(action: str, target: str | None, previous: str | None, plans: Mapping[str, Plan],
                   participants: list, report: SwitchReport) -> FleetResult:
    """One HostResult per server from a switch that moved: its health when verified, when its live link moved."""
    links = {p.server: p for p in participants if isinstance(p, ServerLinks)}
    results = []
    for name in plans:
        participant = links.get(name)
        health = participant.probe if participant else None
        ok = health.ok if health else True
        detail = health.detail if health else ("switched" if participant else "already there")
        results.append(HostResult(name, ok, detail, participant.moved_at if participant else None))
    notes = [note for plan in plans.values() for note in plan.notes]
    if report.interrupted:
        notes.append(f"Ctrl-C came while the {action} was switching; it had reached every server, so {target} stays "
                     f"{'staged' if action == 'stage' else 'live'}")
    return FleetResult(action, target, previous, tuple(results), tuple(dict.fromkeys(notes)), dict(report.timings),
                       report.skew)


@contextmanager
def connected(environment: Environment, *, actor: str, clock: Clock, progress: Progress | None = None,
              journal_path: Path | None = None, hosts: Mapping[str, Host] | None = None) -> Iterator["Fleet"]:
    """Open every server of the environment (and, for the local sandbox, its web servers) for one command."""
    from releaser.sandbox import serving

    with serving(environment) if environment.sandbox and environment.sandbox.serve else _nothing():
        with Fleet(environment, actor=actor, clock=clock, hosts=hosts, progress=progress, journal_path=journal_path) as fleet:
            if environment.notifications:
                from releaser.notify import Notifier

                fleet.notifier = Notifier(environment.notifications, timezone=_zone_of(environment))
            try:
                yield fleet
            finally:
                fleet.finish_notifications()


def _zone_of(environment: Environment) -> str:
    return environment.publications[0].timezone if environment.publications else "Europe/London"


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


class Fleet:
    """All servers of one environment, connected once and used for every step of one command."""

    def __init__(self, environment: Environment, *, actor: str, clock: Clock, hosts: Mapping[str, Host] | None = None,
                 progress: Progress | None = None, journal_path: Path | None = None) -> None:
        self.environment = environment
        self.actor = actor
        self.clock = clock
        self.hosts = dict(hosts) if hosts is not None else make_hosts(environment)
        self.progress = progress or (lambda server, message: None)
        self.journal_path = journal_path
        self.unreachable: dict[str, HostUnreachable] = {}
        self.notifier = None  # set by connected() when the environment has notification channels
        self.deliveries: list = []
        self._session: LockSession | None = None  # while a lock is held: its journal lines wait for the unlock
        self._context: dict = {}  # fields every event of the current go-live carries (planned time etc.)
        self._pool = ThreadPoolExecutor(max_workers=min(environment.parallel, len(self.hosts)) or 1)
        self._stop = threading.Event()  # set by Ctrl-C: long work (uploads) ends at its next step or chunk

    # ---- connections ----

    def __enter__(self) -> "Fleet":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        """Open every server's connection in parallel; servers that fail are kept in `unreachable`."""
        outcomes = self.each(lambda name: self.hosts[name].open() if hasattr(self.hosts[name], "open") else None)
        self.unreachable = {name: error for name, error in outcomes.items() if isinstance(error, HostUnreachable)}

    def close(self) -> None:
        """Close every connection and the worker pool."""
        self.each(lambda name: self.hosts[name].close())
        self._pool.shutdown(wait=False, cancel_futures=True)  # a step still hung on a lost server ends at its deadline

    def require_all_reachable(self, doing: str) -> None:
        """Refuse to start `doing` unless every server answered; nothing has been changed yet."""
        if self.unreachable:
            changed = {name: e for name, e in self.unreachable.items() if isinstance(e, HostKeyChanged)}
            if changed:  # never a thing to override or retry: the key must be verified first
                first = next(iter(changed.values()))
                raise HostKeyChanged(", ".join(sorted(changed)), f"cannot be reached safely: {first.what.split(': ', 1)[-1]}",
                                     hint=first.hint)
            names = ", ".join(sorted(self.unreachable))
            first = next(iter(self.unreachable.values()))
            raise HostUnreachable(names, f"cannot be reached safely ({first.what.split(': ', 1)[-1]}); nothing was changed, "
                                  f"{doing} not started", hint=first.hint or "see: invoke runbook server-failure")

    # ---- reading ----

    def read_status(self, *, with_health: bool = True) -> list[ServerReport]:
        """Read every server's slots, disk, lock and (optionally) live health, one round trip each."""
        def read(name: str) -> ServerReport:
            if name in self.unreachable:
                return ServerReport(name, None, error=str(self.unreachable[name]))
            report = _parse_status(name, self.hosts[name].run(remote.status_argv(self.root(name))))
            if with_health and report.state and report.state.live:
                report = _with_health(report, check_health(self.environment, name))
            if self.environment.application is not None and report.state is not None:
                from releaser import instances  # issue 13: each slot's instance (port, pid, health, release)

                try:
                    report = replace(report, instances=instances.read_instances(self.hosts[name], self.environment,
                                                                                self.root(name)))
                except ReleaserError:
                    pass  # the slots were read; an instance table that cannot be is shown as absent, not as DOWN
            return report
        outcomes = self.each(read)
        return [outcome if isinstance(outcome, ServerReport) else ServerReport(name, None, error=str(outcome))
                for name, outcome in outcomes.items()]

    def read_states(self, doing: str) -> dict[str, SlotState]:
        """Return every server's slot state, or refuse `doing` if any server cannot be read."""
        self.require_all_reachable(doing)
        return _states({report.server: report for report in self.read_status(with_health=False)}, doing)

    def root(self, name: str) -> PurePosixPath:
        """The app root on the named server."""
        return self.environment.app_root(self.environment.server(name))

    # ---- staging ----

    def stage(self, bundle: Bundle, *, reason: str | None = None) -> FleetResult:
        """Upload, verify and unpack the bundle on every server, then point every staging slot at it.

        Staging moves only when every server holds the verified release; otherwise the releases this run
        unpacked are removed again and no server's staging changes.
        """
        started = time.perf_counter()
        release_id = bundle.release_id
        self.require_all_reachable(f"staging {release_id}")
        with self.locked(f"stage {release_id}") as session:
            states = _states(session.reports, f"staging {release_id}")
            plans = plan_fleet_stage(states, release_id)
            previous = fleet_release(states, "staging")
            try:
                outcomes = self._upload_everywhere(bundle, plans)
            except KeyboardInterrupt:
                self._stop.clear()  # every server's step has ended: now undo them
                with held_interrupts():
                    self._remove_release(release_id, [name for name, plan in plans.items() if plan.unpack])
                    self._journal("stage", "interrupted", releases={"staging": release_id},
                                  detail="Ctrl-C while staging; anything it had unpacked was removed")
                raise Cancelled(f"staging {release_id} stopped (Ctrl-C); what it had uploaded or unpacked was removed and "
                                "no server's staging changed", hint="run the same command again when ready") from None
            failed = {name: detail for name, (ok, detail) in outcomes.items() if not ok}
            if failed:
                self._remove_release(release_id, [name for name, plan in plans.items() if plan.unpack and outcomes[name][0]])
                self._journal("stage", "failed", releases={"staging": release_id}, detail=_summary(failed))
                raise FleetReverted(f"staging {release_id} failed on {_summary(failed)}; no server's staging changed",
                                    hint=_stage_hint(release_id, failed))
            upload_seconds = time.perf_counter() - started
            self._stage_data(bundle, plans)  # issue 14: data slots; nothing when there is no [database]
            self._switch(plans, action="stage", verify=False)
            self._start_staging_instances(release_id)  # issue 13: nothing when there is no [application]
            self._journal("stage", "done", releases={"staging": release_id, "previous_staging": previous}, reason=reason,
                          timings={"upload": upload_seconds, "total": time.perf_counter() - started})
        return _with_leftovers(FleetResult("stage", release_id, previous,
                                           tuple(HostResult(name, True, detail) for name, (ok, detail) in outcomes.items()),
                                           seconds={"upload": upload_seconds, "total": time.perf_counter() - started}), session)

    def _start_staging_instances(self, release_id: str) -> None:
        """Start the staged release's instance on every server and wait for its health (issue 13).

        The staging links have moved by then; a server where the instance does not come up is named, and
        the stage is journaled as failed: staging points at a release that is not running there.
        """
        if self.environment.application is None:
            return
        from releaser import instances

        started = self.each(lambda name: instances.start_staging_instance(self.hosts[name], self.environment,
                                                                          self.root(name), release_id))
        failed = _failures(started)
        if failed:
            self._journal("stage", "failed", releases={"staging": release_id}, detail=f"instance: {_summary(failed)}")
            raise PlanRefused(f"staging now points at {release_id}, but its instance did not start on {_summary(failed)}",
                              hint="look at the instance's log on that server, fix it, then stage again; live and backup "
                                   "were not touched")

    def _stage_data(self, bundle: Bundle, plans: Mapping[str, Plan]) -> None:
        """Load the release's data into the database's staging slot (issue 14); on failure undo the unpacking."""
        if self.environment.database is None:
            return
        from releaser import datastore  # psycopg only for environments with a database

        try:
            datastore.load_staging(self.environment, bundle)
        except ReleaserError as error:
            self._remove_release(bundle.release_id, [name for name, plan in plans.items() if plan.unpack])
            self._journal("stage", "failed", releases={"staging": bundle.release_id}, detail=f"database: {error.what}")
            raise

    def _remove_release(self, release_id: str, names: list[str]) -> None:
        """Remove a release this stage unpacked on the named servers (never one a slot points to)."""
        self.each(lambda name: self.hosts[name].run(remote.remove_release_argv(self.root(name), release_id)), names)

    def _upload_everywhere(self, bundle: Bundle, plans: Mapping[str, Plan]) -> dict[str, tuple[bool, str]]:
        release_id = bundle.release_id
        sums_sha = _sha256_text(sha256sums_text(bundle.manifest.files))
        self._stop.clear()  # a Ctrl-C that ended an earlier step of this fleet must not stop these uploads
        with tempfile.TemporaryDirectory(prefix="releaser-") as workdir:
            needs_upload = any(plan.unpack for plan in plans.values())
            upload = shipping.prepare_upload(bundle, Path(workdir)) if needs_upload else None  # a .tar.gz as it is

            def place(name: str) -> tuple[bool, str]:
                host, root = self.hosts[name], self.root(name)
                if not plans[name].unpack:
                    self.progress(name, f"checking {release_id} already on the server")
                    done = host.run(remote.check_release_argv(root, release_id, sums_sha))
                    return (done.ok, "already on the server, verified" if done.ok else done.reason())
                ok, detail = shipping.send(host, root, upload, stop=self._stop.is_set,
                                           progress=lambda message: self.progress(name, message))
                if not ok:
                    return False, detail
                hook = self._run_hook(name, "after_unpack", release_id, "staging")
                return (True, detail) if hook is None else (False, hook)

            outcomes = self.each(place)
        return {name: (o if isinstance(o, tuple) else (False, str(o).removeprefix(f"{name}: "))) for name, o in outcomes.items()}

    # ---- switching ----

    def go_live(self, *, reason: str | None = None, verify: bool = True, approve: Approve | None = None,
                before_commit: BeforeCommit | None = None, journal_extra: dict | None = None) -> FleetResult:
        """Make the staged release live on every server at once, or on none.

        `before_commit` runs between prepare and commit (a scheduled go-live waits there for the second);
        if it raises, the prepared links are removed and nothing was switched.
        """
        self.require_all_reachable("go-live")
        self._context = journal_extra or {}  # planned time etc. go on every event of this go-live, failures too
        try:
            with self.locked("go-live", prepare_for="go-live") as session:
                plans = plan_fleet_go_live(_states(session.reports, "go-live"))
                _ask(approve, "go-live", plans)
                result = self._switch(plans, action="go-live", verify=verify, before_commit=before_commit)
                self._journal("go-live", "done", releases={"live": result.release, "backup": result.previous}, reason=reason,
                              timings=dict(result.seconds or {}), extra={"renamed_at": _renames(result)})
        finally:
            self._context = {}
        return _with_leftovers(result, session)

    def plan_go_live(self) -> dict[str, Plan]:
        """Read every server and return the go-live plan, or refuse before anything changes."""
        return plan_fleet_go_live(self.read_states("go-live"))

    def read_manifest(self, release_id: str) -> Manifest:
        """Read a release's manifest.json from the first reachable server."""
        name = next(n for n in self.hosts if n not in self.unreachable)
        raw = self.hosts[name].read(self.root(name) / "releases" / release_id / MANIFEST)
        return Manifest.model_validate_json(raw)

    def rollback(self, *, reason: str | None = None, approve: Approve | None = None) -> FleetResult:
        """Put the backup release back live on every server; the failed release stays on disk."""
        self.require_all_reachable("rollback")
        with self.locked("rollback", prepare_for="rollback") as session:
            plans = plan_fleet_rollback(_states(session.reports, "rollback"))
            _ask(approve, "rollback", plans)
            result = self._switch(plans, action="rollback", verify=True, keep_unhealthy=True)
            self._journal("rollback", "done" if all(r.ok for r in result.results) else "unhealthy",
                          releases={"live": result.release, "rolled_back": result.previous}, reason=reason,
                          timings=dict(result.seconds or {}), extra={"renamed_at": _renames(result)})
        return _with_leftovers(result, session)

    def _switch(self, plans: Mapping[str, Plan], *, action: str, verify: bool, keep_unhealthy: bool = False,
                before_commit: Callable[[], None] | None = None, rehearsal: bool = False) -> FleetResult:
        """Move every participant of this switch through the coordinator; raise once the fleet is consistent.

        The participants are the slot links on every server whose plan changes one, and whatever other kinds
        the environment declares (releaser.participants). Returns the result when every participant moved;
        raises FleetReverted (nothing or everything put back), FleetMixed (someone may not be back) or
        HostUnreachable (a server was lost before anything moved).
        """
        slot = "staging" if action == "stage" else "live"
        changing = {name: plan for name, plan in plans.items() if plan.links}
        target = next(iter(plans.values())).after.slot(slot)
        # what was switched from: a server already on the target (a MIXED fleet converging) does not say
        previous = next(iter(changing.values()), next(iter(plans.values()))).before.slot(slot)
        early = self._session.early if self._session else {}  # what the lock's round trip prepared
        roots = {name: self.root(name) / ".releaser" / "rehearsal" if rehearsal else self.root(name) for name in self.hosts}
        context = SwitchContext(self.environment, self.hosts, roots, action, slot, changing, target, previous,
                                rehearsal=rehearsal, early=early)
        participants = participants_for(context)
        report = run_switch(participants, deadlines=self._deadlines(), verify=verify and slot == "live",
                            keep_unhealthy=keep_unhealthy, before_commit=before_commit,
                            on_phase=lambda phase: [self.progress(name, phase) for name in changing])
        if early and self._session:  # the links were prepared in the lock's round trip: that trip is the prepare
            for phase in ("prepare", "switch"):
                if phase in report.timings:  # a refused prepare has no switch time
                    report.timings[phase] += self._session.seconds
        if report.decision in (Decision.COMMITTED, Decision.UNHEALTHY):
            return _switch_result(action, target, previous, plans, participants, report)
        return self._raise_for(report, action=action, target=target, previous=previous, slot=slot, rehearsal=rehearsal)

    def _deadlines(self) -> Deadlines:
        d = self.environment.deadlines
        return Deadlines(prepare=d.prepare, commit=d.commit, verify=d.verify, revert=d.revert)

    def _raise_for(self, report: SwitchReport, *, action: str, target: str | None, previous: str | None, slot: str,
                   rehearsal: bool) -> NoReturn:
        """Journal a switch that did not commit and raise the one error that says where every server stands."""
        cause = _summary(report.cause)
        why = "interrupted (Ctrl-C)" if set(report.cause) == {INTERRUPTED} else f"failed on {cause}"
        back_on = previous or "no release"
        runbook = _runbook(action)
        if report.decision is Decision.REFUSED:
            lost = sorted(o.name for o in report.outcomes if o.state is State.LOST)
            leftovers = sorted(o.name for o in report.outcomes if o.state is State.ABORTED and o.detail)
            after = (f"; {', '.join(leftovers)} kept its temporary links (harmless; the next stage or prune removes them)"
                     if leftovers else "")
            if not rehearsal:
                self._journal(action, "refused", releases={slot: target}, detail=cause)
            if lost and len(lost) == len(report.cause):
                raise HostUnreachable(", ".join(lost), f"did not answer while preparing {action} ({cause}); nothing was "
                                      f"switched{after}", hint="see: invoke runbook server-failure")
            raise FleetReverted(f"{action} stopped before any switch: {cause}; nothing was switched{after}",
                                hint=f"fix that server, then run the same command again; see: invoke runbook {runbook}")
        if rehearsal and report.decision is Decision.REVERTED:
            raise FleetReverted(f"rehearsal of {target} {why}; the public site was not touched",
                                hint="fix the staged release and stage it as a new release id; see: invoke runbook go-live")
        if report.decision is Decision.REVERTED:
            self._journal(action, "reverted", releases={slot: previous, "attempted": target}, detail=why)
            raise FleetReverted(f"{action} {why}; every server is back on {back_on}",
                                hint=f"next: invoke runbook {runbook}")
        # MIXED: someone may not be back
        stuck, lost = report.stuck, report.lost
        back = report.back
        parts = []
        if stuck:
            parts.append(f"{', '.join(sorted(stuck))} could not be put back ({_summary(stuck)})")
        if lost:
            parts.append(f"{', '.join(lost)} did not answer, so {'it' if len(lost) == 1 else 'they'} may still serve "
                         f"{target or 'the new links'}")
        done = f"{', '.join(sorted(back))} {'is' if len(back) == 1 else 'are'} back on {back_on}; " if back else ""
        self._journal(action, "mixed", releases={slot: previous, "attempted": target},
                      detail=f"{why}; {'; '.join(parts)}")
        hint = "run: invoke status, then follow: invoke runbook rollback (section MIXED)"
        if lost:
            hint = f"keep {', '.join(lost)} away from the public (load balancer) and, once it answers, {hint}"
        raise FleetMixed(f"{action} {why}; {done}{' and '.join(parts)}; the fleet is MIXED", hint=hint)

    def rehearse(self) -> FleetResult:
        """Dress rehearsal of go-live: prepare, commit, verify and revert on a throwaway copy of the slot links.

        The copy lives in <root>/.releaser/rehearsal and shares releases/, so the public site is untouched;
        verification reads each staging URL, where the release that will go live is served. It is the same
        coordinator over the same participants, aimed at the copy. The durations are journaled so go-live
        can say how long a switch and a revert take.
        """
        self.require_all_reachable("rehearsal")
        with self.locked("rehearse") as session:
            states = _states(session.reports, "rehearsal")
            plans = plan_fleet_go_live(states)
            self.run_everywhere(lambda name: remote.rehearsal_argv(self.root(name), setup=True), "set up the rehearsal")
            try:
                try:
                    result = self._switch(plans, action="rehearsal", verify=True, rehearsal=True)
                except ReleaserError as error:
                    self._journal("rehearse", "failed", releases={"staging": fleet_release(states, "staging")}, detail=error.what)
                    raise
                moment = time.perf_counter()
                rehearsal_root = lambda name: self.root(name) / ".releaser" / "rehearsal"
                self.run_everywhere(lambda name: remote.restore_argv(rehearsal_root(name), plans[name].links), "revert the rehearsal")
                timings = {**(result.seconds or {}), "revert": time.perf_counter() - moment}
            finally:
                self.each(lambda name: self.hosts[name].run(remote.rehearsal_argv(self.root(name), setup=False)))
            self._journal("rehearse", "done", releases={"staging": result.release, "live": result.previous}, timings=timings)
        return FleetResult("rehearsal", result.release, result.previous, result.results, result.notes, timings, result.skew)

    def _each_reconnecting(self, work: Callable[[str], object], names) -> dict[str, object]:
        """each(), then once more on a new connection where the connection broke: the server may still be up.

        For steps that must reach every server even after a network blip (putting links back, freeing the
        lock), and that are safe to run twice.
        """
        return self.each(lambda name: once_more_on_a_new_connection(self.hosts[name], lambda: work(name)), names)

    def _run_hook(self, name: str, hook: str, release: str | None, slot: str) -> str | None:
        """Run a configured hook on one server; return None on success, else why it failed."""
        return run_hook(self.hosts[name], self.environment, hook, release=release, slot=slot, root=self.root(name))

    # ---- locking ----

    @contextmanager
    def locked(self, reason: str, *, prepare_for: str | None = None) -> Iterator["LockSession"]:
        """Hold the deploy lock on every server while the block runs, and free it afterwards, whatever happens.

        Yields the held lock with every server's report, read in the same round trip just after the lock was
        taken, so a plan made from it cannot be overtaken by another command. With `prepare_for` ("go-live",
        "rollback") that round trip also prepares each server's links for it; the links participant uses
        them only where they equal the plan. Journal events of the block travel with the unlock, in one round
        trip. Ctrl-C while the lock is being taken frees it everywhere (by this command's token) and is
        journaled; Ctrl-C while it is being freed is held until that has ended. After the block,
        `session.stuck` names the servers that kept the lock or missed the journal lines.
        """
        token = uuid.uuid4().hex
        doing = reason.split()[0]
        started = time.perf_counter()
        try:
            session = self._take_lock(reason, token=token, kind="command", minutes=30, prepare_for=prepare_for)
            session.seconds = time.perf_counter() - started
        except KeyboardInterrupt:
            with held_interrupts():
                session = LockSession(token, reason, taken=[name for name in self.hosts if name not in self.unreachable])
                session.lines.append(self._event_line(doing, "cancelled", detail="Ctrl-C while the lock was being taken"))
                self._finish(session)
            left = (f"; {', '.join(session.stuck)} did not answer and may still hold it: once back, run: invoke unlock "
                    "--reason TEXT") if session.stuck else ""
            raise Cancelled(f"{doing} cancelled while the lock was being taken (Ctrl-C); the lock was freed{left}, and "
                            "nothing was switched", hint=f"run: invoke {doing} again when ready") from None
        self._session = session
        failure: ReleaserError | None = None
        try:
            yield session
        except ReleaserError as error:
            failure = error
            raise
        finally:
            with held_interrupts():
                self._finish(session)
            if failure is not None and session.stuck:
                failure.hint = (failure.hint + "; " if failure.hint else "") + session.leftover_warning()

    def _finish(self, session: "LockSession") -> None:
        """Write the held journal lines and free this command's lock where it took it; note where that failed."""
        self._session = None
        lines = session.lines
        names = [name for name in self.hosts if name in session.taken or (lines and name not in self.unreachable)]
        outcomes = self._each_reconnecting(lambda name: self.hosts[name].run(
            remote.finish_argv(self.root(name), session.token if name in session.taken else "", lines)), names)
        session.stuck = _failures(outcomes)

    def take_lock(self, reason: str, *, token: str, kind: str, minutes: float) -> list[str]:
        """Take the lock on every server or on none; return the servers where this call took it.

        An expired lock is taken over. A manual lock held by the same person lets their own commands through.
        """
        return self._take_lock(reason, token=token, kind=kind, minutes=minutes).taken

    def _take_lock(self, reason: str, *, token: str, kind: str, minutes: float, prepare_for: str | None = None,
                   ) -> "LockSession":
        info = new_lock(self.actor, reason, self.clock.now(), minutes=minutes, token=token, kind=kind)
        lock_and_read = lambda name: self.hosts[name].run(
            remote.lock_argv(self.root(name), info.to_json(), prepare_for=prepare_for))
        answers = {name: _lock_answer(name, o) for name, o in self.each(lock_and_read).items()}
        expired = [name for name, (said, holder, _, _) in answers.items()
                   if said == "held" and holder and is_expired(holder, self.clock.now())]
        if expired:
            self.each(lambda name: self.hosts[name].run(remote.unlock_argv(self.root(name), answers[name][1].token)), expired)
            answers.update({name: _lock_answer(name, o) for name, o in self.each(lock_and_read, expired).items()})
        taken = [name for name, (said, _, _, _) in answers.items() if said == "taken"]
        holders = {name: holder for name, (said, holder, _, _) in answers.items() if said == "held"}
        for name, holder in list(holders.items()):
            if holder and holder.owner == self.actor and holder.kind == "manual" and kind == "command":
                del holders[name]
        errors = {name: report.error for name, (said, _, report, _) in answers.items() if said == "error"}
        if holders or errors:  # give back what was taken, with any links the lock's trip prepared early
            self.each(lambda name: self.hosts[name].run(remote.finish_argv(self.root(name), token, [])), taken)
            if holders:
                name, holder = sorted(holders.items())[0]
                servers = ", ".join(sorted(holders))
                raise LockHeld(f"{describe_lock(holder)} on {servers}", hint="wait, or run: invoke unlock --reason TEXT")
            name, error = sorted(errors.items())[0]
            raise HostUnreachable(name, f"cannot take the lock: {error}",
                                  hint="nothing was changed; check the server, then run the command again")
        return LockSession(token, reason, taken, {name: report for name, (_, _, report, _) in answers.items()},
                           {name: early for name, (_, _, _, early) in answers.items() if early is not None})

    def unlock(self, *, reason: str) -> list[str]:
        """Remove the lock on every reachable server whoever holds it; the reason goes in the journal."""
        self.each(lambda name: self.hosts[name].run(remote.unlock_argv(self.root(name), None)))
        self._journal("unlock", "done", reason=reason)
        return [name for name in self.hosts if name not in self.unreachable]

    # ---- notices ----

    def publish_notice(self, message: str, *, clear: bool = False) -> None:
        """Show (or with clear=True remove) a notice to the public on every server's live site.

        Every server or an error naming the ones that failed; the text reaches servers as an argument,
        never through a shell, and the web server shows it escaped.
        """
        self.require_all_reachable("notice")
        path = lambda name: self.root(name) / self.environment.notice_file
        if clear:
            self.run_everywhere(lambda name: ["rm", "-f", str(path(name))], "remove the notice")
        else:
            self.run_everywhere(lambda name: remote.write_file_argv(path(name), message), "publish the notice")
        self._journal("notice", "cleared" if clear else "done", detail=message if not clear else "")

    # ---- pruning ----

    def prune(self, *, keep: int | None = None, approve: Approve | None = None) -> dict[str, tuple[str, ...]]:
        """Remove old releases on every server, keeping `keep` besides those a slot points to."""
        keep = self.environment.keep_releases if keep is None else keep
        self.require_all_reachable("prune")
        with self.locked("prune") as session:
            plans = {report.server: plan_prune(report.state, keep, report.oldest_first)
                     for report in _readable(session.reports.values(), "prune")}
            stopped = self._stop_retired_instances()  # issue 13: never one a slot names
            if all(plan.is_noop() for plan in plans.values()):
                dropped = self._prune_data(session)
                if stopped or dropped:
                    self._journal("prune", "done", extra={"stopped": stopped, "dropped_schemas": list(dropped)})
                return {name: () for name in plans}
            _ask(approve, "prune", plans)

            def remove(name: str) -> tuple[str, ...]:
                for release in plans[name].removals:
                    done = self.hosts[name].run(remote.remove_release_argv(self.root(name), release))
                    if not done.ok:
                        raise HostUnreachable(name, f"cannot remove {release}: {done.reason()}")
                return plans[name].removals
            outcomes = self.each(remove)
            failures = {name: str(o) for name, o in outcomes.items() if isinstance(o, Exception)}
            dropped = self._prune_data(session, removed=[r for o in outcomes.values() if isinstance(o, tuple) for r in o])
            self._journal("prune", "failed" if failures else "done", detail=_summary(failures) if failures else "",
                          extra={"removed": {n: list(r) for n, r in outcomes.items() if isinstance(r, tuple)},
                                 "stopped": stopped, "dropped_schemas": list(dropped)})
        if failures:
            raise ReleaserError(f"prune failed on {_summary(failures)}", hint="check the server's disk and permissions")
        return outcomes

    def _stop_retired_instances(self) -> dict[str, list[str]]:
        """Stop every application instance no slot names, on every server (issue 13); per server, the releases stopped."""
        if self.environment.application is None:
            return {}
        from releaser import instances

        outcomes = self.each(lambda name: instances.stop_retired_instances(self.hosts[name], self.environment, self.root(name)))
        failed = _failures(outcomes)
        if failed:
            raise ReleaserError(f"prune could not stop retired instances on {_summary(failed)}",
                                hint="look at that server's instances (invoke status), then prune again")
        return {name: [i.release for i in stopped] for name, stopped in outcomes.items() if stopped}

    def _prune_data(self, session: "LockSession", removed: list[str] = ()) -> tuple[str, ...]:
        """Drop retired data schemas (issue 14), keeping every release still on some server's disk."""
        if self.environment.database is None:
            return ()
        from releaser import datastore

        on_disk = {release for report in session.reports.values() if report.state for release in report.state.on_disk}
        return datastore.prune_data(self.environment, keep_ids=sorted(on_disk - set(removed)))

    # ---- journal ----

    def _journal(self, action: str, outcome: str, **fields) -> None:
        """Append one event to every reachable server's journal and to the local one; never raises for a server."""
        event = self._event(action, outcome, **fields)
        line = event_line(event)
        if self._session is not None:
            self._session.lines.append(line)  # a lock is held: the line reaches the servers with the unlock
        else:
            reachable = [name for name in self.hosts if name not in self.unreachable]
            self.each(lambda name: self.hosts[name].run(remote.append_journal_argv(self.root(name), line)), reachable)
        if self.journal_path is not None:
            append_local(self.journal_path, event)
        if self.notifier is not None:
            self.notifier.send(event)  # in the background: a channel that is down never delays a switch

    def _event(self, action: str, outcome: str, **fields) -> dict:
        fields["extra"] = {**self._context, **(fields.get("extra") or {})}
        return make_event(action, event_id=uuid.uuid4().hex, environment=self.environment.name, actor=self.actor,
                          now=self.clock.now(), outcome=outcome, servers=sorted(self.hosts), **fields)

    def _event_line(self, action: str, outcome: str, **fields) -> str:
        """One journal line, for a step that writes it itself (with the unlock); also kept in the local journal."""
        event = self._event(action, outcome, **fields)
        if self.journal_path is not None:
            append_local(self.journal_path, event)
        return event_line(event)

    def finish_notifications(self) -> None:
        """Wait briefly for this command's notifications and journal every channel that failed."""
        if self.notifier is None:
            return
        self.deliveries = self.notifier.wait()
        for delivery in self.deliveries:
            if not delivery.ok:
                self._journal("notify", "failed", detail=f"{delivery.channel} ({delivery.event_name}): {delivery.detail}")

    def record(self, action: str, outcome: str, **fields) -> None:
        """Journal an action that happened outside the fleet's own commands (a check run, a notice, an override)."""
        self._journal(action, outcome, **fields)

    def read_history(self) -> list[dict]:
        """Merge every reachable server's journal and the local one into one timeline."""
        outcomes = self.each(lambda name: self.hosts[name].run(remote.read_journal_argv(self.root(name))),
                              [n for n in self.hosts if n not in self.unreachable])
        by_server = {name: parse_lines(o.stdout) for name, o in outcomes.items() if isinstance(o, Completed)}
        return merge_history(by_server, read_local(self.journal_path) if self.journal_path else [])

    # ---- plumbing ----

    def run_everywhere(self, argv_for: Callable[[str], list[str]], doing: str) -> dict[str, Completed]:
        """Run one command on every server in parallel; raise naming the servers where it failed."""
        outcomes = self.each(lambda name: self.hosts[name].run(argv_for(name)))
        failed = _failures(outcomes)
        if failed:
            raise ReleaserError(f"could not {doing} on {_summary(failed)}", hint="see: invoke runbook server-failure")
        return outcomes

    def each(self, work: Callable[[str], object], names=None) -> dict[str, object]:
        """Run work(name) for every server (or `names`) in parallel; a ReleaserError becomes that server's value."""
        names = list(self.hosts) if names is None else list(names)

        def guarded(name: str) -> object:
            try:
                return work(name)
            except ReleaserError as error:
                return error

        if len(names) == 1:
            return {names[0]: guarded(names[0])}
        futures = {name: self._pool.submit(guarded, name) for name in names}
        try:
            return {name: future.result() for name, future in futures.items()}
        except KeyboardInterrupt:
            self._stop_at_the_next_step(list(futures.values()))
            raise

    def _stop_at_the_next_step(self, futures: list[Future]) -> None:
        """After Ctrl-C, let every server's current step end (uploads stop at their next chunk) before going on.

        Leaving while they run would leave servers working after the command said it stopped, and the
        cleanup that follows could not know what they did.
        """
        self._stop.set()
        print("\nreleaser: Ctrl-C noted; stopping every server after its current step (press Ctrl-C again to stop "
              "waiting for a server that does not answer)", file=sys.stderr, flush=True)
        try:
            wait(futures)  # every step has a deadline (Host.run's timeout), so this ends
        except KeyboardInterrupt:  # pressed again: a server is silent; go on to the cleanup, which is bounded too
            print("\nreleaser: no longer waiting for servers still busy", file=sys.stderr, flush=True)


def _ask(approve: Approve | None, action: str, plans: Mapping[str, Plan]) -> None:
    """Let the caller see the plan and say no; a no changes nothing."""
    if approve is not None and not approve(action, plans):
        raise Cancelled(f"{action} cancelled; nothing was changed", hint="pass --yes to go ahead without asking")


def _parse_status(name: str, done: Completed) -> ServerReport:
    if not done.ok:
        return ServerReport(name, None, error=f"cannot read its slots: {done.reason()}")
    if done.stdout.strip() == "noroot":
        return ServerReport(name, SlotState(None, None, None), notice=False)
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


def _lock_answer(name: str, outcome: object) -> tuple[str, LockInfo | None, ServerReport, tuple[str, ...] | None]:
    """Split a lock answer: "taken" | "held" | "error", the holder when held, the report, the links prepared early."""
    if isinstance(outcome, Exception):
        return "error", None, ServerReport(name, None, error=str(outcome).removeprefix(f"{name}: ")), None
    first, _, rest = outcome.stdout.partition("\n")
    said = first.split(" ", 1)[0]
    if not outcome.ok or said not in ("taken", "held"):
        return "error", None, ServerReport(name, None, error=outcome.reason()), None
    holder = parse_lock(first[len("held"):].strip()) if said == "held" else None
    early = [line.split()[1:] for line in rest.splitlines() if line.startswith("prepared ")]
    prepared = EarlyPrepare(tuple(early[-1])) if early else None
    return (said, holder, _parse_status(name, Completed(outcome.exit_code, rest, outcome.stderr)), prepared)


def _readable(reports, doing: str) -> list[ServerReport]:
    """The reports, or a refusal of `doing` naming the first server whose slots could not be read."""
    reports = list(reports)
    broken = [r for r in reports if r.state is None]
    if broken:
        raise HostUnreachable(broken[0].server, broken[0].error or "cannot read its slots",
                              hint=f"nothing was changed, {doing} not started; see: invoke runbook server-failure")
    return reports


def _states(reports: Mapping[str, ServerReport], doing: str) -> dict[str, SlotState]:
    """Every server's slots from reports read under the lock, or a refusal of `doing`."""
    return {report.server: report.state for report in _readable(reports.values(), doing)}


def _with_health(report: ServerReport, health: Probe) -> ServerReport:
    return ServerReport(report.server, report.state, report.oldest_first, report.free_bytes, report.lock,
                        report.locked, report.notice, health, report.error)


def _failures(outcomes: Mapping[str, object]) -> dict[str, str]:
    failed = {}
    for name, outcome in outcomes.items():
        if isinstance(outcome, Exception):
            failed[name] = str(outcome).removeprefix(f"{name}: ")
        elif isinstance(outcome, Completed) and not outcome.ok:
            failed[name] = outcome.reason()
        elif isinstance(outcome, HostResult) and not outcome.ok:
            failed[name] = outcome.detail
    return failed


def _summary(failed: Mapping[str, str]) -> str:
    return "; ".join(f"{name} ({detail})" for name, detail in sorted(failed.items()))


def _renames(result: FleetResult) -> dict[str, float]:
    return {r.server: r.renamed_at for r in result.results if r.renamed_at}


def _stage_hint(release_id: str, failed: Mapping[str, str]) -> str:
    """What to do after a failed stage: running it again mends a full disk, not a damaged copy already there."""
    damaged = sorted(name for name, detail in failed.items() if _DAMAGED.search(detail))
    if damaged:
        return (f"the {release_id} already on {', '.join(damaged)} is not this bundle's files, and a release id never "
                f"changes its files: build the bundle as a new release id and stage that (invoke build --help)")
    return "fix that server (disk, permissions) and run the same command again"


_DAMAGED = re.compile(r"fails its checksums on this server|has different files from the bundle")


def _runbook(action: str) -> str:
    return {"stage": "go-live", "go-live": "go-live", "rollback": "rollback", "rehearsal": "go-live"}.get(action, "rollback")


def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
