"""Everything releaser prints: tables and JSON on stdout, progress and messages on stderr.

Functions here take results and render them; they never fetch anything. Every status is a word (PASS,
FAIL, NO BACKUP, ...) with colour only as a second signal, so pipes and NO_COLOR lose nothing.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import date, datetime, timezone

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from releaser.invocation import for_this_run

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ui renders what the fleet returns but never calls it
    from releaser.dataslots import DataStatus
    from releaser.fleet import FleetResult, ServerReport
    from releaser.slots import Plan
    from releaser.web import Probe

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
_live_displays: list[Live] = []  # progress lines and countdowns on screen now; a question stops them first

_WORD_STYLES = {"PASS": "bold green", "OK": "bold green", "WARN": "bold yellow", "FAIL": "bold red",
                "NO BACKUP": "bold red", "LOCKED": "bold yellow", "DOWN": "bold red", "SKIP": "dim",
                "STALE": "bold red", "UNKNOWN": "bold yellow"}


def word(text: str) -> Text:
    """Render a status word with its colour (a word read from a journal is data: shown as plain() shows it)."""
    return Text(visible(text), style=_WORD_STYLES.get(text, ""))


def plain(value, style: str = "") -> Text:
    """Data as Text, printed as it is: rich would read a str's brackets ([people], [/oops]) as markup.

    Terminal control characters (ESC, BEL, C1 codes...) in the data are shown escaped (\\x1b), so a lock
    reason or a journal line cannot clear the screen or rewrite what is on it.
    """
    if isinstance(value, Text):
        return value
    return Text(visible("" if value is None else str(value)), style=style)


def visible(text: str) -> str:
    """The text with every control character but tab written as an escape (\\x1b, \\x07, \\n).

    A newline too: every message is one line, and a value with a newline in it (a path typed on the command
    line, a hand-edited journal line) printed raw would forge a line of its own, "FAKE: all good".

    Also the bidirectional controls (U+202E would show the line in another order than it is written), the line
    and paragraph separators, and the bytes that were not UTF-8 (Python's surrogates: printed, \\x9b is a raw
    escape-sequence byte). Journal lines and files on a server reach the terminal only through here.
    """
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape", "backslashreplace").decode(), text)


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _add_row(table: Table, *cells) -> None:
    """Add a table row whose every cell is data (see plain)."""
    table.add_row(*(plain(cell) for cell in cells))


def say(message: str | Text) -> None:
    """Print a message for the person at the terminal (stderr, so --json stays clean).

    A str is printed as it is, never read as markup: messages carry paths, reasons and ids. Style with Text.
    Never broken into lines by releaser (the terminal wraps it): a command in it must paste as one line.
    """
    err.print(plain(for_this_run(message) if isinstance(message, str) else message), soft_wrap=True)


def warn(message: str) -> None:
    """Print a warning line, never broken into lines (see say)."""
    err.print(Text("WARNING: ", style="bold yellow") + plain(for_this_run(message)), soft_wrap=True)


def _say_word(status: str, rest: str) -> None:
    """A status word in its colour and the line after it, never broken into lines (see say)."""
    err.print(word(status) + plain(for_this_run(rest)), soft_wrap=True)


def show_off_calendar(off, command: str) -> None:
    """Warn that a forced publication went live off its slot, that this is a breach, and which report to draft."""
    from releaser.breach import off_calendar_lines

    for line in off_calendar_lines(release_id=off.release, publication=off.publication, slot=off.slot,
                                   published_at=off.published_at, minutes=off.minutes, command=command):
        warn(line)


def print_json(data) -> None:
    """Print data as JSON on stdout and nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")


def print_table(table: Table, *, console: Console | None = None) -> None:
    """Print a table whole; where it cannot fit the width (80 columns, or a pipe), print it as a list instead.

    No value is ever cut: a release id, URL or path shortened to `2026-12-p…` would say something untrue.
    """
    console = console or out
    for column in table.columns:
        column.overflow = "fold"  # in the table layout a long value wraps onto more lines, never an ellipsis
        column.no_wrap = False
    if _natural_width(table, console) <= console.width:
        console.print(table)
        return
    _print_as_list(table, console)


def _natural_width(table: Table, console: Console) -> int:
    """How wide the table is with every cell on one line."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update(width=10_000), table).maximum


def _print_as_list(table: Table, console: Console) -> None:
    """One block per row: the first cell as a heading, then 'column: value' for each other cell that is set."""
    if table.title:
        console.print(plain(table.title, style="bold"))
    headers = [str(column.header) for column in table.columns]
    cells = [list(column.cells) for column in table.columns]
    for row in range(table.row_count):
        values = [cells[i][row] if row < len(cells[i]) else "" for i in range(len(headers))]
        if str(values[0]).strip():  # a row continuing the one above (a plan's second slot) has no heading
            console.print(Text(f"{headers[0]}: ") + plain(values[0]), soft_wrap=True)
        for header, value in zip(headers[1:], values[1:]):
            if str(value).strip():
                console.print(Text(f"  {header}: ") + plain(value), soft_wrap=True)


def show_status(environment: str, reports: list[ServerReport], *, as_json: bool = False,
                host_keys_checked: bool = True, min_free_bytes: int = 0, data: DataStatus | None = None,
                of_servers: int | None = None) -> None:
    """Show each server's live, backup and staging release, free disk, lock and live health.

    A server with less free disk than `min_free_bytes` (what the disk check asks for) is warned about.
    With `data` (the environment has [database]) one more row shows the data slots and whether they agree.
    `of_servers`: how many servers the environment has, when --hosts shows fewer, so the title says so.
    """
    subset = of_servers is not None and of_servers > len(reports)
    if as_json:
        print_json({"environment": environment, "host_keys_checked": host_keys_checked,
                    **({"servers_in_environment": of_servers} if subset else {}),
                    "servers": [_report_json(r) for r in reports], "data": _data_json(data)})
        return
    title = f"releaser status: {environment}"
    if subset:
        title += f" (only {', '.join(r.server for r in reports)}: {len(reports)} of {of_servers} servers, --hosts)"
    table = Table(title=plain(title), title_justify="left")
    for column in ("server", "live", "public sees", "backup", "staging", "on disk", "disk free", "lock", "health"):
        table.add_column(column)
    for report in reports:
        if report.state is None:  # its public URL may still answer: what it serves is shown (SSH is not the web)
            _add_row(table, report.server, word("DOWN"), _public_sees(report), "", "", "", "", "",
                     plain(for_this_run(report.error), style="red"))
            continue
        state = report.state
        backup = Text(state.backup) if state.backup else word("NO BACKUP") if state.live else Text("-")
        lock = (word("LOCKED") + plain(f" {report.lock.owner}" if report.lock else " (unknown owner)")) if report.locked \
            else Text("free")
        if report.health is None:
            health = Text("-")
        else:
            health = word("PASS" if report.health.ok else "FAIL")
            if not report.health.ok:
                health += plain(for_this_run(f" {report.health.detail}"))
        _add_row(table, report.server, state.live or "-", _public_sees(report), backup, state.staging or "-",
                 len(state.on_disk), _bytes(report.free_bytes), lock, health)
    if data is not None:
        _add_data_row(table, data)
    print_table(table)
    show_failed_answers({report.server: report.health for report in reports if report.health and not report.health.ok})
    _show_instances(reports)
    for line in status_warnings(environment, reports, host_keys_checked=host_keys_checked, min_free_bytes=min_free_bytes):
        warn(line)
    if data is not None:
        from releaser.dataslots import pending_problems

        left = set(pending_problems(data.slots)) if data.slots is not None else set()
        for problem in data.problems:  # a transaction left prepared is not a disagreement: said as it is
            warn(f"{'' if problem in left else 'files and data disagree: '}{problem}; see: invoke check --only data-slots"
                 + ("" if problem in left else "; then: invoke runbook rollback (section FILES AND DATA DISAGREE)"))


def status_warnings(environment: str, reports: list[ServerReport], *, host_keys_checked: bool = True,
                    min_free_bytes: int = 0) -> list[str]:
    """The warnings under the status table, each naming the runbook that says what to do about it."""
    lines = [f"{report.server}'s public URL serves {report.health.served.release} while its live link points at "
             f"{report.state.live}: the web server is serving a stale copy; reload it and purge any cache in front; "
             "see: invoke runbook server-failure" for report in reports if _is_stale(report)]
    from releaser.serverstate import servers_by_public_release

    serving = servers_by_public_release(reports)
    if len(serving) > 1:
        lines.append(f"the fleet is MIXED: servers serve {_who_where(serving, 'no release')}; see: invoke runbook "
                     "rollback (section MIXED: it says whether to roll back, or to bring the servers behind in line)")
    lines.extend(_disagreement_lines(reports, one_live=len(serving) <= 1))
    bare = [r.server for r in reports if r.state and r.state.live and not r.state.backup]
    if bare:
        lines.append(f"there is NO BACKUP on {', '.join(bare)}: a rollback is impossible until the next go-live, which "
                     "is still fine to run (it makes today's live the backup); see: invoke runbook rollback "
                     "(section NO BACKUP)")
    for report in reports:
        problem = report.instances.front_problem if report.instances is not None else None
        if problem:
            lines.append(f"{report.server}: {problem}: the public there gets what that link leads to; see: invoke "
                         "runbook server-failure (section STALE)")
        for slot in ("backup", "staging"):
            instance = report.instances.of_slot(slot) if report.instances is not None else None
            if instance is not None and not instance.is_healthy:
                lines.append(f"{report.server}: the {slot} instance of {instance.release} on port {instance.port} "
                             f"{_instance_trouble(instance, slot)}; "
                             f"see: invoke runbook {'rollback' if slot == 'backup' else 'go-live'}")
    lines.extend(_command_lock_lines(reports))
    if not host_keys_checked:
        lines.append(f"host key checking is OFF for {environment} ([ssh] check_host_keys = false): a server could be "
                     "impersonated; turn it back on once known_hosts is filled; see: invoke runbook server-failure")
    short = [r.server for r in reports if r.free_bytes is not None and r.free_bytes < min_free_bytes]
    if short:
        lines.append(f"{', '.join(short)} {'has' if len(short) == 1 else 'have'} less than {_bytes(min_free_bytes)} "
                     "free: a stage or go-live there may fail; check with: invoke check --only disk; see: invoke "
                     "runbook server-failure")
    rootless = [r.server for r in reports if r.no_root]
    if rootless:
        lines.append(f"{', '.join(rootless)} {'has' if len(rootless) == 1 else 'have'} no app root (the [[servers]] root "
                     "of the environment file is not there): a server never deployed to, or a mistyped root; the "
                     "first deploy --stage makes it")
    down = [r.server for r in reports if r.state is None]
    if down:
        serving = [f"{r.server}'s public URL serves {r.health.served.release}" for r in reports if r.state is None
                   and r.health and r.health.served and r.health.served.release]
        also = f" ({'; '.join(serving)})" if serving else ""
        lines.append(f"{', '.join(down)} did not answer{also}; see: invoke runbook server-failure")
    return lines


def _disagreement_lines(reports: list[ServerReport], *, one_live: bool) -> list[str]:
    """Servers apart on staging (go-live refuses) or, while live agrees, on backup (rollback refuses): said by status
    before the command is refused, with where each stands."""
    read = [r for r in reports if r.state is not None]
    lines = []
    for slot, refused, what in (("staging", True, "go-live will refuse until they agree: stage the release again "
                                                  "(invoke deploy --stage); see: invoke runbook go-live"),
                                ("backup", one_live, "a rollback will refuse until they agree; see: invoke runbook "
                                                     "rollback (section MIXED)")):
        by_release: dict[str | None, list[str]] = {}
        for report in read:
            by_release.setdefault(report.state.slot(slot), []).append(report.server)
        if refused and len(by_release) > 1:
            lines.append(f"servers disagree on {slot}: {_who_where(by_release, 'none')}; {what}")
    return lines


def _who_where(by_release: Mapping[str | None, list[str]], nothing: str) -> str:
    """`r1 on web-1, web-3; r2 on web-2`: most servers first, each list as people count them."""
    from releaser.order import counted

    return "; ".join(f"{release or nothing} on {', '.join(counted(servers))}"
                     for release, servers in sorted(by_release.items(), key=lambda item: (-len(item[1]), str(item[0]))))


def _command_lock_lines(reports: list[ServerReport]) -> list[str]:
    """A lock seen from outside: a command's (running now, or it failed and left the lock), or one taken with
    `invoke lock`, with who took it, why and until when."""
    held: dict[str, list[str]] = {}
    about: dict[str, object] = {}
    for report in reports:
        if report.lock is not None:
            held.setdefault(report.lock.token, []).append(report.server)
            about[report.lock.token] = report.lock
    lines = []
    for token, servers in held.items():
        lock = about[token]
        utc = timezone.utc
        until = f", until {lock.expires.astimezone(utc):%H:%M} UTC" if lock.expires else ""
        if lock.kind == "manual":  # `invoke lock`: the runbooks send whoever it refuses here for who and why
            refused = "until then" if until else "until it is freed"
            until = until or ", with no expiry"
            lines.append(f"{', '.join(servers)} {'is' if len(servers) == 1 else 'are'} locked by hand by {lock.owner} "
                         f"since {lock.since.astimezone(utc):%H:%M:%S} UTC{until} (reason: \"{lock.reason}\"): "
                         f"everyone else's deploy, go-live, rollback, rehearse, prune and data-* are refused {refused}; "
                         f"ask {lock.owner}, or free it with: invoke unlock --reason TEXT; see: invoke runbook rollback")
            continue
        running = f"that command ({lock.process}: see there whether it still runs)" if lock.process else "that command"
        lines.append(f"{', '.join(servers)} {'is' if len(servers) == 1 else 'are'} locked by {lock.owner}'s "
                     f"{lock.reason} since {lock.since.astimezone(utc):%H:%M:%S} UTC{until}: if {running} is not running "
                     "now, it ended without freeing it; free it with: invoke unlock --reason TEXT; see: invoke runbook rollback")
    return lines


def _instance_trouble(instance, slot: str) -> str:
    """What is wrong with an instance that fails its health path, and what brings it back."""
    if instance.socket is False and instance.health is not None and 200 <= instance.health < 300:
        then = (f"stage {instance.release} again to restart it before the go-live" if slot == "staging" else
                "a rollback restarts it first")
        return f"answers on its port but has no unix socket where the front connects; {then}"
    if slot == "staging":  # a stage of the same release stops an unhealthy staging instance and starts it again
        state = "is not running" if instance.health is None and instance.pid is None else "fails its health path"
        return f"{state}; stage {instance.release} again to restart it before the go-live"
    if instance.health is None and instance.pid is None:
        return "is not running; a rollback starts it again first"
    state = "does not answer" if instance.health is None else f"answers its health path with {instance.health}"
    pid = f" (pid {instance.pid})" if instance.pid else ""
    return f"runs{pid} but {state}; a rollback refuses until it answers: restart it with the application's own command"


def show_plan(title: str, plans: Mapping[str, Plan], *, also: Sequence[str] = ()) -> None:
    """Show what a command is about to change on each server, before it asks to go ahead; `also`: what moves
    with the links (the front, the data), one line each, under the table."""
    table = Table(title=plain(title), title_justify="left")
    for column in ("server", "slot", "from", "to"):
        table.add_column(column)
    groups: dict[tuple, list[str]] = {}  # servers with the very same changes share one set of rows
    for server, plan in plans.items():
        groups.setdefault(_plan_rows(plan), []).append(server)
    for rows, servers in groups.items():
        label = f"all {len(servers)} servers" if len(servers) == len(plans) > 1 else ", ".join(servers)
        for i, row in enumerate(rows):
            _add_row(table, label if i == 0 else "", *row)
    print_table(table, console=err)
    for line in also:
        say(plain(f"with the links: {line}"))
    for note in dict.fromkeys(n for plan in plans.values() for n in plan.notes):
        warn(note)


def show_preview(preview) -> None:
    """Show a dry run: the plan per server, then say plainly that nothing was changed."""
    say(plain(f"dry run of {preview.action}: {preview.headline}", style="bold"))
    if preview.plans:
        show_plan(f"{preview.action} plan", preview.plans, also=preview.also)
    show_preview_lines(preview)
    say("dry run: nothing was changed on any server and nothing was journaled")


def show_preview_lines(preview) -> None:
    """Show what a command would do on each server, one row per server (nothing when it would do nothing)."""
    if not preview.lines:
        return
    table = Table(title=plain(f"{preview.action}, per server"), title_justify="left")
    table.add_column("server", no_wrap=True)
    table.add_column("plan", overflow="fold")  # the lines say "would ..." themselves; unlock shows them before it asks
    for server, line in preview.lines.items():
        _add_row(table, server, line)
    print_table(table, console=err)


def _plan_rows(plan: Plan) -> tuple[tuple[str, str, str], ...]:
    """One server's changes as (slot, from, to) rows."""
    rows = [(change.slot, change.old or "-", change.new or "(removed)") for change in plan.links]
    if plan.unpack:
        rows.append(("releases/", "-", f"{plan.unpack} (upload)"))
    rows += [("releases/", release, "(removed)") for release in plan.removals]
    return tuple(rows) or (("-", "-", "no change"),)


def show_result(result: FleetResult, *, notes: bool = True) -> None:
    """Show per server what a fleet command did, then one summary line (and the plan's notes, unless already shown).

    Its warnings (a server that kept the lock or lacks the journal lines) are always shown.
    """
    table = Table(title=plain(f"{result.action}: {result.previous or '-'} -> {result.release or '-'}"),
                  title_justify="left")
    for column in ("server", "outcome", "detail"):
        table.add_column(column)
    for host in result.results:
        _add_row(table, host.server, word("OK" if host.ok else "FAIL"), for_this_run(host.detail))
    print_table(table)
    show_failed_answers({host.server: host.health for host in result.results if not host.ok and host.health})
    figures = ", ".join(f"{k} {v:.2f}s" for k, v in (result.seconds or {}).items())
    skew = f", rename skew {result.skew * 1000:.0f} ms" if result.skew is not None else ""
    if figures:
        say(plain(f"{figures}{skew}", style="dim"))
    for note in result.notes if notes else ():
        warn(note)
    for warning in result.warnings:
        warn(warning)


BODY_LINE_CHARACTERS = 200  # of one body line shown; a longer one says how many more characters it had


def body_lines(probe: Probe) -> list[str]:
    """The lines that show what a failing GET's body began with, escaped (see visible), each saying how it was cut.

    A body is whatever the server sent: a line holding an escape sequence must not drive the terminal, a very
    long one (minified HTML, a base64 blob) is cut at BODY_LINE_CHARACTERS, and the lines left out are counted.
    """
    lines = []
    for line in probe.body_lines():
        shown, rest = line[:BODY_LINE_CHARACTERS], len(line) - BODY_LINE_CHARACTERS
        lines.append(f"| {visible(shown)}" + (f" ... ({rest} more characters)" if rest > 0 else ""))
    if not lines:
        return ["(the body was empty)"]
    if probe.body_more:
        lines.append(f"... and {probe.body_more} more line{'s' if probe.body_more != 1 else ''}"
                     + (" in its first 64 KiB, and more after that (not read)" if probe.body_cut else ""))
    elif probe.body_cut:
        lines.append("... and more (only its first 64 KiB was read)")
    return lines


def show_failed_answers(probes: Mapping[str, Probe]) -> None:
    """Show per server what the failing GET's body began with: why a health check or verification failed.

    On stderr (messages; --json keeps stdout), one line naming the server and the GET, then the body's first
    lines; a GET nothing answered has no body and shows nothing here (its one line already says so).
    """
    for server, probe in probes.items():
        if probe.ok or probe.status is None:
            continue
        err.print(plain(f"{server}: {for_this_run(probe.detail)}; the body began:"), soft_wrap=True)
        for line in body_lines(probe):
            err.print(plain(f"  {line}", style="dim"), soft_wrap=True)


def show_history(events: list[dict], *, as_json: bool = False) -> None:
    """Show the journal as a timeline, one row per event."""
    from releaser.journal import event_detail

    if as_json:
        print_json(events)
        return
    table = Table(title="history", title_justify="left")
    for column, width in (("at (UTC)", 19), ("action", 8), ("outcome", 7), ("releases", 12), ("actor", 10)):
        table.add_column(column, min_width=width, overflow="fold")
    table.add_column("detail", overflow="fold")
    for event in events:
        releases = " ".join(f"{k}={v}" for k, v in (event.get("releases") or {}).items() if v)
        detail = event_detail(event)
        outcome = event.get("outcome", "")
        _add_row(table, event["at"][:19].replace("T", " "), event.get("action", ""),
                 word({"done": "OK", "failed": "FAIL", "reverted": "FAIL", "mixed": "FAIL"}.get(outcome, outcome.upper())),
                 releases, event.get("actor", ""), detail)
    print_table(table)


def confirm(question: str, *, assume_yes: bool) -> bool:
    """Ask a yes/no question on the terminal; without a terminal only --yes may answer.

    Progress lines and countdowns on screen are stopped first and started again after the answer: a
    live display redraws over the question, so the screen would show "waiting" and nothing asking.
    """
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        return False
    from rich.prompt import Confirm

    paused = [live for live in _live_displays if live.is_started]
    for live in reversed(paused):
        live.stop()
    try:
        return Confirm.ask(plain(question), console=err, default=False)
    finally:
        for live in paused:
            live.start()


@contextmanager
def progress(servers: list[str], verb: str) -> Iterator:
    """Show one transient line per server while long work runs; yields a callback(server, message)."""
    lines = {server: "waiting" for server in servers}
    lock = threading.Lock()

    def render() -> Table:
        return progress_table(lines, time.monotonic(), err.width)

    if not err.is_terminal:
        yield lambda server, message: None
        return
    class Lines:  # rendered by Live's own refresh (10 a second), not on every update: an upload updates per chunk
        def __rich__(self) -> Table:
            with lock:
                return render()

    with _shown_live(Live(Lines(), console=err, transient=True, refresh_per_second=10)):
        def update(server: str, message: str) -> None:
            with lock:
                lines[server] = message
        yield update


def progress_table(lines: Mapping[str, str], now: float, width: int) -> Table:
    """The progress lines, one per server, each fitted to `width` columns: the bar shrinks, then goes, before a word.

    A line that wrapped took two rows per server, and a Live display taller than the terminal is cut at the bottom
    (20 servers at 80 columns showed neither the last servers nor any time left).
    """
    table = Table.grid(padding=(0, 2))
    room = width - max((len(server) for server in lines), default=0) - 2
    for server, message in lines.items():
        if getattr(message, "total", None):  # a shipping.Transfer: bytes so far, a bar, the time left
            table.add_row(Text(server, style="bold"), _transfer_line(message, now, room))
        else:
            table.add_row(Text(server, style="bold"), Text(message))
    return table


BAR_WIDTH = 30  # an upload's bar when the terminal has room; narrower down to BAR_MIN, then none
BAR_MIN = 8


def _transfer_line(transfer, now: float, room: int) -> Table | Text:
    """One upload's bar with its bytes, rate and time left, e.g. `━━━━━╸━━━ 120.0 MB of 300.0 MB, 85 MB/s, 2 s left`,
    in at most `room` columns where the words fit (the bar narrows, or is left out)."""
    from rich.progress_bar import ProgressBar

    left = transfer.seconds_left(now)
    elapsed = now - transfer.started
    rate = f", {transfer.done / elapsed / 1_000_000:.0f} MB/s" if elapsed > 0 and transfer.done else ""
    when = "done" if transfer.done >= transfer.total else (f"{left:.0f} s left" if left is not None else "starting")
    words = f"{transfer}{rate}, {when}"
    bar = min(BAR_WIDTH, room - len(words) - 1)
    if bar < BAR_MIN:
        return Text(words)
    line = Table.grid(padding=(0, 1))
    line.add_row(ProgressBar(total=transfer.total, completed=transfer.done, width=bar), Text(words))
    return line


@contextmanager
def _shown_live(live: Live) -> Iterator[Live]:
    """Show a live display for the block, registered so that a question can stop it (see confirm)."""
    with live:
        _live_displays.append(live)
        try:
            yield live
        finally:
            _live_displays.remove(live)


def narrate(step: str, text: str) -> None:
    """Print one step of the demo's story (releaser's own text: its lines stay lines)."""
    err.rule(plain(step, style="bold cyan"), align="left")
    err.print(Text(text))


def _show_instances(reports: list[ServerReport]) -> None:
    """One row per application instance (when the environment runs instances): slot, port, pid, health, release."""
    rows = [(report.server, instance) for report in reports if report.instances is not None
            for instance in report.instances.in_slot_order()]
    if not rows:
        return
    table = Table(title=plain("instances"), title_justify="left")
    by_socket = any(instance.front is not None for _, instance in rows)  # the socket way: where the front's link points
    for column in ("server", "slot", "port", "pid", "health", "release", "it reports", *(("front",) if by_socket else ())):
        table.add_column(column)
    for server, instance in rows:
        why = "no socket" if instance.socket is False and instance.health else instance.health or "no answer"
        health = word("PASS") if instance.is_healthy else word("FAIL") + plain(f" {why}")
        front = ("here" if instance.front else "-",) if by_socket else ()
        _add_row(table, server, instance.slot or "retired", instance.port, instance.pid or "not running", health,
                 instance.release, instance.reports or "-", *front)
    print_table(table)


def _add_data_row(table: Table, data: DataStatus) -> None:
    """The database's row under the servers': its data slots, the schemas holding a release, and agreement."""
    label = f"database ({data.schema})"
    if data.slots is None:
        _add_row(table, label, word("DOWN"), "-", "", "", "", "-", "-", plain(data.error, style="red"))
        return
    slots = data.slots
    backup = Text(slots.backup) if slots.backup else word("NO BACKUP") if slots.live else Text("-")
    agreement = word("PASS") + plain(" agrees with the servers") if data.agrees else \
        word("FAIL" if data.live_differs else "WARN") + plain(
            f" {len(data.problems)} {'disagreement' if len(data.problems) == 1 else 'disagreements'}, below")
    held = len({slots.live, slots.backup, slots.staging} - {None}) + len(slots.retired)  # schemas holding a release
    _add_row(table, label, slots.live or "-", "-", backup, slots.staging or "-", held, "-", "-", agreement)


def _data_json(data: DataStatus | None) -> dict | None:
    if data is None:
        return None
    slots = data.slots
    return {"schema": data.schema, "answered": slots is not None,
            "live": slots.live if slots else None, "backup": slots.backup if slots else None,
            "staging": slots.staging if slots else None, "retired": dict(slots.retired) if slots else {},
            "pending": list(slots.pending) if slots else [], "agrees": data.agrees, "live_differs": data.live_differs,
            "problems": list(data.problems), "error": data.error}


def _instances_json(report: ServerReport) -> list[dict] | None:
    if report.instances is None:
        return None
    return [asdict(instance) for instance in report.instances.instances]


def _front_json(report: ServerReport) -> dict | None:
    """Where the front's link points (the socket way), and what is wrong with that; None without a socket front."""
    if report.instances is None or report.instances.front is None:
        return None
    return {"link": report.instances.front or None, "problem": report.instances.front_problem}


def _public_sees(report: ServerReport) -> Text:
    """The release the live URL's marker names, STALE when it is not the one the live link points at."""
    served = report.health.served if report.health else None
    if served is None:
        return Text("-")
    if served.release is None:
        return word("UNKNOWN") + plain(f" (GET {served.url} {served.problem})")
    return word("STALE") + plain(f" {served.release}") if _is_stale(report) else Text(served.release)


def _is_stale(report: ServerReport) -> bool:
    """Whether the live URL names a release other than the one the live link points at."""
    served = report.health.served if report.health else None
    return bool(served and served.release and report.state and served.release != report.state.live)


def _served_json(report: ServerReport) -> dict | None:
    served = report.health.served if report.health else None
    if served is None:
        return None
    return {"url": served.url, "release": served.release,
            "sums_sha256": (served.marker.sums_sha256 or None) if served.marker else None,  # a header names no digest
            "stale": _is_stale(report), "problem": served.problem or None}


def _report_json(report: ServerReport) -> dict:
    state = report.state
    return {
        "instances": _instances_json(report),
        "front": _front_json(report),
        "server": report.server,
        "live": state.live if state else None,
        "backup": state.backup if state else None,
        "staging": state.staging if state else None,
        "on_disk": sorted(state.on_disk) if state else [],
        "free_bytes": report.free_bytes,
        "lock": asdict(report.lock) if report.lock else (True if report.locked else None),
        "health": _health_json(report.health) if report.health else None,
        "public_sees": _served_json(report),
        "error": report.error,
    }


def _health_json(health: Probe) -> dict:
    """The live health probe as JSON; a failing answer's first body lines come as sent (JSON escapes them)."""
    shown = {"ok": health.ok, "detail": health.detail}
    if not health.ok and health.status is not None:
        shown.update(body_head=health.body_lines(), body_more_lines=health.body_more, body_cut=health.body_cut)
    return shown


def _bytes(count: int | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)


def _json_default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


@contextmanager
def countdown() -> Iterator:
    """Show a live countdown to the switch on stderr; yields the tick(phase, now, moment) golive calls each second."""
    phases = {"checks": "every check runs", "prepare": "servers are prepared", "switch": "the servers switch"}
    switching = "switching every server now (Ctrl-C is held until every server has switched or been put back)"

    def when(now: datetime, moment: datetime) -> str:  # a wait for a slot days away names its day
        day = "" if now.astimezone(moment.tzinfo).date() == moment.date() else f" on {moment:%a %d %b}"
        return f"{moment:%H:%M:%S %Z}{day}"
    if not err.is_terminal:
        shown: set = set()

        def tick_plain(phase: str, now: datetime, moment: datetime) -> None:
            if phase not in shown:
                shown.add(phase)
                err.print(plain(switching if phase == "commit" else
                                f"waiting until {when(now, moment)}, when {phases.get(phase, phase)}"))
        yield tick_plain
        return
    with _shown_live(Live(Text(""), console=err, transient=True, refresh_per_second=4)) as live:
        def tick(phase: str, now: datetime, moment: datetime) -> None:
            if phase == "commit":
                live.update(Text(switching))
                return
            left = int((moment - now).total_seconds())
            live.update(Text(f"{phases.get(phase, phase)} at {when(now, moment)}, in "
                             f"{left // 3600:02d}:{left % 3600 // 60:02d}:{left % 60:02d}  (Ctrl-C cancels; nothing is switched yet)"))
        yield tick


def announce_go_live(at: datetime, rehearsal: dict | None, decide_by: datetime | None = None, *,
                     slot_of: str | None = None, now: datetime | None = None, rehearsal_required: bool = True) -> None:
    """Say when the switch will happen, the last moment to call it off, and what the last rehearsal took.

    A switch at `slot_of`'s next slot on a later day than `now` also says that it waits for that slot, and what
    to run instead when a slot has passed: someone late for today's slot must not wait a week by mistake.
    Without a rehearsal on record it warns, unless the environment requires none (`rehearsal_required` false:
    [go_live] rehearsal_max_age_days = 0, where the rehearsal check PASSes without one).
    """
    zone = getattr(at.tzinfo, "key", None)  # the abbreviation every later line uses (GMT, BST), then the zone's name
    named = f"{at:%Z} ({zone})" if zone and zone != at.tzname() else f"{at:%Z}"
    say(plain(f"go-live at {at:%H:%M:%S} {named} on {at:%a %d %b %Y}", style="bold"))
    if slot_of is not None and now is not None and now.astimezone(at.tzinfo).date() != at.date():
        from releaser.clock import span_text

        hours = int((at - now).total_seconds()) // 3600
        warn(f"that is {slot_of}'s next slot, in {span_text(hours * 60) or 'less than an hour'}: this command waits "
             "until then. If a slot that has passed is what you are late for, do not wait: Ctrl-C, then "
             "invoke go-live --now --force --reason TEXT (see: invoke runbook late-release)")
    if decide_by is not None:
        say(plain(f"last moment to call it off with nothing prepared: {decide_by.astimezone(at.tzinfo):%H:%M:%S} "
                  "(Ctrl-C); after the switch, a failed verification switches every server back by itself"))
    if rehearsal:
        t = rehearsal.get("timings") or {}
        say(plain(f"last rehearsal {rehearsal['at'][:16].replace('T', ' ')} UTC: prepare {t.get('prepare', 0):.2f} s, "
                  f"switch {t.get('commit', 0):.2f} s, verify {t.get('verify', 0):.2f} s, "
                  f"revert {t.get('revert', 0):.2f} s"))
    elif rehearsal_required:
        warn("no rehearsal on record: run invoke rehearse the day before")


def show_checks_brief(which: str, results) -> None:
    """One line per check run during go-live, plus every check that is not PASS."""
    failed = [r for r in results if r.status != "PASS"]
    say(f"{'fast checks' if which == 'fast' else 'checks'}: {len(results) - len(failed)} PASS"
        + (f", {len(failed)} not PASS" if failed else ""))
    for result in failed:
        _say_word(result.status, f" {result.named}: {result.detail}")


def write_text(text: str, path: str | None) -> None:
    """Print text on stdout, or write it to a file and say where."""
    if path is None:
        sys.stdout.write(text)
        return
    from pathlib import Path

    Path(path).write_text(text, encoding="utf-8")
    say(plain(f"wrote {path}"))


def show_runbook(text: str) -> None:
    """Render one runbook's Markdown on stdout (headings, numbered steps, commands in code blocks); under the
    installed `releaser` its commands say `releaser`, as the person will type them."""
    from rich.markdown import Markdown

    out.print(Markdown(for_this_run(text), code_theme="ansi_dark", hyperlinks=False))


def show_runbooks(runbooks: list) -> None:
    """List the runbooks (objects with .name and .title) with the command that shows each."""
    table = Table(title="runbooks", title_justify="left")
    for column in ("name", "what it covers", "show it with"):
        table.add_column(column, no_wrap=column != "what it covers")
    for runbook in runbooks:
        _add_row(table, runbook.name, runbook.title, for_this_run(f"invoke runbook {runbook.name}"))
    print_table(table)
    out.print(for_this_run("show one with: invoke runbook NAME (they are Markdown files in runbooks/)"))


# ---- checks, calendar, data (issue 5) ----

def show_checks(results, *, environment: str, release: str | None, as_json: bool = False) -> None:
    """Show every check's verdict, one row per check and server, then a one-line summary on stderr."""
    from releaser.checks import results_json, summarise

    if as_json:
        print_json({"environment": environment, "release": release, "results": results_json(results),
                    "failed": any(r.status == "FAIL" for r in results)})
        return
    table = Table(title=plain(f"releaser check: {environment}, release {release or '-'}"), title_justify="left")
    for column in ("check", "server", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for result in results:
        _add_row(table, result.check, result.server, word(result.status), for_this_run(result.detail))
    print_table(table)
    verdict = "FAIL" if any(r.status == "FAIL" for r in results) else "PASS"
    _say_word(verdict, f" {summarise(results)}")


def show_calendar(releases, *, now: datetime, start: datetime | None = None, titles: Mapping[str, str] | None = None,
                  as_json: bool = False) -> None:
    """Show releases from `start` (default now): publication, release time with its zone, upload deadline, how far each is."""
    from releaser.calendar import format_until

    if as_json:
        print_json([{"publication": r.publication, "at": r.at, "upload_deadline": r.upload_deadline, "moved": r.moved,
                     "refused": r.refused, "note": r.note, "deadline_note": r.deadline_note} for r in releases])
        return
    start = start or now
    shown = _moment(start.astimezone(releases[0].at.tzinfo) if releases else start)
    table = Table(title=plain(f"release calendar from {shown}"), title_justify="left")
    for column in ("publication", "release", "in", "upload deadline", "deadline in", "note"):
        table.add_column(column, overflow="fold")
    for release in releases:
        name = release.publication
        when = Text(_moment(release.at), style="strike dim" if release.refused else "")
        notes = ", ".join(part for part in (release.note, release.deadline_note) if part)
        note = word("REFUSED") + Text(f" {notes}") if release.refused else Text(notes)
        _add_row(table, name, when, format_until(now, release.at), _moment(release.upload_deadline),
                 format_until(now, release.upload_deadline), note)
    print_table(table)
    if not releases:
        say("no releases in that period")


def show_datasets(status, *, now: datetime, as_json: bool = False) -> None:
    """Show the staged release's data sets: upload, sign-off, deadline and verdict, grouped by publication."""
    if as_json:
        print_json({"release": status.release, "problem": status.problem, "datasets": [
            {"dataset": row.state.name, "publication": row.state.publication, "file": row.state.file,
             "sha256": row.state.sha256, "uploaded": row.state.uploaded, "signed_off": row.state.signed_off,
             "needs_sign_off": row.state.needs_sign_off(), "deadline": row.deadline,
             "status": row.verdict.status, "detail": row.verdict.detail} for row in status.rows]})
        return
    if status.problem:
        warn(f"no data sets to show: {status.problem}")
        return
    from releaser.calendar import format_until

    table = Table(title=plain(f"data sets in staged release {status.release}"), title_justify="left")
    for column in ("publication", "data set", "uploaded", "signed off", "sha256", "deadline", "deadline in", "status"):
        table.add_column(column, no_wrap=column == "status", overflow="fold")
    for row in status.rows:
        state = row.state
        uploaded = f"{state.uploaded.by} {_short_moment(state.uploaded.at, row.deadline)}" if state.uploaded else "-"
        signed = f"{state.signed_off.by} {_short_moment(state.signed_off.at, row.deadline)}" if state.signed_off else "-"
        if state.signed_off and state.needs_sign_off():
            signed += " (stale)"
        _add_row(table, state.publication, state.name, uploaded, signed, (state.sha256 or "-")[:12],
                 _short_moment(row.deadline) if row.deadline else "-",
                 format_until(now, row.deadline) if row.deadline else "-", word(row.verdict.status))
    print_table(table)
    for row in status.rows:
        if row.verdict.status != "PASS":
            _say_word(row.verdict.status, f" {row.verdict.detail}")


def show_data_change(change) -> None:
    """Say what a data upload or sign-off did, on which servers."""
    say(plain(f"{change.action} of {change.dataset} ({change.file}, sha256 {change.sha256[:12]}) in {change.release} "
              f"by {change.by} at {_moment(change.at)} on {', '.join(change.servers)}"))


def _moment(moment: datetime, like: datetime | None = None) -> str:
    """"Tue 1 Dec 2026 09:30 GMT", in the zone of `like` when given."""
    shown = moment.astimezone(like.tzinfo) if like is not None and like.tzinfo is not None else moment
    return f"{shown:%a} {shown.day} {shown:%b %Y %H:%M} {shown.tzname() or ''}".rstrip()


def show_deliveries(deliveries) -> None:
    """Warn about every notification that could not be delivered (the switch itself was never held up)."""
    for delivery in deliveries:
        if not delivery.ok:
            warn(f"notification {delivery.event_name} to {delivery.channel} failed: {delivery.detail}")


def _short_moment(moment: datetime, like: datetime | None = None) -> str:
    """"Wed 25 Nov 17:00 GMT", in the zone of `like` when given."""
    shown = moment.astimezone(like.tzinfo) if like is not None and like.tzinfo is not None else moment
    return f"{shown:%a} {shown.day} {shown:%b %H:%M} {shown.tzname() or ''}".rstrip()
