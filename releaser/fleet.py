"""Every server at once: read state, stage a bundle, switch slots all-or-nothing, lock, prune, journal.

The switch is two-phase. Prepare creates the new links under temporary names on every server; only when
every server prepared does commit rename them over the slots. If a commit or the HTTP verification fails
anywhere, every server is put back on the release it had, and only then is FleetReverted raised (FleetMixed
when a server could not be put back or did not answer, as it may have switched). Each server's outcome
is kept as a value (HostResult) until the fleet has decided.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from releaser import remote
from releaser.bundle import MANIFEST, RELEASE_ID_PATTERN, Bundle, Manifest, pack_bundle, sha256sums_text
from releaser.clock import Clock
from releaser.config import Environment, Server
from releaser.errors import Cancelled, FleetMixed, FleetReverted, HostUnreachable, LockHeld, ReleaserError
from releaser.journal import append_local, event_line, make_event, merge_history, parse_lines, read_local
from releaser.locks import LockInfo, describe_lock, is_expired, new_lock, parse_lock
from releaser.slots import Plan, SlotState, fleet_release, plan_fleet_go_live, plan_fleet_rollback, plan_fleet_stage, plan_prune
from releaser.transport import Completed, Host, make_hosts
from releaser.web import Probe, probe

Progress = Callable[[str, str], None]
Approve = Callable[[str, Mapping[str, Plan]], bool]
BeforeCommit = Callable[["PreparedSwitch"], None]


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


@dataclass
class PreparedSwitch:
    """A switch whose new links wait under temporary names on every server, ready to be renamed over the slots."""

    action: str
    slot: str
    plans: Mapping[str, Plan]
    changing: Mapping[str, tuple]
    target: str | None
    previous: str | None
    started: float
    timings: dict[str, float]


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
        self._journal_lines: list[str] | None = None  # while a lock is held: journal lines waiting for the unlock
        self._early: tuple[dict[str, tuple[str, ...]], float] = ({}, 0.0)  # links the lock's round trip prepared
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
        self._pool.shutdown(wait=True)

    def require_all_reachable(self, doing: str) -> None:
        """Refuse to start `doing` unless every server answered; nothing has been changed yet."""
        if self.unreachable:
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
                report = _with_health(report, self._probe_live(name))
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
        with self.locked(f"stage {release_id}") as reports:
            states = _states(reports, f"staging {release_id}")
            plans = plan_fleet_stage(states, release_id)
            previous = fleet_release(states, "staging")
            try:
                outcomes = self._upload_everywhere(bundle, plans)
            except KeyboardInterrupt:
                self._stop.clear()  # every server's step has ended: now undo them
                self._remove_release(release_id, [name for name, plan in plans.items() if plan.unpack])
                self._journal("stage", "interrupted", releases={"staging": release_id},
                              detail="Ctrl-C while staging; anything it had unpacked was removed")
                raise
            failed = {name: detail for name, (ok, detail) in outcomes.items() if not ok}
            if failed:
                self._remove_release(release_id, [name for name, plan in plans.items() if plan.unpack and outcomes[name][0]])
                self._journal("stage", "failed", releases={"staging": release_id}, detail=_summary(failed))
                raise FleetReverted(f"staging {release_id} failed on {_summary(failed)}; no server's staging changed",
                                    hint=_stage_hint(release_id, failed))
            upload_seconds = time.perf_counter() - started
            self._switch(plans, action="stage", verify=False)
            self._journal("stage", "done", releases={"staging": release_id, "previous_staging": previous}, reason=reason,
                          timings={"upload": upload_seconds, "total": time.perf_counter() - started})
        return FleetResult("stage", release_id, previous,
                           tuple(HostResult(name, True, detail) for name, (ok, detail) in outcomes.items()),
                           seconds={"upload": upload_seconds, "total": time.perf_counter() - started})

    def _remove_release(self, release_id: str, names: list[str]) -> None:
        """Remove a release this stage unpacked on the named servers (never one a slot points to)."""
        self.each(lambda name: self.hosts[name].run(remote.remove_release_argv(self.root(name), release_id)), names)

    def _upload_everywhere(self, bundle: Bundle, plans: Mapping[str, Plan]) -> dict[str, tuple[bool, str]]:
        release_id = bundle.release_id
        sums_sha = _sha256_text(sha256sums_text(bundle.manifest.files))
        self._stop.clear()  # a Ctrl-C that ended an earlier step of this fleet must not stop these uploads
        with tempfile.TemporaryDirectory(prefix="releaser-") as workdir:
            needs_upload = any(plan.unpack for plan in plans.values())
            for name in plans if needs_upload else ():
                self.progress(name, f"packing {release_id} here, once for every server")
            archive, archive_sha = pack_bundle(bundle, Path(workdir)) if needs_upload else (None, None)

            def place(name: str) -> tuple[bool, str]:
                host, root = self.hosts[name], self.root(name)
                if not plans[name].unpack:
                    self.progress(name, f"checking {release_id} already on the server")
                    done = host.run(remote.check_release_argv(root, release_id, sums_sha))
                    return (done.ok, "already on the server, verified" if done.ok else done.reason())
                self.progress(name, f"uploading {release_id}")
                made = host.run(["mkdir", "-p", str(root / ".releaser"), str(root / "releases")])
                if not made.ok:
                    return False, made.reason()
                target = root / ".releaser" / f"upload-{release_id}-{uuid.uuid4().hex[:8]}.tar.gz"
                try:
                    host.put(archive, target, stop=self._stop.is_set)
                except (HostUnreachable, Cancelled):
                    _remove_quietly(host, target)  # a part-written archive must not keep the disk full
                    raise
                if self._stop.is_set():
                    _remove_quietly(host, target)
                    return False, "stopped by Ctrl-C before unpacking"
                self.progress(name, f"verifying and unpacking {release_id}")
                done = host.run(remote.unpack_argv(root, release_id, target, archive_sha))
                if not done.ok:
                    return False, done.reason()
                hook = self._run_hook(name, "after_unpack", release_id, "staging")
                return (True, "uploaded, verified, unpacked") if hook is None else (False, hook)

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
            with self.locked("go-live", prepare_for="go-live") as reports:
                plans = plan_fleet_go_live(_states(reports, "go-live"))
                _ask(approve, "go-live", plans)
                result = self._switch(plans, action="go-live", verify=verify, before_commit=before_commit)
                self._journal("go-live", "done", releases={"live": result.release, "backup": result.previous}, reason=reason,
                              timings=dict(result.seconds or {}), extra={"renamed_at": _renames(result)})
        finally:
            self._context = {}
        return result

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
        with self.locked("rollback", prepare_for="rollback") as reports:
            plans = plan_fleet_rollback(_states(reports, "rollback"))
            _ask(approve, "rollback", plans)
            result = self._switch(plans, action="rollback", verify=True, revert_on_failed_verify=False)
            self._journal("rollback", "done" if all(r.ok for r in result.results) else "unhealthy",
                          releases={"live": result.release, "rolled_back": result.previous}, reason=reason,
                          timings=dict(result.seconds or {}), extra={"renamed_at": _renames(result)})
        return result

    def _switch(self, plans: Mapping[str, Plan], *, action: str, verify: bool,
                revert_on_failed_verify: bool = True, before_commit: BeforeCommit | None = None) -> FleetResult:
        """Prepare on every server, then commit on every server, then verify; revert everywhere on any failure."""
        prepared = self.prepare_switch(plans, action=action)
        if before_commit is not None:
            try:
                before_commit(prepared)
            except BaseException:
                self.abort_switch(prepared)
                raise
        return self.commit_switch(prepared, verify=verify, revert_on_failed_verify=revert_on_failed_verify)

    def prepare_switch(self, plans: Mapping[str, Plan], *, action: str) -> "PreparedSwitch":
        """Phase one: on every server, check the target release and make the new links under temporary names.

        Nothing the public sees changes. If any server fails, the temporary links are removed everywhere.
        """
        slot = "staging" if action == "stage" else "live"
        prepared = PreparedSwitch(
            action=action, slot=slot, plans=plans,
            changing={name: plan.links for name, plan in plans.items() if plan.links},
            target=next(iter(plans.values())).after.slot(slot),
            # what was switched from: a server already on the target (a MIXED fleet converging) does not say
            previous=next((p for p in plans.values() if p.links), next(iter(plans.values()))).before.slot(slot),
            started=time.perf_counter(), timings={},
        )
        (early, seconds), self._early = self._early, ({}, 0.0)
        if early and all(early.get(name) == remote.prepared_pairs(links) for name, links in prepared.changing.items()):
            prepared.timings["prepare"] = seconds  # done in the lock's round trip, exactly as planned
            return prepared
        outcomes = self.each(lambda name: self.hosts[name].run(remote.prepare_argv(self.root(name), prepared.changing[name])),
                             prepared.changing)
        failed = _failures(outcomes)
        prepared.timings["prepare"] = time.perf_counter() - prepared.started
        if failed:
            self.abort_switch(prepared)
            self._journal(action, "refused", releases={slot: prepared.target}, detail=_summary(failed))
            raise FleetReverted(f"{action} stopped before any switch: {_summary(failed)}; nothing was switched",
                                hint=f"fix that server, then run the same command again; see: invoke runbook {_runbook(action)}")
        return prepared

    def abort_switch(self, prepared: "PreparedSwitch") -> None:
        """Remove a prepared switch's temporary links on every server; no slot was touched."""
        self.each(lambda name: self.hosts[name].run(remote.abort_argv(self.root(name))), prepared.changing)

    def commit_switch(self, prepared: "PreparedSwitch", *, verify: bool, revert_on_failed_verify: bool = True) -> FleetResult:
        """Phase two: rename the prepared links over the slots everywhere, verify, and revert everywhere on failure.

        Ctrl-C here is held until every server has committed or been reverted.
        """
        action, slot, changing, plans = prepared.action, prepared.slot, prepared.changing, prepared.plans
        timings = prepared.timings
        with _interrupts_deferred() as interrupted:
            commit_started = moment = time.perf_counter()
            committed = self.each(lambda name: self._commit(name, changing[name], prepared.target, slot), changing)
            timings["commit"] = time.perf_counter() - moment
            failed = _failures(committed)
            probes: dict[str, Probe] = {}
            if not failed and verify and slot == "live":
                moment = time.perf_counter()
                probes = self.each(self._probe_live, list(plans))
                timings["verify"] = time.perf_counter() - moment
                unhealthy = {name: p.detail for name, p in probes.items() if isinstance(p, Probe) and not p.ok}
                if unhealthy and revert_on_failed_verify:
                    failed.update(unhealthy)
            if failed or interrupted():
                why = f"failed on {_summary(failed)}" if failed else "interrupted (Ctrl-C)"
                self._revert(changing, action=action, why=why, previous=prepared.previous, target=prepared.target, slot=slot)
        timings["switch"] = timings["prepare"] + time.perf_counter() - commit_started  # the wait before commit is not switching

        renames = [o.renamed_at for o in committed.values() if isinstance(o, HostResult) and o.renamed_at]
        results = tuple(
            HostResult(name, (not isinstance(probes.get(name), Probe)) or probes[name].ok,
                       probes[name].detail if isinstance(probes.get(name), Probe) else "switched",
                       committed[name].renamed_at if isinstance(committed.get(name), HostResult) else None)
            for name in plans
        )
        notes = tuple(note for plan in plans.values() for note in plan.notes)
        return FleetResult(action, prepared.target, prepared.previous, results, tuple(dict.fromkeys(notes)), timings,
                           max(renames) - min(renames) if len(renames) > 1 else (0.0 if renames else None))

    def rehearse(self) -> FleetResult:
        """Dress rehearsal of go-live: prepare, commit, verify and revert on a throwaway copy of the slot links.

        The copy lives in <root>/.releaser/rehearsal and shares releases/, so the public site is untouched;
        verification reads each staging URL, where the release that will go live is served. The durations
        are journaled so go-live can say how long a switch and a revert take.
        """
        self.require_all_reachable("rehearsal")
        view = _RehearsalView(self)
        with self.locked("rehearse") as reports:
            states = _states(reports, "rehearsal")
            plans = plan_fleet_go_live(states)
            self.run_everywhere(lambda name: remote.rehearsal_argv(self.root(name), setup=True), "set up the rehearsal")
            try:
                try:
                    result = view.commit_switch(view.prepare_switch(plans, action="rehearsal"), verify=True)
                except ReleaserError as error:
                    self._journal("rehearse", "failed", releases={"staging": fleet_release(states, "staging")}, detail=error.what)
                    raise
                moment = time.perf_counter()
                view.run_everywhere(lambda name: remote.restore_argv(view.root(name), plans[name].links), "revert the rehearsal")
                timings = {**(result.seconds or {}), "revert": time.perf_counter() - moment}
            finally:
                self.each(lambda name: self.hosts[name].run(remote.rehearsal_argv(self.root(name), setup=False)))
            self._journal("rehearse", "done", releases={"staging": result.release, "live": result.previous}, timings=timings)
        return FleetResult("rehearsal", result.release, result.previous, result.results, result.notes, timings, result.skew)

    def _commit(self, name: str, changes, release: str | None, slot: str) -> HostResult:
        done = self.hosts[name].run(remote.commit_argv(self.root(name), changes))
        if not done.ok:
            return HostResult(name, False, f"commit failed: {done.reason()}")
        renamed_at = float(done.stdout.split()[0]) if done.stdout.strip() else None
        hook = self._run_hook(name, "after_switch", release, slot)
        if hook is not None:
            return HostResult(name, False, hook, renamed_at)
        return HostResult(name, True, "switched", renamed_at)

    def _revert(self, changing: Mapping[str, tuple], *, action: str, why: str, previous: str | None, target: str | None,
                slot: str) -> None:
        """Put every server back on its old links, then raise FleetReverted, or FleetMixed if any server may not be back.

        A server that does not answer the revert may have renamed before it went away: what it serves is unknown,
        so the fleet is reported MIXED rather than back, and the hint says to keep it from the public.
        """
        restored = self._each_reconnecting(
            lambda name: self.hosts[name].run(remote.restore_argv(self.root(name), changing[name])), changing)
        back = [n for n, o in restored.items() if isinstance(o, Completed) and o.ok]
        for name in back:
            self._run_hook(name, "after_switch", previous, slot)
        lost = sorted(n for n, o in restored.items() if isinstance(o, HostUnreachable))
        stuck = {n: o.reason() for n, o in restored.items() if isinstance(o, Completed) and not o.ok}
        back_on = previous or "no release"
        if action == "rehearsal":
            raise FleetReverted(f"rehearsal of {target} {why}; the public site was not touched",
                                hint="fix the staged release and stage it as a new release id; see: invoke runbook go-live")
        if stuck or lost:
            raise self._mixed(action, why, back=back, back_on=back_on, stuck=stuck, lost=lost, previous=previous,
                              target=target, slot=slot)
        self._journal(action, "reverted", releases={slot: previous, "attempted": target}, detail=why)
        raise FleetReverted(
            f"{action} {why}; every server is back on {back_on}",
            hint=f"next: invoke runbook {_runbook(action)}",
        )

    def _each_reconnecting(self, work: Callable[[str], object], names) -> dict[str, object]:
        """each(), then once more on a new connection where the connection broke: the server may still be up.

        For steps that must reach every server even after a network blip (putting links back, freeing the
        lock), and that are safe to run twice.
        """
        outcomes = self.each(work, names)
        dropped = [name for name, outcome in outcomes.items() if isinstance(outcome, HostUnreachable)]
        if dropped:
            outcomes.update(self.each(lambda name: self._reconnect(name) or work(name), dropped))
        return outcomes

    def _reconnect(self, name: str) -> None:
        """Open a new connection to a server whose connection broke (HostUnreachable if it is really gone)."""
        reconnect = getattr(self.hosts[name], "reconnect", None)
        if reconnect is not None:
            reconnect()

    def _mixed(self, action: str, why: str, *, back: list[str], back_on: str, stuck: Mapping[str, str], lost: list[str],
               previous: str | None, target: str | None, slot: str) -> FleetMixed:
        """Journal and word a revert that could not bring every server back: which are back, which not, and why."""
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
        return FleetMixed(f"{action} {why}; {done}{' and '.join(parts)}; the fleet is MIXED", hint=hint)

    def _probe_live(self, name: str) -> Probe:
        server: Server = self.environment.server(name)
        health = self.environment.health
        return probe(server.live_url + health.path, status=health.status, contains=health.contains,
                     timeout=health.timeout, attempts=health.attempts)

    def _run_hook(self, name: str, hook: str, release: str | None, slot: str) -> str | None:
        """Run a configured hook on one server; return None on success, else why it failed."""
        command = getattr(self.environment.hooks, hook)
        if not command:
            return None
        done = self.hosts[name].run(["sh", "-c", command], env={
            "RELEASER_RELEASE_ID": release or "", "RELEASER_SLOT": slot, "RELEASER_ROOT": str(self.root(name)),
        })
        if done.ok:
            return None
        output = (done.stderr or done.stdout).strip().splitlines()
        return f"{hook.replace('_', '-')} hook exited {done.exit_code}: {' | '.join(output[-3:]) or 'no output'}"

    # ---- locking ----

    @contextmanager
    def locked(self, reason: str, *, prepare_for: str | None = None) -> Iterator[dict[str, ServerReport]]:
        """Hold the deploy lock on every server while the block runs, and free it afterwards, even on Ctrl-C.

        Yields every server's report, read in the same round trip just after the lock was taken, so a plan
        made from it cannot be overtaken by another command. With `prepare_for` ("go-live", "rollback")
        that round trip also prepares each server's links for it; prepare_switch uses them only where they
        equal the plan. Journal events of the block travel with the unlock, in one round trip.
        """
        token = uuid.uuid4().hex
        started = time.perf_counter()
        taken, reports, early = self._take_lock(reason, token=token, kind="command", minutes=30, prepare_for=prepare_for)
        self._early = (early, time.perf_counter() - started)
        self._journal_lines = []
        try:
            yield reports
        except ReleaserError as error:
            stuck = self._free_lock(token, taken)
            if stuck:
                error.hint = (error.hint + "; " if error.hint else "") + (
                    f"{', '.join(stuck)} still {'holds' if len(stuck) == 1 else 'hold'} this command's lock: "
                    "once back, run: invoke unlock --reason TEXT")
            raise
        except BaseException:
            self._free_lock(token, taken)
            raise
        else:
            self._free_lock(token, taken)

    def _free_lock(self, token: str, taken: list[str]) -> list[str]:
        """Write the held journal lines and free this command's lock where it took it; return where freeing failed."""
        lines, self._journal_lines = self._journal_lines or [], None
        names = [name for name in self.hosts if name in taken or (lines and name not in self.unreachable)]
        outcomes = self._each_reconnecting(lambda name: self.hosts[name].run(
            remote.finish_argv(self.root(name), token if name in taken else "", lines)), names)
        return sorted(name for name in _failures(outcomes) if name in taken)

    def take_lock(self, reason: str, *, token: str, kind: str, minutes: float) -> list[str]:
        """Take the lock on every server or on none; return the servers where this call took it.

        An expired lock is taken over. A manual lock held by the same person lets their own commands through.
        """
        return self._take_lock(reason, token=token, kind=kind, minutes=minutes)[0]

    def _take_lock(self, reason: str, *, token: str, kind: str, minutes: float, prepare_for: str | None = None,
                   ) -> tuple[list[str], dict[str, ServerReport], dict[str, tuple[str, ...]]]:
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
        return (taken, {name: report for name, (_, _, report, _) in answers.items()},
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
        with self.locked("prune") as reports:
            plans = {report.server: plan_prune(report.state, keep, report.oldest_first) for report in _readable(reports.values(), "prune")}
            if all(plan.is_noop() for plan in plans.values()):
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
            self._journal("prune", "failed" if failures else "done", detail=_summary(failures) if failures else "",
                          extra={"removed": {n: list(r) for n, r in outcomes.items() if isinstance(r, tuple)}})
        if failures:
            raise ReleaserError(f"prune failed on {_summary(failures)}", hint="check the server's disk and permissions")
        return outcomes

    # ---- journal ----

    def _journal(self, action: str, outcome: str, **fields) -> None:
        """Append one event to every reachable server's journal and to the local one; never raises for a server."""
        fields["extra"] = {**getattr(self, "_context", {}), **(fields.get("extra") or {})}
        event = make_event(action, event_id=uuid.uuid4().hex, environment=self.environment.name, actor=self.actor,
                           now=self.clock.now(), outcome=outcome, servers=sorted(self.hosts), **fields)
        line = event_line(event)
        if self._journal_lines is not None:
            self._journal_lines.append(line)  # a lock is held: the line reaches the servers with the unlock
        else:
            reachable = [name for name in self.hosts if name not in self.unreachable]
            self.each(lambda name: self.hosts[name].run(remote.append_journal_argv(self.root(name), line)), reachable)
        if self.journal_path is not None:
            append_local(self.journal_path, event)
        if self.notifier is not None:
            self.notifier.send(event)  # in the background: a channel that is down never delays a switch

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
        print("\nreleaser: Ctrl-C noted; stopping every server after its current step", file=sys.stderr, flush=True)
        while True:
            try:
                wait(futures)
                return
            except KeyboardInterrupt:  # pressed again: the servers still have to finish that step
                continue


class _RehearsalView(Fleet):
    """The same servers and connections, with every app root moved to .releaser/rehearsal and no side effects."""

    def __init__(self, fleet: Fleet) -> None:  # shares the fleet's hosts and pool; opens nothing
        self.__dict__.update(fleet.__dict__)
        self.journal_path = None

    def root(self, name: str) -> PurePosixPath:
        """The throwaway root of the rehearsal on the named server."""
        return super().root(name) / ".releaser" / "rehearsal"

    def _probe_live(self, name: str) -> Probe:
        server = self.environment.server(name)
        health = self.environment.health
        access = self.environment.staging_access
        headers = access.headers(os.environ) if access else {}  # staging is embargoed: it needs the credential
        return probe(server.staging_url + health.path, status=health.status, contains=health.contains,
                     timeout=health.timeout, attempts=health.attempts, headers=headers)

    def _run_hook(self, name: str, hook: str, release: str | None, slot: str) -> str | None:
        return None  # a rehearsal must not reload the real web server

    def _journal(self, action: str, outcome: str, **fields) -> None:
        return None  # the fleet journals the rehearsal as one event


@contextmanager
def _interrupts_deferred() -> Iterator[Callable[[], bool]]:
    """While a switch commits, Ctrl-C is noted instead of raised, so the fleet finishes or reverts, never half."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed.is_set
        return

    def note(signum, frame) -> None:
        if not pressed.is_set():  # say it once: the switch keeps going, so the user must not think it hung
            print("\nreleaser: Ctrl-C noted; every server finishes this switch or is put back first, then it stops",
                  file=sys.stderr, flush=True)
        pressed.set()

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


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
    return (said, holder, _parse_status(name, Completed(outcome.exit_code, rest, outcome.stderr)),
            tuple(early[-1]) if early else None)


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


def _remove_quietly(host: Host, path: PurePosixPath) -> None:
    """Remove a file of ours if the server still answers; the error that made it worth removing is the one to report."""
    try:
        host.run(["rm", "-f", str(path)])
    except HostUnreachable:
        pass


def _runbook(action: str) -> str:
    return {"stage": "go-live", "go-live": "go-live", "rollback": "rollback", "rehearsal": "go-live"}.get(action, "rollback")


def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
