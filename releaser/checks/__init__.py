"""Pre-release checks: each one reads facts from every server and judges them PASS, WARN or FAIL.

A check is a module with a `NAME` (what `invoke check` shows), a `gather(fleet, view, limits)` that picks
its facts from the view (or asks over HTTP), and a pure `judge(facts, limits, now)` that returns
CheckResults, so most of a check is tested without a server. `run_checks` first reads every server's facts
once, in one round trip each (releaser.facts: slots, disk, lock, clock, the release under check and, for the
checks that need them, its checksums and configuration files), then runs every check's gather in parallel
and judges. A check that needs sums verified says so in `VERIFY` ("staged", "live"), one that reads the
configuration files with `CONFIG = True`, and the one that reads the latest rehearsal with `REHEARSAL = True`.
A check that asks over HTTP while the facts are read (`USES_VIEW = False`) and compares its answers with them
has `join(gathered, view)`.

CHECKS is the order the table shows: can we reach the servers, is there room, is the right release staged,
is there something to roll back to, does the public see today's live, does the database hold the same
releases, does staging work, does it match live, is it private, is the way clear, is the data in on time, is
it the day, are the people there, was it rehearsed. A new check is a module and its place in CHECKS, and also its name in the fixed order of
tests/core/test_checks_runner.py and in the set of tests/shell/test_checks_local.py, a row in README's check
table and its name in the go-live runbook's failing-check table (tests/core/test_docs_true.py checks both).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from releaser.bundle import Manifest
from releaser.calendar import next_release
from releaser.config import Environment
from releaser.datasets import DataRecord, parse_records
from releaser.errors import ReleaserError, UsageError
from releaser.facts import ServerFacts, facts_argv, parse_facts

if TYPE_CHECKING:  # checks read servers through the fleet they are handed; they never build one
    from releaser.fleet import Fleet

STATUSES = ("PASS", "WARN", "FAIL")
ALL = "all"  # the server column of a verdict about the whole fleet or the environment


@dataclass(frozen=True)
class CheckResult:
    """One verdict: which check, on which server ("all" for the fleet), PASS/WARN/FAIL and a one-line detail."""

    check: str
    server: str
    status: str
    detail: str

    @property
    def named(self) -> str:
        """How a message names this verdict: `staged on web-2`, or the check alone for one about the whole fleet."""
        return self.check if self.server == ALL else f"{self.check} on {self.server}"

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")


@dataclass(frozen=True)
class Limits:
    """What a check run judges against: the environment's rules, the release it expects, when, and who runs it."""

    environment: Environment
    release: str | None = None  # --release: the release id staging must hold (default: whatever it holds)
    at: datetime | None = None  # --at: the planned go-live moment (default: the next scheduled release)
    actor: str = ""


@dataclass(frozen=True)
class Unreadable:
    """A server whose facts could not be read, and why; every check judges it FAIL."""

    reason: str


@dataclass(frozen=True)
class ServerView:
    """One server's slots, and the release under check as found there (file texts are '' when absent)."""

    server: str
    live: str | None = None
    backup: str | None = None
    staging: str | None = None
    release: str | None = None
    on_disk: bool = False
    sums: str = ""
    manifest: str = ""
    records: str = ""
    error: str | None = None
    facts: ServerFacts | None = None  # everything else read in the same round trip (None: not read)
    reason: str = ""  # why the server could not be read, as the checks other than staged say it
    local_before: float = 0.0  # this machine's clock just before and just after the round trip
    local_after: float = 0.0


@dataclass(frozen=True)
class ReleaseView:
    """The release under check as the fleet sees it: per server, and the manifest and records of the reference server."""

    servers: Mapping[str, ServerView]
    release: str | None = None
    manifest: Manifest | None = None
    records: Mapping[str, DataRecord] = field(default_factory=dict)
    sums: str = ""
    due: datetime | None = None
    problem: str | None = None  # why the release could not be read: nothing staged, a bad manifest, ...

    @property
    def publications(self) -> tuple[str, ...]:
        """The publications the release carries (none when its manifest is unknown)."""
        return tuple(self.manifest.publications) if self.manifest else ()


def check_names() -> tuple[str, ...]:
    """The names of every check, in the order they run and show."""
    return tuple(module.NAME for module in CHECKS)


def select_checks(only: str | Sequence[str] | None) -> list:
    """Return the check modules to run: all, or those named (comma-separated or a list). Raises on unknown names."""
    if not only:
        return list(CHECKS)
    wanted = [name.strip() for name in (only.split(",") if isinstance(only, str) else only) if name.strip()]
    unknown = [name for name in wanted if name not in check_names()]
    if unknown:
        raise UsageError(f"unknown check {unknown[0]!r}", hint=f"checks are: {', '.join(check_names())}")
    return [module for module in CHECKS if module.NAME in wanted]


@dataclass(frozen=True)
class CheckRun:
    """One run of the checks: the release it looked at, when that release is due, and every result in table order."""

    release: str | None
    due: datetime | None
    results: tuple[CheckResult, ...]

    @property
    def failed(self) -> bool:
        """Say whether any result is FAIL."""
        return has_failures(self.results)


def run_checks(fleet: Fleet, limits: Limits, *, now: datetime, only: str | Sequence[str] | None = None) -> list[CheckResult]:
    """Run the checks (all, or `only`) on every server in parallel and return their results in table order."""
    return list(check_release(fleet, limits, now=now, only=only).results)


def check_release(fleet: Fleet, limits: Limits, *, now: datetime, only: str | Sequence[str] | None = None) -> CheckRun:
    """Run the checks like run_checks, and also say which release they looked at and when it is due."""
    modules = select_checks(only)
    verify = sorted({what for module in modules for what in getattr(module, "VERIFY", ())})
    config = limits.environment.config_parity.files if any(getattr(m, "CONFIG", False) for m in modules) else ()
    rehearsal = any(getattr(module, "REHEARSAL", False) for module in modules)
    # the servers' facts are asked for first; checks that ask only over HTTP (USES_VIEW = False) start at once
    # beside them, on threads of their own, so the facts never queue behind the HTTP requests
    with ThreadPoolExecutor(max_workers=len(modules) + 1, thread_name_prefix="check") as pool:
        asked = []  # after Ctrl-C, the command says it waits for these and lets each end (every one has a deadline)
        try:
            reading = pool.submit(read_view, fleet, limits, now, verify=verify, config=config, rehearsal=rehearsal)
            asked.append(reading)
            early = {module: pool.submit(module.gather, fleet, None, limits)
                     for module in modules if not getattr(module, "USES_VIEW", True)}
            asked += early.values()
            view = reading.result()
            gathered = {module: early[module] if module in early else pool.submit(module.gather, fleet, view, limits)
                        for module in modules}
            asked += gathered.values()
            batches = [module.judge(_joined(module, gathered[module].result(), view), limits, now) for module in modules]
        except KeyboardInterrupt:
            fleet.group.stop_at_the_next_step(asked)
            raise
    return CheckRun(view.release, view.due, tuple(result for batch in batches for result in batch))


def _joined(module, gathered, view: ReleaseView):
    """An early check's HTTP answers with the servers' facts added, for a check that compares the two (`join`)."""
    join = getattr(module, "join", None)
    return join(gathered, view) if join is not None else gathered


def parse_moment(text: str, timezone_name: str, *, now: datetime | None = None, flag: str = "--at") -> datetime:
    """Read --at with the one parser every --at uses (calendar.parse_time_flag); 'HH:MM' needs `now`."""
    from releaser.calendar import parse_time_flag

    zone = ZoneInfo(timezone_name)
    return parse_time_flag(text, zone=zone, now=now or datetime(2000, 1, 1, tzinfo=zone), flag=flag)


def has_failures(results: Sequence[CheckResult]) -> bool:
    """Say whether any result is FAIL, which stops a go-live."""
    return any(result.status == "FAIL" for result in results)


def summarise(results: Sequence[CheckResult]) -> str:
    """Say in a line how a run went: "2 FAIL (smoke on web-1, deadline), 1 WARN, 30 PASS"."""
    counts = Counter(result.status for result in results)
    failed = [f"{r.check}" + (f" on {r.server}" if r.server != ALL else "") for r in results if r.status == "FAIL"]
    shown = ", ".join(failed[:4]) + (f", and {len(failed) - 4} more" if len(failed) > 4 else "")
    parts = [f"{counts['FAIL']} FAIL ({shown})" if failed else "", f"{counts['WARN']} WARN" if counts["WARN"] else "",
             f"{counts['PASS']} PASS"]
    return ", ".join(part for part in parts if part)


def apply_overrides(results: Sequence[CheckResult], overrides: Mapping[str, str]) -> list[CheckResult]:
    """Turn the FAILs of the named checks into WARN, marked "overridden: reason", for a go-live that accepts them.

    Only go-live's `--override CHECK --reason TEXT` uses this; the caller journals the override. Raises
    UsageError (exit 2) for a check name that does not exist or an empty reason, so a typo never waves a FAIL through.
    """
    for name, reason in overrides.items():
        if name not in check_names():
            raise UsageError(f"cannot override unknown check {name!r}", hint=f"checks are: {', '.join(check_names())}")
        if not reason or not reason.strip():
            raise UsageError(f"overriding {name} needs a reason", hint="add --reason TEXT; it is journaled")
    return [
        replace(result, status="WARN", detail=f"overridden: {overrides[result.check].strip()}; {result.detail}")
        if result.status == "FAIL" and result.check in overrides else result
        for result in results
    ]


def results_json(results: Sequence[CheckResult]) -> list[dict]:
    """Return results as plain dicts for --json and the journal."""
    return [{"check": r.check, "server": r.server, "status": r.status, "detail": r.detail} for r in results]


# ---- reading the release under check ----

def read_view(fleet: Fleet, limits: Limits, now: datetime, *, verify: Sequence[str] = (),
              config: Sequence[str] = (), rehearsal: bool = False) -> ReleaseView:
    """Read every server's facts and the release under check (its sums, manifest, data records) in one round trip.

    `verify` ("staged", "live") adds `sha256sum -c` of those releases; `config` adds config-parity's files,
    read from the release under check and from live; `rehearsal` the server's latest rehearsal.
    """
    def read(name: str) -> ServerView:
        release = limits.release
        paths = [f"releases/{release}/{file}" for file in config] if release else [f"staging/{file}" for file in config]
        paths += [f"live/{file}" for file in config]
        before = time.time()
        done = fleet.hosts[name].run(facts_argv(fleet.root(name), release, verify=verify, config=paths,
                                                rehearsal=rehearsal))
        after = time.time()
        if not done.ok:
            return ServerView(name, error=f"cannot read its slots: {done.reason()}", reason=done.reason())
        return replace(server_view(name, parse_facts(done.stdout, paths)), local_before=before, local_after=after)

    outcomes = gather_each(fleet, read)
    servers = {name: outcome if isinstance(outcome, ServerView) else ServerView(name, error=outcome.reason,
                                                                                 reason=outcome.reason)
               for name, outcome in outcomes.items()}
    return view_from_servers(servers, limits, now)


def server_view(server: str, facts: ServerFacts) -> ServerView:
    """One server's view of the release under check, from its facts."""
    if facts.noroot:
        return ServerView(server, facts=facts)
    return ServerView(server, facts.slots.get("live"), facts.slots.get("backup"), facts.slots.get("staging"),
                      facts.release, facts.on_disk, facts.files.get(".releaser-sha256sums", ""),
                      facts.files.get("manifest.json", ""), facts.files.get(".releaser-datasets.json", ""), facts=facts)


def parse_server_view(server: str, text: str) -> ServerView:
    """Parse the facts script's output for one server into its view."""
    return server_view(server, parse_facts(text))


def server_facts(view: ReleaseView, server: str) -> ServerFacts | Unreadable:
    """One server's facts from the view, or why they could not be read (what every check then says)."""
    found = view.servers.get(server)
    if found is None:
        return Unreadable("not read")
    if found.facts is None:
        return Unreadable(found.reason or found.error or "not read")
    return found.facts


def view_from_servers(servers: Mapping[str, ServerView], limits: Limits, now: datetime) -> ReleaseView:
    """Decide which release is under check and read its manifest and records from the first server that has it."""
    readable = [view for view in servers.values() if view.error is None]
    releases = Counter(view.release for view in readable if view.release)
    if not releases:
        problem = "nothing is staged" if limits.release is None else f"release {limits.release} is not on any server"
        return ReleaseView(servers, problem=problem)
    release = releases.most_common(1)[0][0]
    reference = next((v for v in readable if v.release == release and v.on_disk), None)
    if reference is None:
        return ReleaseView(servers, release, problem=f"release {release} is not on any server")
    problem = None
    try:
        manifest = Manifest.model_validate_json(reference.manifest) if reference.manifest else None
    except ValidationError as error:
        manifest, problem = None, f"{release}'s manifest.json on {reference.server} is unreadable: {error.errors()[0]['msg']}"
    if manifest is None and problem is None:
        problem = f"{release} has no manifest.json on {reference.server}"
    try:
        records = parse_records(reference.records)
    except (ValueError, KeyError, TypeError) as error:
        records, problem = {}, problem or f"{release}'s data records on {reference.server} are unreadable: {error}"
    view = ReleaseView(servers, release, manifest, records, reference.sums, problem=problem)
    return replace(view, due=due_moment(limits, view.publications, now))


def due_moment(limits: Limits, publications: Sequence[str], now: datetime) -> datetime | None:
    """When the release goes live: --at if given, else the earliest next scheduled release of its publications."""
    if limits.at is not None:
        return limits.at
    moments = []
    for name in publications:
        publication = next((p for p in limits.environment.publications if p.name == name), None)
        release = next_release(publication.schedule(), now) if publication else None
        if release is not None:
            moments.append(release.at)
    return min(moments) if moments else None


def due_in_zone(moment: datetime, timezone_name: str) -> datetime:
    """Show a moment in a publication's zone (release days are judged on the local calendar)."""
    return moment.astimezone(ZoneInfo(timezone_name))


def gather_each(fleet: Fleet, work: Callable[[str], object]) -> dict[str, object]:
    """Run work(server) on every server in parallel; an unreachable server or a ReleaserError gives Unreadable."""
    names = list(fleet.hosts)
    lost = unreachable(fleet, names)
    reachable = [name for name in names if name not in lost]
    outcomes = fleet.each(work, reachable) if reachable else {}
    result: dict[str, object] = {}
    for name in names:
        if name in lost:
            result[name] = lost[name]
        elif isinstance(outcomes.get(name), ReleaserError):
            result[name] = Unreadable(_short(str(outcomes[name]), name))
        else:
            result[name] = outcomes[name]
    return result


def unreachable(fleet: Fleet, names: Sequence[str]) -> dict[str, Unreadable]:
    """The servers among `names` this command could not reach, each with why (what every check then says)."""
    return {name: Unreadable(_short(str(fleet.unreachable[name]), name)) for name in names if name in fleet.unreachable}


def not_checked(check: str, server: str, facts: Unreadable) -> CheckResult:
    """The FAIL every check gives for a server it could not read."""
    return CheckResult(check, server, "FAIL", f"not checked: {facts.reason}")


def sums_digest(text: str) -> str:
    """The sha256 of a sums file, which names a release's exact content; '' when there is none."""
    return hashlib.sha256(text.encode()).hexdigest() if text else ""


def _short(message: str, server: str) -> str:
    return message.removeprefix(f"{server}: ").split("; ")[0]


# The registry. Imported last: each check module imports the types above from this package.
from releaser.checks import (  # noqa: E402
    config_parity,
    data_slots,
    deadline,
    disk,
    embargo,
    lock,
    people,
    rehearsal,
    reachable,
    rollback_target,
    serving,
    smoke,
    staged,
    window,
)

CHECKS = (reachable, disk, staged, rollback_target, serving, data_slots, smoke, config_parity, embargo, lock, deadline,
          window, people, rehearsal)

