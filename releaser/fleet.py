"""The fleet: every server of one environment for one command, and the shell around the switch.

A `Fleet` is the one object a task opens (`connected()`). It is made of the parts named after what they
do, each in its own module:

- releaser.group: connections and fan-out (`Group`, one `GroupResult` per step);
- releaser.serverstate: reading where each server stands (the status script and its parser);
- releaser.locking: the deploy lock as a held value (`DeployLock`, `LockSession`);
- releaser.recorder: the journal and notifications of this command;
- releaser.staging, releaser.pruning, releaser.notices: stage, prune and the public notice.

The switch itself is decided by releaser.switch (the coordinator) over the participants releaser.participants
builds (the slot links on every server, and a front and a database when the environment declares them).
This module, the switch's shell, gives it the servers, turns its one decision into the one error a user sees
(FleetReverted, FleetMixed, HostUnreachable) and journals it: go-live, rollback and rehearsal are here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import NoReturn

from releaser import interrupts, remote
from releaser.approval import Approve, ask
from releaser.bundle import MANIFEST, Bundle, Manifest
from releaser.clock import Clock
from releaser.config import Environment
from releaser.errors import Cancelled, FleetMixed, FleetReverted, HostUnreachable, PlanRefused, ReleaserError
from releaser.group import Group, GroupResult, Progress, summary
from releaser.hooks import run_hook
from releaser.locking import DeployLock, LockSession
from releaser.order import counted
from releaser.participants import SwitchContext, participants_for
from releaser.participants.links import ServerLinks
from releaser.recorder import Recorder
from releaser.results import FleetResult, HostResult, with_leftovers
from releaser.serverstate import ServerReport, read_status, states, status_exit_code
from releaser.slots import Plan, SlotState, fleet_release, plan_fleet_go_live, plan_fleet_rollback
from releaser.switch import (INTERRUPTED, Deadlines, Decision, PrepareCancelled, State, SwitchReport, held_after_the_switch,
                             run_switch)
from releaser.transport import Host, make_hosts
from releaser.web import Probe

__all__ = ["Approve", "Fleet", "FleetResult", "HostResult", "LockSession", "ServerReport", "connected", "make_hosts",
           "status_exit_code"]

BeforeCommit = Callable[[], None]


@contextmanager
def connected(environment: Environment, *, actor: str, clock: Clock, progress: Progress | None = None,
              journal_path: Path | None = None, hosts: Mapping[str, Host] | None = None) -> Iterator["Fleet"]:
    """Open every server of the environment (and, for the local sandbox, its web servers) for one command."""
    with _sandbox_serving(environment):
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
def _sandbox_serving(environment: Environment) -> Iterator[None]:
    """The local sandbox's web servers while the block runs; nothing, and no web server code imported, otherwise."""
    if environment.sandbox and environment.sandbox.serve:
        from releaser.sandbox import serving  # http.server and friends: only the sandbox needs them

        with serving(environment):
            yield
    else:
        yield


# what a Ctrl-C after a go-live's or rollback's switch says: the command ends as the switch did (exit 0 when it moved)
_AFTER_THE_SWITCH = ("Ctrl-C noted; the {action}'s switch has ended: its journal lines are being written and the lock "
                     "freed, then the command ends as the switch did")


class Fleet:
    """All servers of one environment, connected once and used for every step of one command."""

    def __init__(self, environment: Environment, *, actor: str, clock: Clock, hosts: Mapping[str, Host] | None = None,
                 progress: Progress | None = None, journal_path: Path | None = None) -> None:
        self.environment = environment
        self.group = Group(environment, hosts=hosts, progress=progress)
        self.recorder = Recorder(self.group, actor=actor, clock=clock, journal_path=journal_path)
        self.lock = DeployLock(self.group, self.recorder)

    # ---- the parts, under the names commands and checks use ----

    def __enter__(self) -> "Fleet":
        self.group.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.group.close()

    hosts = property(lambda self: self.group.hosts, doc="Every server's Host, by name.")
    unreachable = property(lambda self: self.group.unreachable, doc="The servers that did not answer, with why.")
    progress = property(lambda self: self.group.progress, doc="Where per-server progress lines go.")
    actor = property(lambda self: self.recorder.actor, doc="Who runs this command (journaled).")
    journal_path = property(lambda self: self.recorder.journal_path, doc="This environment's local journal.")
    deliveries = property(lambda self: self.recorder.deliveries, doc="This command's notifications, once finished.")

    @property
    def clock(self) -> Clock:
        """The clock every plan and event reads (a test may set its own)."""
        return self.recorder.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.recorder.clock = clock

    @property
    def notifier(self):
        """The notification channels every journaled event is sent to, when the environment has any."""
        return self.recorder.notifier

    @notifier.setter
    def notifier(self, notifier) -> None:
        self.recorder.notifier = notifier

    def root(self, name: str) -> PurePosixPath:
        """The app root on the named server."""
        return self.group.root(name)

    def each(self, work: Callable[[str], object], names=None) -> GroupResult:
        """Run work(name) on every server (or `names`) in parallel: see Group.each."""
        return self.group.each(work, names)

    def run_everywhere(self, argv_for: Callable[[str], list[str]], doing: str) -> GroupResult:
        """Run one command on every server; raise naming the servers where it failed."""
        return self.group.run_everywhere(argv_for, doing)

    def require_all_reachable(self, doing: str) -> None:
        """Refuse to start `doing` unless every server answered; nothing has been changed yet."""
        self.group.require_all_reachable(doing)

    def read_status(self, *, with_health: bool = True) -> list[ServerReport]:
        """Read every server's slots, disk, lock and (optionally) live health, one round trip each."""
        return read_status(self.group, with_health=with_health)

    def read_states(self, doing: str) -> dict[str, SlotState]:
        """Return every server's slot state, or refuse `doing` if any server cannot be read."""
        self.group.require_all_reachable(doing)
        return states({report.server: report for report in self.read_status(with_health=False)}, doing)

    def read_manifest(self, release_id: str) -> Manifest:
        """Read a release's manifest.json from the first reachable server."""
        name = self.group.reachable[0]
        try:
            text = self.hosts[name].read(self.root(name) / "releases" / release_id / MANIFEST)
        except HostUnreachable as error:
            if not error.answered:
                raise
            raise PlanRefused(f"{error.what}: the staged release {release_id} lacks its manifest there",
                              hint="stage the release again (invoke deploy --stage --release PATH)") from None
        return Manifest.model_validate_json(text)

    def locked(self, reason: str, *, prepare_for: str | None = None):
        """Hold the deploy lock on every server while the block runs (see DeployLock.held)."""
        return self.lock.held(reason, prepare_for=prepare_for)

    def unreported_warnings(self) -> list[str]:
        """Warnings about locks kept or journal lines missed that no result or error of this command carried."""
        return [*self.lock.unreported_leftovers(), *self.recorder.missed_warnings()]

    def take_lock(self, reason: str, *, token: str, kind: str, minutes: float) -> list[str]:
        """Take the lock on every server or on none; return the servers where this call took it."""
        return self.lock.take(reason, token=token, kind=kind, minutes=minutes)

    def unlock(self, *, reason: str) -> list[str]:
        """Remove the lock on every reachable server whoever holds it; the reason goes in the journal."""
        return self.lock.unlock(reason=reason)

    def record(self, action: str, outcome: str, **fields) -> None:
        """Journal an event of this command on every server and locally (with the unlock while a lock is held)."""
        self.recorder.write(action, outcome, **fields)

    def read_history(self) -> list[dict]:
        """Merge every reachable server's journal and the local one into one timeline."""
        return self.recorder.read_history()

    def finish_notifications(self) -> None:
        """Wait briefly for this command's notifications and journal every channel that failed."""
        self.recorder.finish_notifications()

    def run_hook(self, name: str, hook: str, release: str | None, slot: str) -> str | None:
        """Run a configured hook on one server; return None on success, else why it failed."""
        return run_hook(self.hosts[name], self.environment, hook, release=release, slot=slot, root=self.root(name))

    def stage(self, bundle: Bundle, *, reason: str | None = None) -> FleetResult:
        """Upload, verify and unpack the bundle everywhere, then move every staging slot (releaser.staging)."""
        from releaser.staging import stage

        return stage(self, bundle, reason=reason)

    def prune(self, *, keep: int | None = None, approve: Approve | None = None) -> dict[str, tuple[str, ...]]:
        """Remove old releases, retired instances and data schemas no slot names (releaser.pruning)."""
        from releaser.pruning import prune

        return prune(self, keep=keep, approve=approve)

    def publish_notice(self, message: str, *, clear: bool = False) -> None:
        """Show or remove the public notice on every server's live site (releaser.notices)."""
        from releaser.notices import publish_notice

        publish_notice(self, message, clear=clear)

    # ---- the switch ----

    def go_live(self, *, reason: str | None = None, verify: bool = True, approve: Approve | None = None,
                before_commit: BeforeCommit | None = None, until_commit: Callable[[], float] | None = None,
                journal_extra: dict | None = None) -> FleetResult:
        """Make the staged release live on every server at once, or on none.

        `before_commit` runs between prepare and commit (a scheduled go-live waits there for the second);
        if it raises, the prepared links are removed and nothing was switched. `until_commit` says how many
        seconds that wait has left: every server's commit is then armed during it (releaser.switch).
        """
        self.require_all_reachable("go-live")
        self.recorder.context = journal_extra or {}  # planned time etc. go on every event of this go-live, failures too
        try:
            with held_after_the_switch(_AFTER_THE_SWITCH.format(action="go-live")), \
                    self.locked("go-live", prepare_for="go-live") as session:
                plans = plan_fleet_go_live(states(session.reports, "go-live"))
                ask(approve, "go-live", plans)
                result = self.switch(plans, action="go-live", verify=verify, before_commit=before_commit,
                                     until_commit=until_commit)
                self.record("go-live", "done", releases={"live": result.release, "backup": result.previous}, reason=reason,
                            timings=dict(result.seconds or {}), extra=result.journal_moments())
                interrupts.note_finished(f"{result.release} is live on every server")  # what a later Ctrl-C says
        finally:
            self.recorder.context = {}
        return with_leftovers(result, session)

    def plan_go_live(self) -> dict[str, Plan]:
        """Read every server and return the go-live plan, or refuse before anything changes."""
        return plan_fleet_go_live(self.read_states("go-live"))

    def rollback(self, *, reason: str | None = None, approve: Approve | None = None) -> FleetResult:
        """Put the backup release back live on every server; the failed release stays on disk."""
        self.require_all_reachable("rollback")
        with held_after_the_switch(_AFTER_THE_SWITCH.format(action="rollback")), \
                self.locked("rollback", prepare_for="rollback") as session:
            plans = plan_fleet_rollback(states(session.reports, "rollback"))
            ask(approve, "rollback", plans)
            result = self.switch(plans, action="rollback", verify=True, keep_unhealthy=True)
            self.record("rollback", "done" if all(r.ok for r in result.results) else "unhealthy",
                        releases={"live": result.release, "rolled_back": result.previous}, reason=reason,
                        timings=dict(result.seconds or {}), extra=result.journal_moments())
            interrupts.note_finished(f"{result.release} is live again on every server")  # what a later Ctrl-C says
        return with_leftovers(result, session)

    def switch(self, plans: Mapping[str, Plan], *, action: str, verify: bool, keep_unhealthy: bool = False,
               before_commit: Callable[[], None] | None = None, until_commit: Callable[[], float] | None = None,
               rehearsal: bool = False) -> FleetResult:
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
        session = self.lock.session
        early = session.early if session else {}  # what the lock's round trip prepared
        roots = {name: self.root(name) / ".releaser" / "rehearsal" if rehearsal else self.root(name) for name in self.hosts}
        context = SwitchContext(self.environment, self.hosts, roots, action, slot, changing, target, previous,
                                rehearsal=rehearsal, early=early)
        participants = participants_for(context)
        _keep_a_shell_each(participants)

        def on_phase(phase: str) -> None:
            if session:  # from prepare on, the coordinator answers Ctrl-C (the lock no longer says "before the switch")
                session.switching = True
            for name in changing:
                self.progress(name, phase)

        try:
            report = run_switch(participants, deadlines=self._deadlines(), verify=verify and slot == "live",
                                keep_unhealthy=keep_unhealthy, before_commit=before_commit, until_commit=until_commit,
                                on_phase=on_phase)
        except PrepareCancelled as cancelled:
            if not rehearsal:
                self.record(action, "cancelled", releases={slot: target}, detail=f"Ctrl-C {cancelled.when}")
            raise Cancelled(f"{action} cancelled {cancelled.when} (Ctrl-C); nothing was switched",
                            hint=f"run the same command again when ready{cancelled.kept_note()}") from None
        if early and session:  # the links were prepared in the lock's round trip: that trip is the prepare
            for phase in ("prepare", "switch"):
                if phase in report.timings:  # a refused prepare has no switch time
                    report.timings[phase] += session.seconds
        if report.decision in (Decision.COMMITTED, Decision.UNHEALTHY):
            return _switch_result(action, target, previous, plans, participants, report)
        answers = failing_answers(participants)
        return self._raise_for(report, action=action, target=target, previous=previous, slot=slot, rehearsal=rehearsal,
                               answers=answers)

    def _deadlines(self) -> Deadlines:
        d = self.environment.deadlines
        return Deadlines(prepare=d.prepare, commit=d.commit, verify=d.verify, revert=d.revert)

    def _raise_for(self, report: SwitchReport, *, action: str, target: str | None, previous: str | None, slot: str,
                   rehearsal: bool, answers: Mapping[str, Probe] | None = None) -> NoReturn:
        """Journal a switch that did not commit and raise the one error that says where every server stands.

        `answers`: the failing GETs of the check after the switch, carried by the error so their bodies are shown.
        """
        cause = summary(report.cause)
        why = "interrupted (Ctrl-C)" if set(report.cause) == {INTERRUPTED} else f"failed on {cause}"
        back_on = previous or "no release"
        runbook = _runbook(action)
        if report.decision is Decision.REFUSED:
            lost = counted(o.name for o in report.outcomes if o.state is State.LOST)
            after = self._kept_note(report)
            if not rehearsal:
                self.record(action, "refused", releases={slot: target}, detail=cause)
            at_the_second = any(o.phase == "ready" for o in report.outcomes)  # lost during the wait for T
            if lost and len(lost) == len(report.cause):
                doing = f"was lost before {action}'s switch, so no server was told to switch" if at_the_second else \
                    f"did not answer while preparing {action}"
                raise HostUnreachable(", ".join(lost), f"{doing} ({cause}); nothing was switched{after}",
                                      hint="see: invoke runbook server-failure")
            raise FleetReverted(f"{action} stopped before any switch: {cause}; nothing was switched{after}",
                                hint=_damaged_hint(action, report) or
                                f"fix what it names, then run the same command again; see: invoke runbook {runbook}")
        if rehearsal and report.decision is Decision.REVERTED:
            raise FleetReverted(f"rehearsal of {target} {why}; the public site was not touched",
                                hint="fix what it names (a broken release: build it again as a new release id and stage that; a "
                                     "dead or hung staging instance: stage the same release again), then rehearse again; "
                                     "see: invoke runbook go-live", answers=answers)
        if report.decision is Decision.REVERTED and slot != "live":  # a stage: nothing the public sees moved
            self.record(action, "reverted", releases={slot: previous, "attempted": target}, detail=why)
            raise FleetReverted(f"{action} {why}; every server's {slot} is back on {previous or 'nothing'}",
                                hint=f"next: invoke runbook {runbook}")
        if report.decision is Decision.REVERTED:
            exposed = exposure(report)
            live_for = f"{target} was live for at most {exposed:.2f} s, from the commit to the end of the revert"
            self.record(action, "reverted", releases={slot: previous, "attempted": target}, detail=f"{why}; {live_for}")
            raise FleetReverted(f"{action} {why}; every server is back on {back_on} ({live_for}){self._kept_note(report)}",
                                hint=f"next: invoke runbook {runbook}", exposed=exposed, answers=answers)
        # MIXED: someone may not be back
        stuck, lost = report.stuck, report.lost
        back = report.back
        parts = []
        if stuck:
            if len(stuck) == 1:
                parts.append(f"{next(iter(stuck))} could not be put back ({next(iter(stuck.values()))})")
            else:
                parts.append(f"{', '.join(counted(stuck))} could not be put back: {summary(stuck)}")
        if lost:
            parts.append(f"{', '.join(lost)} did not answer, so {'it' if len(lost) == 1 else 'they'} may still serve "
                         f"{target or 'the new links'}")
        # the servers put back served the new release from the commit to the end of their revert, as in REVERTED
        live_for = (f" ({target or 'the new links'} was live there for at most {exposure(report):.2f} s, from the commit "
                    f"to the end of the revert)") if back and slot == "live" else ""
        done = f"{', '.join(counted(back))} {'is' if len(back) == 1 else 'are'} back on {back_on}{live_for}; " if back else ""
        self.record(action, "mixed", releases={slot: previous, "attempted": target},
                    detail=f"{why}; {done}{'; '.join(parts)}")
        hint = "run: invoke status, then follow: invoke runbook rollback (section MIXED)"
        if lost:
            hint = f"keep {', '.join(lost)} away from the public (load balancer) and, once it answers, {hint}"
        # a server that could not be put back is on another release; one that did not answer may or may not be
        mixed = "the fleet is MIXED" if stuck else "the fleet may be MIXED (status tells, once it answers)"
        raise FleetMixed(f"{action} {why}; {done}{' and '.join(parts)}; {mixed}{self._kept_note(report)}", hint=hint,
                         answers=answers)

    def _kept_note(self, report: SwitchReport) -> str:
        """What a participant that did not move still keeps of its prepare (its abort failed), in the message's words:
        a server's temporary links are harmless; the database's prepared renames are named by its own reason."""
        servers = {server.name for server in self.environment.servers}
        kept = report.kept
        links = counted({name.split(":")[0] for name in kept if name.split(":")[0] in servers})  # web-1:front is web-1's
        others = [f"{name} kept what it prepared: {why}" for name, why in kept.items() if name.split(":")[0] not in servers]
        said = [f"{', '.join(links)} kept {'its' if len(links) == 1 else 'their'} temporary links (harmless; the next "
                "stage or prune removes them)"] if links else []
        return "".join(f"; {part}" for part in said + others)

    def rehearse(self) -> FleetResult:
        """Dress rehearsal of go-live: prepare, commit, verify and revert on a throwaway copy of the slot links.

        The copy lives in <root>/.releaser/rehearsal and shares releases/, so the public site is untouched;
        verification reads each staging URL, where the release that will go live is served (with [application],
        asks each server's staging instance on its private port, where that release runs). It is the same
        coordinator over the same participants, aimed at the copy. The durations are journaled so go-live
        can say how long a switch and a revert take.
        """
        self.require_all_reachable("rehearsal")
        with self.locked("rehearse") as session:
            read = states(session.reports, "rehearsal")
            plans = plan_fleet_go_live(read)
            self.group.run_everywhere(lambda name: remote.rehearsal_argv(self.root(name), setup=True), "set up the rehearsal")
            try:
                try:
                    result = self.switch(plans, action="rehearsal", verify=True, rehearsal=True)
                except ReleaserError as error:
                    self.record("rehearse", "failed", releases={"staging": fleet_release(read, "staging")}, detail=error.what)
                    raise
                moment = time.perf_counter()
                rehearsal_root = lambda name: self.root(name) / ".releaser" / "rehearsal"
                self.group.run_everywhere(lambda name: remote.restore_argv(rehearsal_root(name), plans[name].links),
                                          "revert the rehearsal")
                timings = {**(result.seconds or {}), "revert": time.perf_counter() - moment}
            finally:
                self.group.run(lambda name: remote.rehearsal_argv(self.root(name), setup=False))
            self.record("rehearse", "done", releases={"staging": result.release, "live": result.previous}, timings=timings)
        return with_leftovers(FleetResult("rehearsal", result.release, result.previous, result.results, result.notes,
                                          timings, result.skew), session)


def _keep_a_shell_each(participants: list) -> None:
    """Have every server's connection ready with one shell per participant on it, started while prepare runs:
    its links and its front commit at the same moment, and neither should pay for a shell then."""
    hosts = (getattr(participant, "host", None) for participant in participants)
    for host, count in Counter(host for host in hosts if callable(getattr(host, "keep_shells", None))).items():
        host.keep_shells(count)


def failing_answers(participants: list) -> dict[str, Probe]:
    """Each server's failing GET of the check after the switch, body kept (the error shows it): the front's when
    it has one (what the public saw through nginx), else its links' (the live URL's)."""
    from releaser.participants.front import ServerFront  # a failed switch's path only

    answers: dict[str, Probe] = {}
    for participant in sorted(participants, key=lambda p: not isinstance(p, ServerFront)):
        probe = getattr(participant, "probe", None)
        if isinstance(probe, Probe) and not probe.ok:
            answers.setdefault(participant.server, probe)
    return answers


def _switch_result(action: str, target: str | None, previous: str | None, plans: Mapping[str, Plan],
                   participants: list, report: SwitchReport) -> FleetResult:
    """One HostResult per server from a switch that moved: its health when verified, when its live link moved."""
    links = {p.server: p for p in participants if isinstance(p, ServerLinks)}
    results = []
    unverified = {o.name: o.detail for o in report.outcomes if o.state is State.UNHEALTHY}
    for name in plans:
        participant = links.get(name)
        health = participant.probe if participant else None
        if health is None and participant is not None and participant.name in unverified:  # verify raised: no probe
            ok, detail = False, unverified[participant.name] or "its check after the switch did not run through"
        else:
            ok = health.ok if health else True
            detail = health.detail if health else ("switched" if participant else "already there")
        results.append(HostResult(name, ok, detail, participant.moved_at if participant else None, health))
    notes = [note for plan in plans.values() for note in plan.notes]
    if report.interrupted:
        notes.append(f"Ctrl-C came while the {action} was switching; it had reached every server, so {target} stays "
                     f"{'staged' if action == 'stage' else 'live'}")
    warnings = [line for participant in participants for line in getattr(participant, "warnings", ())]  # optional
    others = {p.name: p.moved_at for p in participants
              if not isinstance(p, ServerLinks) and getattr(p, "moved_at", None) is not None}  # moved_at: optional
    return FleetResult(action, target, previous, tuple(results), tuple(dict.fromkeys(notes)), dict(report.timings),
                       report.skew, warnings=tuple(warnings), others_moved_at=others)


def exposure(report: SwitchReport) -> float:
    """The most seconds a reverted switch's release can have been live: commit, verify and revert, end to end."""
    return sum(report.timings.get(phase, 0.0) for phase in ("commit", "verify", "revert"))


def _damaged_hint(action: str, report: SwitchReport) -> str | None:
    """What to do when prepare found the release's files changed on a server: running the same command again
    fails the same way, and staging the same id again is refused (its files are not that bundle's)."""
    damaged = counted(name for name, why in report.cause.items() if "fails its checksums on this server" in why)
    if not damaged:
        return None
    where = ", ".join(damaged)
    if action == "rollback":
        return (f"the backup's files on {where} were changed after they were staged, so it cannot be rolled back there: "
                f"keep {where} away from the public and roll back the other servers without it (see: invoke runbook "
                "server-failure, step 3), then escalate")
    return (f"its files on {where} were changed after they were staged: build the release again under a new release id, "
            f"stage that and go live with it (see: invoke runbook {_runbook(action)})")


def _runbook(action: str) -> str:
    return {"stage": "go-live", "go-live": "go-live", "rollback": "rollback", "rehearsal": "go-live"}.get(action, "rollback")
