"""Go-live at exactly the scheduled time: countdown, every check at T-10 min, prepare at T-1 min, rename at T.

The rename happens when the clock reaches the scheduled second and never before (publishing early is a
breach too). Checks failing at the lead time stop the go-live with nothing switched. After the rename
each server's live URL is verified; any failure reverts every server (the fleet's all-or-nothing rule).
Ctrl-C before the rename cancels with nothing switched; during the rename the fleet finishes or reverts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from releaser.calendar import ScheduledRelease, next_release
from releaser.checks import check_names
from releaser.clock import Clock
from releaser.config import Environment
from releaser.errors import Cancelled, ChecksFailed, HostUnreachable, PlanRefused, UsageError
from releaser.fleet import Approve, Fleet, FleetResult
from releaser.order import counted, counted_items
from releaser.publication import GRACE, Slot, choose_slot

Tick = Callable[[str, datetime, datetime], None]  # (phase, now, moment waited for)
RunChecks = Callable[[str], Sequence]  # ("all" | "fast") -> releaser.checks.CheckResult values


@dataclass(frozen=True)
class Timeline:
    """The moments of one scheduled go-live, all timezone-aware."""

    checks_at: datetime
    prepare_at: datetime
    switch_at: datetime


def plan_timeline(at: datetime, *, lead: timedelta = timedelta(minutes=10),
                  prepare_ahead: timedelta = timedelta(minutes=1)) -> Timeline:
    """Return when to run every check, when to prepare and when to switch, for a go-live at `at`."""
    if at.tzinfo is None:
        raise ValueError("the scheduled time must be timezone-aware")
    return Timeline(checks_at=at - lead, prepare_at=at - prepare_ahead, switch_at=at)


def refuse_if_passed(at: datetime, now: datetime, *, grace: timedelta = timedelta(seconds=59)) -> None:
    """Refuse a scheduled go-live whose time has gone: publishing late must be a decision, not a default."""
    if now > at + grace:
        late = int((now - at).total_seconds() // 60)
        raise PlanRefused(
            f"the scheduled time {at:%a %d %b %H:%M %Z} passed {late} min ago",
            hint="to publish late on purpose: invoke go-live --now --force --reason TEXT; then: invoke runbook go-live",
        )


def next_publication_time(environment: Environment, publications: Sequence[str], now: datetime) -> ScheduledRelease:
    """Return the next scheduled release of the staged release's publications (a minute's grace for a late start)."""
    if not publications:
        raise PlanRefused("the staged release names no publication in its manifest, so it has no scheduled time",
                          hint="add its publication to the manifest (invoke build --publication NAME), or pass --at TIME")
    known = {publication.name: publication for publication in environment.publications}
    missing = [name for name in publications if name not in known]
    if missing:
        raise PlanRefused(f"publication {missing[0]} is not in the {environment.name} environment",
                          hint="add a [[publications]] entry with its release rule to the environment file")
    upcoming = [next_release(known[name].schedule(), now - timedelta(seconds=59)) for name in publications]
    upcoming = [release for release in upcoming if release is not None]
    if not upcoming:
        raise PlanRefused(f"no scheduled release of {', '.join(publications)} in the next two years",
                          hint="check the release rule with: invoke calendar")
    return min(upcoming, key=lambda release: release.at)


def last_rehearsal(history: Sequence[dict]) -> dict | None:
    """Return the latest successful rehearsal event from a journal, or None."""
    done = [event for event in history if event.get("action") == "rehearse" and event.get("outcome") == "done"]
    return done[-1] if done else None


def failing(results: Sequence) -> list:
    """Return the check results that are FAIL."""
    return [r for r in results if r.status == "FAIL"]


def go_live_at(fleet: Fleet, *, at: datetime, clock: Clock, run_checks: RunChecks | None = None, tick: Tick | None = None,
               reason: str | None = None, approve: Approve | None = None, lead: timedelta = timedelta(minutes=10),
               prepare_ahead: timedelta = timedelta(minutes=1), off_calendar: bool = False,
               context: dict | None = None, release: str | None = None) -> FleetResult:
    """Wait for `at`, run the checks on the way (those `run_checks` gives; none without it), and switch every
    server at that second; return the fleet result.

    `context` (the attempt id, the slot) goes on every event this go-live journals, and `release` (the
    staged release id) on those the fleet does not write itself. Raises ChecksFailed when a check fails at
    the lead time (nothing switched), Cancelled on Ctrl-C before the rename, and whatever the fleet raises
    if the switch fails (every server reverted).
    """
    tick = tick or (lambda phase, now, moment: None)
    timeline = plan_timeline(at, lead=lead, prepare_ahead=prepare_ahead)
    refuse_if_passed(at, clock.now())
    planned = _utc(at)
    key = "requested_at" if off_calendar else "planned_at"  # a time typed with --at is not the pre-announced one
    journal_extra = {key: planned, **(context or {})}
    if not off_calendar:
        journal_extra.setdefault("slot", planned)
    record = _recorder(fleet, journal_extra, release)
    refuse_if_down(fleet, record)
    try:
        if run_checks is not None:  # without checks (the demo) the countdown must not promise them at the lead time
            _wait_until(clock, timeline.checks_at, "checks", tick)
            _stop_on_failures(fleet, run_checks("all"), "every check", at, record=record)
        _wait_until(clock, timeline.prepare_at, "prepare", tick)
        if run_checks is not None:
            _stop_on_failures(fleet, run_checks("fast"), "the fast checks", at, record=record)
    except KeyboardInterrupt:
        record("cancelled", "Ctrl-C before the switch")
        raise Cancelled("go-live cancelled before the switch (Ctrl-C); nothing was switched",
                        hint="run: invoke go-live again before the scheduled time") from None

    def wait_for_the_second() -> None:
        try:
            _wait_until(clock, timeline.switch_at, "switch", tick)
        except KeyboardInterrupt:
            record("cancelled", "Ctrl-C after prepare, before the switch")
            raise Cancelled("go-live cancelled before the switch (Ctrl-C); nothing was switched",
                            hint="run: invoke go-live again before the scheduled time; once it has passed, publishing late "
                                 "is a decision: invoke go-live --now --force --reason TEXT") from None
        journal_extra["switched_at"] = _utc(clock.now())  # read when the go-live event is written, after commit
        tick("commit", clock.now(), timeline.switch_at)  # the countdown must stop saying "nothing is switched yet"

    def seconds_to_the_second() -> float:  # every server's commit is armed for this wait (releaser.switch)
        return (timeline.switch_at - clock.now()).total_seconds()

    return fleet.go_live(reason=reason, approve=approve, before_commit=wait_for_the_second,
                         until_commit=seconds_to_the_second, journal_extra=journal_extra)


Record = Callable[..., None]  # (outcome, detail, **extra): journal one go-live event of this attempt


def _recorder(fleet: Fleet, context: dict, release: str | None) -> Record:
    """Journal events of one go-live attempt, each with its context and the staged release when known."""
    def record(outcome: str, detail: str, **extra) -> None:
        fleet.record("go-live", outcome, detail=detail, releases={"staging": release} if release else None,
                     extra={**context, **extra})
    return record


def refuse_if_down(fleet: Fleet, record: Record) -> None:
    """Refuse (exit 5) when a server did not answer, and journal the refusal so the breach report can show it."""
    try:
        fleet.require_all_reachable("go-live")
    except HostUnreachable as error:
        record("refused", error.what, unreachable=counted(fleet.unreachable))
        raise


def _stop_on_failures(fleet: Fleet, results: Sequence, which: str, at: datetime, key: str = "planned_at",
                      record: Record | None = None) -> None:
    """Stop the go-live on any FAIL: servers that did not answer are exit 5 (no override can help), the rest exit 4."""
    record = record or _recorder(fleet, {key: _utc(at)}, None)
    failed = failing(results)
    lost = {r.server: r.detail for r in failed if r.check == "reachable"}
    if lost:
        record("refused", f"{which} before {at:%H:%M}: {', '.join(lost)} did not answer", unreachable=counted(lost))
        raise _servers_down(lost, f"go-live stopped at {which} before {at:%H:%M}")
    if failed:
        names = ", ".join(sorted({r.named for r in failed}))
        first = min(failed, key=lambda r: r.named)  # the detail of the first one named
        more = "; the FAIL lines above give each one's" if len(failed) > 1 else ""
        record("stopped", f"{which} before {at:%H:%M}: {names}", failed_checks=[r.check for r in failed])
        raise ChecksFailed(
            f"go-live stopped: {names} failed ({first.named}: {first.detail}{more}); nothing was switched",
            hint="fix it, or override with --override CHECK --reason TEXT; see: invoke runbook go-live",
        )


def _servers_down(lost: dict[str, str], doing: str) -> HostUnreachable:
    """One error for servers that did not answer, each named with why, pointing at the server-failure runbook."""
    why = "; ".join(f"{server}: {detail}" for server, detail in counted_items(lost))
    count = f"{len(lost)} servers" if len(lost) > 1 else "1 server"
    return HostUnreachable(", ".join(counted(lost)), f"{doing}: {count} did not answer, so nothing was switched and "
                           f"no check override can help ({why})", hint="see: invoke runbook server-failure")


def _wait_until(clock: Clock, moment: datetime, phase: str, tick: Tick) -> None:
    """Sleep until `moment`, telling `tick` about every second that passes (the countdown)."""
    while True:
        now = clock.now()
        if now >= moment:
            return
        tick(phase, now, moment)
        clock.sleep_until(min(moment, now + timedelta(seconds=1)))


def _utc(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_scheduled_go_live(fleet: Fleet, *, clock: Clock, at: datetime | None = None, run_checks: RunChecks | None = None,
                          tick: Tick | None = None, reason: str | None = None, approve: Approve | None = None,
                          announce: Callable[..., None] | None = None,
                          attempt: "Attempt | None" = None) -> FleetResult:
    """Find when the staged release is due, show the plan once, then wait and switch at that second.

    The plan is approved before the wait, never at T-1 min when nobody may be looking. Without `at` that is the
    publication's next slot: once today's slot has passed (and its minute's grace), the next one, days away, and
    `announce` hears which publication's slot it is so that it can say so.
    """
    settings = fleet.environment.go_live
    attempt = attempt or start_attempt(fleet, clock)
    off_calendar = at is not None
    context = dict(attempt.context)
    slot_of = None  # the publication whose next slot this waits for; None for a time given with --at
    if at is None:
        due = next_publication_time(fleet.environment, attempt.publications, clock.now())
        at, slot_of = due.at, due.publication
        context.update(slot=_utc(at), publication=due.publication)
    refuse_if_passed(at, clock.now())
    if approve is not None and not approve("go-live", attempt.plans):
        raise Cancelled("go-live cancelled; nothing was changed", hint="pass --yes to go ahead without asking")
    if announce is not None:  # the last moment to say no is before the servers are prepared
        decide_by = at - timedelta(seconds=settings.prepare_seconds)
        announce(at, last_rehearsal(fleet.read_history()), decide_by if decide_by > clock.now() else None,
                 slot_of=slot_of, now=clock.now(), rehearsal_required=settings.rehearsal_required)
    return go_live_at(fleet, at=at, clock=clock, run_checks=run_checks, tick=tick, reason=reason,
                      lead=timedelta(minutes=settings.lead_minutes), prepare_ahead=timedelta(seconds=settings.prepare_seconds),
                      off_calendar=off_calendar, context=context, release=attempt.release)


@dataclass(frozen=True)
class Attempt:
    """One go-live command: its plans, the staged release and its publications, and what its events carry."""

    plans: dict
    release: str | None
    publications: tuple[str, ...]
    context: dict  # the attempt id (and, once known, the slot and publication) on every event it journals


def start_attempt(fleet: Fleet, clock: Clock) -> Attempt:
    """Read every server's plan and the staged release's publications; a refusal because servers are down is journaled."""
    import uuid

    context = {"attempt": uuid.uuid4().hex}
    refuse_if_down(fleet, _recorder(fleet, context, None))
    try:
        plans = fleet.plan_go_live()
    except HostUnreachable as error:  # journaled, so the breach report can say the servers were down
        fleet.record("go-live", "refused", detail=error.what, extra={**context, "unreachable": counted(fleet.unreachable)})
        raise
    release = next(iter(plans.values())).before.staging
    publications = tuple(fleet.read_manifest(release).publications) if release else ()
    return Attempt(plans, release, publications, context)


@dataclass(frozen=True)
class OffCalendar:
    """A forced publication outside its slot: which slot it was for and how far off (negative minutes: early)."""

    release: str
    publication: str
    slot: datetime
    published_at: datetime

    @property
    def minutes(self) -> int:
        """Minutes from the slot to the publication, rounded towards zero; negative when early."""
        return Slot(self.publication, self.slot).minutes_off(self.published_at)


def slots_around(environment: Environment, publication: str, moment: datetime) -> tuple[datetime | None, datetime | None]:
    """The publication's last slot at or before `moment` (within a year) and its next one after, from the calendar."""
    from releaser.calendar import releases_between

    schedule = next((p.schedule() for p in environment.publications if p.name == publication), None)
    if schedule is None:
        return None, None
    earlier = [r.at for r in releases_between(schedule, moment - timedelta(days=366), moment + GRACE) if not r.refused]
    following = next_release(schedule, moment + GRACE)
    return (earlier[-1] if earlier else None), (following.at if following else None)


def slot_for(environment: Environment, publications: Sequence[str], moment: datetime,
             history: Sequence[dict]) -> Slot | None:
    """The calendar slot an off-calendar go-live at `moment` is for: per publication, see publication.choose_slot."""
    found = []
    for name in publications:
        chosen = choose_slot(*slots_around(environment, name, moment), moment, history, publication=name)
        if chosen is not None:
            found.append(Slot(name, chosen))
    return min(found, key=lambda slot: abs(slot.at - moment)) if found else None


FAST_CHECKS = ("reachable", "staged", "lock")  # re-run one minute before the switch; the rest ran at T-10 min
# --now publishes off the calendar on purpose (outside the sandbox only with --force --reason), so the
# calendar-window check, which asks whether now is a release day, is the one check it does not run.
NOW_CHECKS = tuple(name for name in check_names() if name != "window")


def parse_at(text: str, *, zone: ZoneInfo, now: datetime, flag: str = "--at") -> datetime:
    """Read --at (or `flag`) with the one parser every --at uses: see calendar.parse_time_flag."""
    from releaser.calendar import parse_time_flag

    return parse_time_flag(text, zone=zone, now=now, flag=flag)


def environment_zone(environment: Environment) -> ZoneInfo:
    """The time zone release times are shown in: the first publication's, else Europe/London."""
    return ZoneInfo(environment.publications[0].timezone if environment.publications else "Europe/London")


def refuse_request(environment: Environment, *, now: bool, at: str | None, force: bool, overrides: Sequence[str],
                   reason: str | None, clock_now: datetime) -> datetime | None:
    """The refusals of a go-live's flags, before any server is asked; the --at moment, if any.

    Shared by the command and its dry run, so a dry run refuses what the command would: an override without a
    reason or naming no check, --now or --at where the environment does not allow them, both at once, or an --at
    that has passed.
    """
    from releaser.checks import apply_overrides

    if overrides and not reason:
        raise UsageError("--override needs --reason TEXT", hint="say why the failing check is acceptable; it is journaled")
    apply_overrides([], {name: reason or "" for name in overrides})  # an unknown check name
    if (now or at) and not environment.allow_go_live_now and not (force and reason):
        raise PlanRefused(f"{environment.name} does not allow --now or --at: it would publish off the calendar",
                          hint="add --force --reason TEXT to publish early or late on purpose (it is journaled)")
    if now and at:
        raise UsageError("--now and --at do not go together", hint="pick one")
    moment = parse_at(at, zone=environment_zone(environment), now=clock_now) if at else None
    if moment is not None:
        refuse_if_passed(moment, clock_now)
    return moment


def go_live_command(fleet: Fleet, *, clock: Clock, now: bool = False, at: str | None = None, force: bool = False,
                    overrides: Sequence[str] = (), reason: str | None = None, approve: Approve | None = None,
                    tick: Tick | None = None, announce=None, show_checks=None,
                    off_calendar: Callable[[OffCalendar], None] | None = None) -> FleetResult:
    """What `invoke go-live` does: the scheduled switch by default, or --now / --at within the environment's rules.

    Every check runs first and a FAIL stops the go-live unless it is overridden with a reason, which is
    journaled. --now and --at publish off the calendar, so outside the sandbox they need --force --reason;
    such a forced go-live journals the slot it was for, and `off_calendar` hears how early or late it went.
    """
    from releaser.checks import Limits, apply_overrides, run_checks

    environment = fleet.environment
    moment = refuse_request(environment, now=now, at=at, force=force, overrides=overrides, reason=reason,
                            clock_now=clock.now())
    zone = environment_zone(environment)
    accepted = {name: reason or "" for name in overrides}
    attempt = start_attempt(fleet, clock)
    forced = (now or at) and not environment.allow_go_live_now
    slot = slot_for(environment, attempt.publications, moment or clock.now(), fleet.read_history()) if forced else None
    if slot is not None:
        attempt.context.update(slot=_utc(slot.at), publication=slot.publication)

    def checks(which: str) -> list:
        wanted = FAST_CHECKS if which == "fast" else NOW_CHECKS if now else None
        # --now goes live at this moment: the checks judge it (not the next scheduled release, which would also
        # build the bank-holiday calendar for dates nobody asked about); --at judges its moment, else the slot
        when = clock.now()
        limits = Limits(environment, at=when.astimezone(zone) if now else moment, actor=fleet.actor)
        results = run_checks(fleet, limits, now=when, only=wanted)
        results = apply_overrides(results, accepted)
        if show_checks is not None:
            show_checks(which, results)
        return results

    if accepted:  # refuse_request refused an unknown check name before anything was journaled
        fleet.record("override", "done", reason=reason, releases={"staging": attempt.release} if attempt.release else None,
                     extra={**attempt.context, "checks": sorted(accepted)})
    if not now:
        result = run_scheduled_go_live(fleet, clock=clock, at=moment, run_checks=checks, tick=tick, reason=reason,
                                       approve=approve, announce=announce, attempt=attempt)
    else:
        record = _recorder(fleet, {**attempt.context, "requested_at": _utc(clock.now())}, attempt.release)
        try:
            results = checks("all")
        except KeyboardInterrupt:  # the checks only read the servers, and nothing is locked yet
            record("cancelled", "Ctrl-C during the checks")
            raise Cancelled("go-live cancelled during its checks (Ctrl-C); nothing was switched",
                            hint="run: invoke go-live --now again when ready") from None
        _stop_on_failures(fleet, results, "every check", clock.now(), record=record)
        journal_extra = {**attempt.context, **({"forced": True} if force else {})}

        def note_the_second() -> None:  # after the checks, the lock and the question: the second of the commit
            journal_extra["switched_at"] = _utc(clock.now())

        result = fleet.go_live(reason=reason, approve=approve, before_commit=note_the_second, journal_extra=journal_extra)
    if slot is not None and off_calendar is not None:
        off_calendar(OffCalendar(result.release, slot.publication, slot.at.astimezone(zone), clock.now().astimezone(zone)))
    return result


def breach_report_for(fleet: Fleet, release_id: str, *, scheduled_text: str | None = None, today=None,
                      form: str = "markdown") -> str:
    """Draft the breach report of the publication `release_id` was for, from every server's journal.

    The report follows the publication's scheduled slot, so the failed release's id and the fix's id give
    the same report. `form` is "markdown", "html" (a printable page with the timeline picture) or "svg".
    """
    from releaser.breach import gather_publication_facts, render_breach_report

    environment = fleet.environment
    history = fleet.read_history()
    zone = environment_zone(environment)
    clock_now = fleet.clock.now()
    slot = publication_slot(fleet, release_id, history, scheduled_text=scheduled_text, now=clock_now)
    following = slots_around(environment, slot.publication, slot.at)[1] if slot.publication else None
    known = {p.name: p for p in environment.publications}
    publication = known.get(slot.publication)
    facts = gather_publication_facts(slot.at.astimezone(zone), history, release_id=release_id,
                                     publication=slot.publication, until=following)
    text = render_breach_report(
        facts, metadata=environment.breach.model_dump(),
        publication=(publication.title or publication.name) if publication else slot.publication or environment.name,
        today=today or clock_now.astimezone(zone).date(),
    )
    if form == "markdown":
        return text
    from releaser.breach_html import render_breach_html, render_timeline_svg

    return render_breach_html(text, facts) if form == "html" else render_timeline_svg(facts)


def publication_slot(fleet: Fleet, release_id: str, history: Sequence[dict], *, scheduled_text: str | None = None,
                     now: datetime) -> Slot:
    """The slot `release_id` was published (or meant to be published) for: --scheduled, else what the journal says.

    A go-live journals its slot; for older journals the slot is found from the calendar around the
    release's first go-live attempt. Refuses a release the journal has no go-live of.
    """
    from releaser.publication import find_slot, first_attempt

    environment = fleet.environment
    name = _publication_name(fleet, release_id, history)
    if scheduled_text:
        return Slot(name or "", parse_at(scheduled_text, zone=environment_zone(environment), now=now, flag="--scheduled"))
    said = find_slot(release_id, history)
    if said is not None:
        return Slot(name or "", said)
    attempt = first_attempt(release_id, history)
    if attempt is None:
        raise PlanRefused(f"the journal has no go-live of {release_id}",
                          hint="check the release id with: invoke history, or pass --scheduled TIME")
    moment = datetime.fromisoformat(attempt["at"].replace("Z", "+00:00"))
    names = [name] if name else [p.name for p in environment.publications]
    slot = slot_for(environment, names, moment, history)
    if slot is None:
        raise PlanRefused(f"cannot tell which scheduled release {release_id} was for",
                          hint="pass the pre-announced time: --scheduled 2026-12-01T09:30")
    return slot


def _publication_name(fleet: Fleet, release_id: str, history: Sequence[dict]) -> str | None:
    """The publication a release carries: as its go-live journaled it, else from its manifest on a server."""
    from releaser.errors import ReleaserError
    from releaser.publication import releases_about

    said = [e["publication"] for e in history if e.get("publication") and release_id in releases_about(e)]
    if said:
        return said[0]
    try:
        publications = fleet.read_manifest(release_id).publications
    except (ReleaserError, StopIteration, ValueError):  # pruned, or no server answered: the calendar decides
        return None
    return publications[0] if publications else None
