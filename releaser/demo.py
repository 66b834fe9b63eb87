"""`invoke demo`: the whole story on the local sandbox, narrated, in well under a minute.

Stage r1 and go live, stage r2 and go live, stage a broken r3 whose go-live fails verification and
reverts by itself, then the on-call engineer rolls back to r1 anyway. It starts and stops its own web
servers and leaves nothing running. Every step checks its own outcome: a step that does not end as the
story says stops the demo with a ReleaserError (exit 1) naming the step, never "demo finished".
"""

from __future__ import annotations

import re
import shutil
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from releaser import ui
from releaser.bundle import read_bundle
from releaser.clock import SystemClock
from releaser.config import load_environment
from releaser.errors import FleetReverted, ReleaserError
from releaser.fleet import connected
from releaser.golive import breach_report_for, go_live_at, last_rehearsal
from releaser.web import probe


def run_demo(project: Path) -> None:
    """Run the demo on environments/local.toml, resetting its sandbox/ directories first."""
    started = time.perf_counter()
    environment = load_environment("local", project)
    for server in environment.servers:
        shutil.rmtree(str(environment.app_root(server)), ignore_errors=True)
    releases = project / "examples" / "releases"
    first = environment.servers[0]
    journal = project / "sandbox" / "demo-journal.jsonl"
    journal.unlink(missing_ok=True)

    clock = SystemClock()
    with connected(environment, actor="demo@releaser", clock=clock, journal_path=journal) as fleet:
        ui.narrate("1. A developer stages r1, days before release day",
                   f"invoke deploy --stage --release {releases / 'r1'}  (3 sandbox servers under sandbox/)")
        fleet.stage(read_bundle(releases / "r1"))
        ui.show_status(environment.name, fleet.read_status())

        ui.narrate("2. The release manager goes live with r1", "invoke go-live --now   (the first release: no backup yet)")
        _require_ok(2, "go-live of r1", _shown(fleet.go_live(reason="demo: first release")))

        ui.narrate("3. Next month: r2 is staged, then goes live at its scheduled second; r1 becomes the backup",
                   "invoke deploy --stage --release examples/releases/r2 && invoke go-live   (the sandbox's release "
                   "time is a few seconds away; the servers are prepared first, then renamed at that second; the demo "
                   "skips the pre-release checks a real go-live runs, see: invoke check)")
        fleet.stage(read_bundle(releases / "r2"))
        rehearsal = fleet.rehearse()
        ui.say(f"invoke rehearse: r2 switched and reverted on a throwaway copy of the slots in "
               f"{rehearsal.seconds['switch'] + rehearsal.seconds['revert']:.2f} s; the public site was not touched")
        _require_ok(3, "scheduled go-live of r2", _shown(_scheduled(fleet, clock, seconds=3, reason="demo: monthly update")))

        ui.narrate("4. r3 has a problem that only shows on live: its health endpoint fails",
                   "invoke deploy --stage --release examples/releases/r3 && invoke go-live")
        fleet.stage(read_bundle(releases / "r3"))
        try:
            _scheduled(fleet, clock, seconds=3, reason="demo: broken update")
        except FleetReverted as error:
            ui.say(ui.plain("releaser: ", style="bold red") + ui.plain(str(error)))
            exposed = error.exposed
        else:
            raise _failed(4, "r3 went live, but its failing health check should have switched every server back")
        served = _served_release(first.live_url)
        if served != "r2":
            raise _failed(4, f"after the revert {first.live_url}/ serves {served}, not r2")
        ui.say(f"{first.live_url}/ serves release {served} again; r3 was public for at most {exposed:.2f} s, "
               "until every server was put back")

        ui.narrate("5. On call, someone who did not make the release rolls back to r1 anyway",
                   "invoke rollback --yes --reason 'doubts about r2 figures'")
        _require_ok(5, "rollback to r1", _shown(fleet.rollback(reason="doubts about r2 figures")))

        ui.narrate("6. Where every server stands now", "invoke status")
        reports = fleet.read_status()
        ui.show_status(environment.name, reports)
        wrong = [r.server for r in reports if r.state is None or r.state.live != "r1" or not (r.health and r.health.ok)]
        if wrong:
            raise _failed(6, f"{', '.join(wrong)} should serve r1 and pass its health check, and do not (the status above shows why)")
        ui.show_history(fleet.read_history())

        ui.narrate("7. The draft breach report for r3, from every server's journal", "invoke breach-report --release r3")
        ui.write_text(breach_report_for(fleet, "r3"), None)
    ui.say(ui.plain(f"demo finished in {time.perf_counter() - started:.1f} s", style="bold")
           + ui.plain("; the sandbox is in sandbox/, try: invoke status, invoke history, "
                      "invoke deploy --stage --release examples/releases/r2"))


def _scheduled(fleet, clock, *, seconds: float, reason: str):
    """Go live at a moment a few seconds away, with the countdown, as `invoke go-live` does at 09:30.

    Without the pre-release checks: a moment a few seconds away is on no release day (the `window` check), and r3
    must get as far as the switch to show the revert; `invoke check` runs them on the sandbox.
    """
    at = (clock.now() + timedelta(seconds=seconds)).replace(microsecond=0).astimezone(ZoneInfo("Europe/London"))
    ui.announce_go_live(at, last_rehearsal(fleet.read_history()), at - timedelta(seconds=1),
                        rehearsal_required=fleet.environment.go_live.rehearsal_required)
    with ui.countdown() as tick:
        return go_live_at(fleet, at=at, clock=clock, tick=tick, reason=reason,
                          lead=timedelta(seconds=2), prepare_ahead=timedelta(seconds=1))


def _shown(result):
    ui.show_result(result)
    return result


def _require_ok(step: int, what: str, result) -> None:
    """Stop the demo when a step's fleet command did not succeed on every server."""
    failed = [f"{r.server} ({r.detail})" if r.detail else r.server for r in result.results if not r.ok]
    if failed:
        raise _failed(step, f"the {what} failed on {', '.join(failed)}")


def _failed(step: int, what: str) -> ReleaserError:
    return ReleaserError(f"demo failed at step {step}: {what}",
                         hint="the sandbox is left as it is in sandbox/; see: invoke status, invoke history")


def _served_release(url: str) -> str:
    page = probe(url + "/", timeout=2)
    match = re.search(r"Release <strong>([^<]+)</strong>", page.body_head)
    return match.group(1) if match else f"? ({page.detail})"
