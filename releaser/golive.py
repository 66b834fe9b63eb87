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

Tick = Callable[[str, datetime, datetime], None]  # (phase, now, moment waited for)
RunChecks = Callable[[str], Sequence]  # ("all" | "fast") -> check results with .status, .check, .server, .detail


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
               prepare_ahead: timedelta = timedelta(minutes=1), off_calendar: bool = False) -> FleetResult:
    """Wait for `at`, run the checks on the way, and switch every server at that second; return the fleet result.

    Raises ChecksFailed when a check fails at the lead time (nothing switched), Cancelled on Ctrl-C before
    the rename, and whatever the fleet raises if the switch fails (every server reverted).
    """
    tick = tick or (lambda phase, now, moment: None)
    timeline = plan_timeline(at, lead=lead, prepare_ahead=prepare_ahead)
    refuse_if_passed(at, clock.now())
    planned = _utc(at)
    key = "requested_at" if off_calendar else "planned_at"  # a time typed with --at is not the pre-announced one
    try:
        _wait_until(clock, timeline.checks_at, "checks", tick)
        if run_checks is not None:
            _stop_on_failures(fleet, run_checks("all"), "every check", at, key)
        _wait_until(clock, timeline.prepare_at, "prepare", tick)
        if run_checks is not None:
            _stop_on_failures(fleet, run_checks("fast"), "the fast checks", at, key)
    except KeyboardInterrupt:
        fleet.record("go-live", "cancelled", detail="Ctrl-C before the switch", extra={key: planned})
        raise Cancelled("go-live cancelled before the switch (Ctrl-C); nothing was switched",
                        hint="run: invoke go-live again before the scheduled time") from None

    journal_extra = {key: planned}

    def wait_for_the_second() -> None:
        try:
            _wait_until(clock, timeline.switch_at, "switch", tick)
        except KeyboardInterrupt:
            fleet.record("go-live", "cancelled", detail="Ctrl-C after prepare, before the switch", extra={key: planned})
            raise Cancelled("go-live cancelled before the switch (Ctrl-C); nothing was switched",
                            hint="run: invoke go-live again before the scheduled time") from None
        journal_extra["switched_at"] = _utc(clock.now())  # read when the go-live event is written, after commit
        tick("commit", clock.now(), timeline.switch_at)  # the countdown must stop saying "nothing is switched yet"

    return fleet.go_live(reason=reason, approve=approve, before_commit=wait_for_the_second, journal_extra=journal_extra)


def _stop_on_failures(fleet: Fleet, results: Sequence, which: str, at: datetime, key: str = "planned_at") -> None:
    """Stop the go-live on any FAIL: servers that did not answer are exit 5 (no override can help), the rest exit 4."""
    failed = failing(results)
    lost = {r.server: r.detail for r in failed if r.check == "reachable"}
    if lost:
        fleet.record("go-live", "refused", detail=f"{which} before {at:%H:%M}: {', '.join(lost)} did not answer",
                     extra={key: _utc(at), "unreachable": sorted(lost)})
        raise _servers_down(lost, f"go-live stopped at {which} before {at:%H:%M}")
    if failed:
        names = ", ".join(sorted({f"{r.check} on {r.server}" for r in failed}))
        first = failed[0]
        fleet.record("go-live", "stopped", detail=f"{which} before {at:%H:%M}: {names}",
                     extra={key: _utc(at), "failed_checks": [r.check for r in failed]})
        raise ChecksFailed(
            f"go-live stopped: {names} failed ({first.detail}); nothing was switched",
            hint="fix it, or override with --override CHECK --reason TEXT; see: invoke runbook go-live",
        )


def _servers_down(lost: dict[str, str], doing: str) -> HostUnreachable:
    """One error for servers that did not answer, one line per server, pointing at the server-failure runbook."""
    lines = "".join(f"\n  {server}: {detail}" for server, detail in sorted(lost.items()))
    count = f"{len(lost)} servers" if len(lost) > 1 else "1 server"
    return HostUnreachable(", ".join(sorted(lost)), f"{doing}: {count} did not answer, so nothing was switched and "
                           f"no check override can help{lines}", hint="see: invoke runbook server-failure")


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
                          announce: Callable[[datetime, dict | None, datetime], None] | None = None) -> FleetResult:
    """Find when the staged release is due, show the plan once, then wait and switch at that second.

    The plan is approved before the wait, never at T-1 min when nobody may be looking.
    """
    settings = fleet.environment.go_live
    try:
        plans = fleet.plan_go_live()
    except HostUnreachable as error:  # journaled, so the breach report can say the servers were down
        fleet.record("go-live", "refused", detail=error.what, extra={"unreachable": sorted(fleet.unreachable)})
        raise
    off_calendar = at is not None
    if at is None:
        manifest = fleet.read_manifest(next(iter(plans.values())).before.staging)
        at = next_publication_time(fleet.environment, manifest.publications, clock.now()).at
    refuse_if_passed(at, clock.now())
    if approve is not None and not approve("go-live", plans):
        raise Cancelled("go-live cancelled; nothing was changed", hint="pass --yes to go ahead without asking")
    if announce is not None:  # the last moment to say no is before the servers are prepared
        decide_by = at - timedelta(seconds=settings.prepare_seconds)
        announce(at, last_rehearsal(fleet.read_history()), decide_by if decide_by > clock.now() else None)
    return go_live_at(fleet, at=at, clock=clock, run_checks=run_checks, tick=tick, reason=reason,
                      lead=timedelta(minutes=settings.lead_minutes), prepare_ahead=timedelta(seconds=settings.prepare_seconds),
                      off_calendar=off_calendar)


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


def go_live_command(fleet: Fleet, *, clock: Clock, now: bool = False, at: str | None = None, force: bool = False,
                    overrides: Sequence[str] = (), reason: str | None = None, approve: Approve | None = None,
                    tick: Tick | None = None, announce=None, show_checks=None) -> FleetResult:
    """What `invoke go-live` does: the scheduled switch by default, or --now / --at within the environment's rules.

    Every check runs first and a FAIL stops the go-live unless it is overridden with a reason, which is
    journaled. --now and --at publish off the calendar, so outside the sandbox they need --force --reason.
    """
    from releaser.checks import Limits, apply_overrides, run_checks

    environment = fleet.environment
    if overrides and not reason:
        raise UsageError("--override needs --reason TEXT", hint="say why the failing check is acceptable; it is journaled")
    if (now or at) and not environment.allow_go_live_now and not (force and reason):
        raise PlanRefused(f"{environment.name} does not allow --now or --at: it would publish off the calendar",
                          hint="add --force --reason TEXT to publish early or late on purpose (it is journaled)")
    if now and at:
        raise UsageError("--now and --at do not go together", hint="pick one")
    zone = environment_zone(environment)
    moment = parse_at(at, zone=zone, now=clock.now()) if at else None
    accepted = {name: reason or "" for name in overrides}

    def checks(which: str) -> list:
        wanted = FAST_CHECKS if which == "fast" else NOW_CHECKS if now else None
        results = run_checks(fleet, Limits(environment, at=moment, actor=fleet.actor), now=clock.now(), only=wanted)
        results = apply_overrides(results, accepted)
        if show_checks is not None:
            show_checks(which, results)
        return results

    if accepted:
        fleet.record("override", "done", reason=reason, extra={"checks": sorted(accepted)})
    if not now:
        return run_scheduled_go_live(fleet, clock=clock, at=moment, run_checks=checks, tick=tick, reason=reason,
                                     approve=approve, announce=announce)
    _stop_on_failures(fleet, checks("all"), "every check", clock.now(), "requested_at")
    extra = {"forced": True} if force else {}
    return fleet.go_live(reason=reason, approve=approve, journal_extra={**extra, "switched_at": _utc(clock.now())})


def breach_report_for(fleet: Fleet, release_id: str, *, scheduled_text: str | None = None, today=None,
                      form: str = "markdown") -> str:
    """Draft the breach report of a release from every server's journal and the environment's metadata.

    `form` is "markdown", "html" (a printable page with the timeline picture) or "svg" (the picture alone).
    """
    from releaser.breach import gather_breach_facts, render_breach_report

    environment = fleet.environment
    history = fleet.read_history()
    zone = environment_zone(environment)
    clock_now = fleet.clock.now()
    scheduled = _scheduled_time(environment, release_id, history, scheduled_text, zone, clock_now, fleet)
    facts = gather_breach_facts(release_id, scheduled.astimezone(zone), history)
    publication = next((p for p in environment.publications), None)
    text = render_breach_report(
        facts, metadata=environment.breach.model_dump(),
        publication=(publication.title or publication.name) if publication else environment.name,
        today=today or clock_now.astimezone(zone).date(),
    )
    if form == "markdown":
        return text
    from releaser.breach_html import render_breach_html, render_timeline_svg

    return render_breach_html(text, facts) if form == "html" else render_timeline_svg(facts)


def _scheduled_time(environment, release_id, history, scheduled_text, zone, clock_now, fleet) -> datetime:
    if scheduled_text:
        return parse_at(scheduled_text, zone=zone, now=clock_now, flag="--scheduled")
    planned = [e["planned_at"] for e in history
               if e.get("planned_at") and release_id in (e.get("releases") or {}).values()]
    if planned:
        return datetime.fromisoformat(planned[0].replace("Z", "+00:00"))
    attempts = [e for e in history if e.get("action") == "go-live" and release_id in (e.get("releases") or {}).values()]
    if not attempts:
        raise PlanRefused(f"the journal has no go-live of {release_id}", hint="check the release id with: invoke history")
    first_attempt = datetime.fromisoformat(attempts[0]["at"].replace("Z", "+00:00"))
    manifest = fleet.read_manifest(release_id)
    release = next_publication_time(environment, manifest.publications, first_attempt - timedelta(hours=12))
    return release.at
