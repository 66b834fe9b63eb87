"""Everything releaser prints: tables and JSON on stdout, progress and messages on stderr.

Functions here take results and render them; they never fetch anything. Every status is a word (PASS,
FAIL, NO BACKUP, ...) with colour only as a second signal, so pipes and NO_COLOR lose nothing.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import date, datetime

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ui renders what the fleet returns but never calls it
    from releaser.fleet import FleetResult, ServerReport
    from releaser.slots import Plan

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

_WORD_STYLES = {"PASS": "bold green", "OK": "bold green", "WARN": "bold yellow", "FAIL": "bold red",
                "NO BACKUP": "bold red", "LOCKED": "bold yellow", "DOWN": "bold red", "SKIP": "dim"}


def word(text: str) -> Text:
    """Render a status word with its colour."""
    return Text(text, style=_WORD_STYLES.get(text, ""))


def say(message: str) -> None:
    """Print a message for the person at the terminal (stderr, so --json stays clean)."""
    err.print(message)


def warn(message: str) -> None:
    """Print a warning line."""
    err.print(Text("WARNING: ", style="bold yellow") + Text(message))


def print_json(data) -> None:
    """Print data as JSON on stdout and nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")


def show_status(environment: str, reports: list[ServerReport], *, as_json: bool = False) -> None:
    """Show each server's live, backup and staging release, free disk, lock and live health."""
    if as_json:
        print_json({"environment": environment, "servers": [_report_json(r) for r in reports]})
        return
    table = Table(title=f"releaser status: {environment}", title_justify="left")
    for column in ("server", "live", "backup", "staging", "on disk", "disk free", "lock", "health"):
        table.add_column(column)
    for report in reports:
        if report.state is None:
            table.add_row(report.server, word("DOWN"), "", "", "", "", "", Text(report.error or "", style="red"))
            continue
        state = report.state
        backup = Text(state.backup) if state.backup else word("NO BACKUP") if state.live else Text("-")
        lock = word("LOCKED") + Text(f" {report.lock.owner}" if report.lock else "") if report.locked else Text("free")
        if report.health is None:
            health = Text("-")
        else:
            health = word("PASS" if report.health.ok else "FAIL")
            if not report.health.ok:
                health += Text(f" {report.health.detail}")
        table.add_row(report.server, state.live or "-", backup, state.staging or "-", str(len(state.on_disk)),
                      _bytes(report.free_bytes), lock, health)
    out.print(table)
    live = {r.state.live for r in reports if r.state}
    if len(live) > 1:
        warn(f"the fleet is MIXED: servers serve {', '.join(sorted(str(x) for x in live))}; see: invoke runbook rollback")
    if any(r.state and r.state.live and not r.state.backup for r in reports):
        warn("there is NO BACKUP on some server: a rollback is impossible until the next go-live")
    down = [r.server for r in reports if r.state is None]
    if down:
        warn(f"{', '.join(down)} did not answer; see: invoke runbook server-failure")


def show_plan(title: str, plans: Mapping[str, Plan]) -> None:
    """Show what a command is about to change on each server, before it asks to go ahead."""
    table = Table(title=title, title_justify="left")
    for column in ("server", "slot", "from", "to"):
        table.add_column(column)
    for server, plan in plans.items():
        for change in plan.links:
            table.add_row(server, change.slot, change.old or "-", change.new or "(removed)")
        if plan.unpack:
            table.add_row(server, "releases/", "-", f"{plan.unpack} (upload)")
        for release in plan.removals:
            table.add_row(server, "releases/", release, "(removed)")
    err.print(table)
    for note in dict.fromkeys(n for plan in plans.values() for n in plan.notes):
        warn(note)


def show_result(result: FleetResult) -> None:
    """Show per server what a fleet command did, then one summary line."""
    table = Table(title=f"{result.action}: {result.previous or '-'} -> {result.release or '-'}", title_justify="left")
    for column in ("server", "outcome", "detail"):
        table.add_column(column)
    for host in result.results:
        table.add_row(host.server, word("OK" if host.ok else "FAIL"), host.detail)
    out.print(table)
    figures = ", ".join(f"{k} {v:.2f}s" for k, v in (result.seconds or {}).items())
    skew = f", rename skew {result.skew * 1000:.0f} ms" if result.skew is not None else ""
    if figures:
        say(f"[dim]{figures}{skew}[/dim]")
    for note in result.notes:
        warn(note)


def show_history(events: list[dict], *, as_json: bool = False) -> None:
    """Show the journal as a timeline, one row per event."""
    if as_json:
        print_json(events)
        return
    table = Table(title="history", title_justify="left")
    for column in ("at (UTC)", "action", "outcome", "releases", "actor"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", overflow="ellipsis", no_wrap=True, max_width=60)
    for event in events:
        releases = " ".join(f"{k}={v}" for k, v in (event.get("releases") or {}).items() if v)
        detail = event.get("detail") or event.get("reason") or ""
        outcome = event.get("outcome", "")
        table.add_row(event["at"].replace("T", " ")[:19], event.get("action", ""),
                      word({"done": "OK", "failed": "FAIL", "reverted": "FAIL", "mixed": "FAIL"}.get(outcome, outcome.upper())),
                      releases, event.get("actor", ""), detail)
    out.print(table)


def confirm(question: str, *, assume_yes: bool) -> bool:
    """Ask a yes/no question on the terminal; without a terminal only --yes may answer."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        return False
    from rich.prompt import Confirm

    return Confirm.ask(question, console=err, default=False)


@contextmanager
def progress(servers: list[str], verb: str) -> Iterator:
    """Show one transient line per server while long work runs; yields a callback(server, message)."""
    lines = {server: "waiting" for server in servers}
    lock = threading.Lock()

    def render() -> Table:
        table = Table.grid(padding=(0, 2))
        for server, message in lines.items():
            table.add_row(Text(server, style="bold"), Text(message))
        return table

    if not err.is_terminal:
        yield lambda server, message: None
        return
    with Live(render(), console=err, transient=True, refresh_per_second=10) as live:
        def update(server: str, message: str) -> None:
            with lock:
                lines[server] = message
                live.update(render())
        yield update


def narrate(step: str, text: str) -> None:
    """Print one step of the demo's story."""
    err.rule(Text(step, style="bold cyan"), align="left")
    err.print(text)


def _report_json(report: ServerReport) -> dict:
    state = report.state
    return {
        "server": report.server,
        "live": state.live if state else None,
        "backup": state.backup if state else None,
        "staging": state.staging if state else None,
        "on_disk": sorted(state.on_disk) if state else [],
        "free_bytes": report.free_bytes,
        "lock": asdict(report.lock) if report.lock else (True if report.locked else None),
        "health": {"ok": report.health.ok, "detail": report.health.detail} if report.health else None,
        "error": report.error,
    }


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
