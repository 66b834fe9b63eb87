"""releaser's command line. Each task parses flags, calls releaser, renders with releaser.ui.

The same tasks run as `invoke TASK` inside a checkout (tasks.py at the root re-exports this module) and as
the installed `releaser TASK` anywhere (releaser/program.py). Heavy imports (fabric, rich, pydantic) happen
inside the tasks so `invoke --list` answers at once. Exit codes come from releaser.errors; the README lists them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

from invoke import Exit, Task
from invoke import task as invoke_task

from releaser import interrupts, invocation, keep_bytecode
from releaser.errors import ReleaserError
from releaser.order import counted
from releaser.project import find_project
from releaser.selection import HOSTS_HELP, REFUSED_HELP, refuse_hosts

PROJECT = find_project()  # environments/, runbooks/, the local journal; see releaser/project.py
ENV_HELP = "Environment in environments/ (default: local), or a path to a .toml file."
YES_HELP = "Go ahead without asking (needed when there is no terminal)."


# One letter, one flag, in every task: Invoke's own choice (a flag's first free letter) made -r --release in deploy
# and --reason elsewhere, -y --dry-run in data-upload and --yes elsewhere. A flag not named here has no short form
# (--force and --override among them: they are meant to be typed out). Never -h: `TASK -h` always means --help.
SHORT_FLAGS = {"env": "e", "yes": "y", "dry_run": "d", "json": "j", "reason": "r", "hosts": "o", "at": "a",
               "now": "n", "stage": "s", "message": "m", "clear": "c", "keep": "k", "publication": "p"}


class ReleaserTask(Task):
    """An Invoke task whose short flags mean the same in every task (SHORT_FLAGS), and whose Ctrl-C, wherever
    it lands in the task, ends in one true line and exit 130 (releaser/interrupts.py)."""

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names | set(name) | {"-"})  # no letter of Invoke's choosing
        letter = SHORT_FLAGS.get(name.strip("_"))  # json_, from_: Python's names for --json, --from
        if letter:
            opts["names"].append(letter)
        return opts

    def __call__(self, *args, **kwargs):
        """Run the task; a KeyboardInterrupt its own handling did not answer (its imports, its printing) exits 130."""
        try:
            interrupts.task_started(reading=self.name.replace("_", "-") if self.name in READING_TASKS else None,
                                    local=LOCAL_TASKS.get(self.name))
            invocation.begin(invocation.program_name(), kwargs.get("env"))
            keep_bytecode()  # the installed `releaser` imported this package before Invoke's Program.run set it
            return super().__call__(*args, **kwargs)
        except KeyboardInterrupt:  # Invoke's Program.run would make it a silent exit 1
            interrupts.task_ended()
            raise Exit(invocation.for_this_run(interrupts.interrupted_message()), code=130) from None
        finally:
            interrupts.task_ended()


READING_TASKS = {"status", "check", "history", "breach_report", "data_status"}  # they change nothing on any server
LOCAL_TASKS = {"build": "building the bundle"}  # they never talk to a server
task = partial(invoke_task, klass=ReleaserTask)
DRY_HELP = "Show what would change on every server, and change nothing (Invoke's --dry does the same)."


@contextmanager
def exit_on_user_error():
    """Turn a ReleaserError into a one-line message and its exit code; anything else is a bug and keeps its traceback."""
    interrupts.work_started()
    try:
        yield
        interrupts.work_finished()
    except ReleaserError as error:
        from releaser.ui import show_failed_answers, visible  # a reason or a server's answer must not drive the terminal

        show_failed_answers(getattr(error, "answers", {}))  # a failed switch's check after it: what the bodies said
        if interrupts.raised_presses():  # a Ctrl-C became this error (a cancelled switch): exit with its code
            interrupts.keep_the_exit_code()
        raise Exit(invocation.for_this_run(f"releaser: {visible(str(error))}"), code=error.exit_code) from error
    except KeyboardInterrupt:  # every switch holds Ctrl-C until it has committed or reverted, so none was under way
        raise Exit(invocation.for_this_run(interrupts.interrupted_message()), code=130) from None


@contextmanager
def open_fleet(env: str, verb: str, hosts: str | None = None, *, loaded=None):
    """Load the environment (unless `loaded` is it already) and connect to every server (or those --hosts names),
    showing a progress line per server. Until every connection is open, Ctrl-C ends the command at once
    (interrupts.connecting): nothing has been asked of a server yet."""
    from releaser.transport import let_go, make_hosts, warm_hosts

    stack = ExitStack()
    try:
        with interrupts.connecting():
            warm = {} if loaded is not None else warm_hosts(env, PROJECT)  # handshakes while pydantic validates
            try:
                from releaser.config import load_environment
                from releaser.selection import select_servers

                environment = select_servers(loaded or load_environment(env, PROJECT), hosts)
            except BaseException:
                let_go(warm.values())
                raise
            hosts = make_hosts(environment, start=True, warm=warm)  # the handshakes run while the rest is imported
            from releaser import ui
            from releaser.clock import SystemClock
            from releaser.fleet import connected
            from releaser.journal import local_journal_path

            progress = stack.enter_context(ui.progress([s.name for s in environment.servers], verb))
            fleet = stack.enter_context(connected(environment, actor=actor(), clock=SystemClock(), progress=progress,
                                                  hosts=hosts, journal_path=local_journal_path(environment.path)))
    except BaseException:
        stack.close()
        raise
    try:
        with stack:
            yield fleet
    finally:  # deliveries are known once the fleet has closed, after any switch, failed or not
        ui.show_deliveries(fleet.deliveries)
        for warning in fleet.unreported_warnings():  # a prune, data-upload... that kept a lock somewhere
            ui.warn(warning)


def is_dry(c, dry_run: bool) -> bool:
    """True for --dry-run and for Invoke's own `invoke --dry TASK`: both show the plan and change nothing."""
    return bool(dry_run or c.config.run.dry)


def refuse_dry(c, task_name: str) -> None:
    """Refuse `invoke --dry` loudly on a task that has no dry run, rather than doing it for real."""
    if c.config.run.dry:
        raise Exit(f"releaser: {task_name} has no dry run, and invoke --dry would not stop it; nothing was done", code=2)


def require(value, message: str) -> None:
    """Stop with a usage error (exit 2) when a required flag is missing."""
    if not value:
        raise Exit(invocation.for_this_run(f"releaser: {message}"), code=2)


def one_line(value, flag: str) -> None:
    """Stop with a usage error (exit 2) naming the flag and the character when free text others will read (a
    notice, a reason) holds a control character: newline, tab, a terminal code (releaser/free_text.py)."""
    from releaser.free_text import control_character_problem, length_problem

    if value is not None and not str(value).strip():  # a blank reason journals nothing; a blank notice shows an empty banner
        raise Exit(f"releaser: {flag} is blank; say it in words (it is journaled and shown to others); nothing was "
                   "asked of any server", code=2)
    problem = None if value is None else control_character_problem(str(value))
    if problem:
        raise Exit(f"releaser: {flag} holds {problem}; it must be one line of plain text (no newline, tab, "
                   "terminal codes or direction overrides); nothing was asked of any server", code=2)
    long = None if value is None else length_problem(str(value))
    if long:
        raise Exit(f"releaser: {flag} is {long}; say it in fewer words; nothing was asked of any server", code=2)


def whole_number(value, flag: str, default: int, *, at_most: int | None = None) -> int:
    """A flag's value as a whole number of at least 0 (and at most `at_most`), or a usage error (exit 2) naming the flag."""
    if value is None:
        return default
    text = str(value).strip()
    expected = "a whole number of 0 or more" if at_most is None else f"a whole number from 0 to {at_most}"
    if not text.isascii() or not text.isdigit():
        raise Exit(f"releaser: {flag} takes {expected}, got {value!r}", code=2)
    if at_most is not None and (len(text) > 12 or int(text) > at_most):
        raise Exit(f"releaser: {flag} takes {expected}, got {text}", code=2)
    return int(text)


@contextmanager
def writing(flag: str, path) -> Iterator[None]:
    """Turn a file this machine cannot write (no such directory, a directory, no permission) into one line, exit 2."""
    try:
        yield
    except OSError as error:
        from releaser.errors import UsageError

        raise UsageError(f"cannot write {flag} {path}: {error.strerror or error}",
                         hint="name a file in a directory that exists and that you can write") from None


def source_directory(value: str, flag: str) -> Path:
    """A flag naming a directory that holds at least one file, or a usage error (exit 2) saying what it is instead."""
    path = Path(value)
    if not path.exists():
        raise Exit(f"releaser: {flag} {value}: no such directory", code=2)
    if not path.is_dir():
        raise Exit(f"releaser: {flag} {value}: is a file, not a directory of the release's files", code=2)
    if not any(p.is_file() and p.name != "manifest.json" for p in path.rglob("*")):
        raise Exit(f"releaser: {flag} {value}: the directory holds no files; a release needs at least its site", code=2)
    return path


def actor() -> str:
    """Who is acting, as user@host; RELEASER_ACTOR overrides it (shared accounts, tests)."""
    import getpass
    import socket

    from releaser.free_text import control_character_problem

    given = os.environ.get("RELEASER_ACTOR")
    who = given or f"{getpass.getuser()}@{socket.gethostname()}"
    problem = control_character_problem(who)  # it goes into every lock, journal line and history row
    if problem:
        source = "RELEASER_ACTOR" if given else "your user name and host name (LOGNAME, USER or the account's)"
        raise Exit(f"releaser: {source} holds {problem}; set RELEASER_ACTOR to plain text such as ana@laptop; "
                   "nothing was asked of any server", code=2)
    return who


def approver(assume_yes: bool, fleet=None):
    """Show the plan (with what moves beside the links, given the fleet), then ask before changing anything
    (unless --yes)."""
    from releaser import ui
    from releaser.participants import moves_beside_the_links

    def approve(action, plans) -> bool:
        also = moves_beside_the_links(fleet.environment, action, plans) if fleet is not None else []
        ui.show_plan(f"{action} plan", plans, also=also)
        return ui.confirm(f"{action} on {len(plans)} server(s)?", assume_yes=assume_yes)
    return approve


@task(help={
    "stage": "Upload to every server's staging slot (the only thing deploy does; go live with: invoke go-live).",
    "release": "Release bundle: a directory with manifest.json, or a .tar.gz built by: invoke build.",
    "env": ENV_HELP,
    "reason": "Why, for the journal.",
    "dry_run": DRY_HELP,
    "hosts": REFUSED_HELP,
})
def deploy(c, release=None, stage=False, env="local", reason=None, dry_run=False, hosts=None):
    """Stage a release on every server, verified, without touching live."""
    from releaser import ui
    from releaser.bundle import read_bundle

    with exit_on_user_error():
        one_line(reason, "--reason")
        refuse_hosts("deploy", hosts)
        require(release, "deploy needs --release PATH (a bundle directory or .tar.gz)")
        if not stage:
            raise Exit(invocation.for_this_run("releaser: deploy only stages; pass --stage (then go live with: "
                                               "invoke go-live)"), code=2)
        with interrupts.working_locally("reading the bundle"):
            bundle = read_bundle(Path(release))
        with open_fleet(env, "staging") as fleet:
            if is_dry(c, dry_run):
                from releaser.preview import preview_stage

                return ui.show_preview(preview_stage(fleet, bundle.release_id))
            result = fleet.stage(bundle, reason=reason)
            interrupts.note_finished(f"{result.release} is staged on every server")
    ui.show_result(result)
    ui.say(f"staged {result.release} on every server; next: invoke check, then invoke go-live")


@task(iterable=["override"], help={
    "now": "Switch immediately instead of at the scheduled time (sandbox; elsewhere needs --force --reason).",
    "at": "Switch at this time instead of the calendar's, e.g. 09:30 or 2026-12-01T09:30 (same rules as --now).",
    "force": "Allow --now or --at where the environment does not (an early or late publication; needs --reason).",
    "override": "--override CHECK: let this failing check pass, e.g. --override deadline (repeatable; needs --reason; journaled).",
    "reason": "Why, for the journal (required with --force and --override).",
    "yes": YES_HELP,
    "env": ENV_HELP,
    "dry_run": DRY_HELP,
    "hosts": REFUSED_HELP,
})
def go_live(c, now=False, at=None, force=False, override=None, reason=None, yes=False, env="local", dry_run=False,
            hosts=None):
    """Switch the staged release live at its scheduled time, all or none."""
    from releaser import golive, ui
    from releaser.clock import SystemClock

    off_calendar = []  # a forced publication off its slot: said after the result, which it qualifies
    with exit_on_user_error():
        one_line(reason, "--reason")
        refuse_hosts("go-live", hosts)
        if is_dry(c, dry_run):
            from releaser.preview import preview_go_live

            with open_fleet(env, "go-live") as fleet:
                return ui.show_preview(preview_go_live(fleet, now=now, at=at, force=force, overrides=override or [],
                                                       reason=reason))
        with open_fleet(env, "go-live") as fleet, ui.countdown() as tick:
            result = golive.go_live_command(
                fleet, clock=SystemClock(), now=now, at=at, force=force, overrides=override or [], reason=reason,
                approve=approver(yes, fleet), tick=tick, announce=ui.announce_go_live, show_checks=ui.show_checks_brief,
                off_calendar=lambda off: off_calendar.append(off),
            )
    ui.show_result(result, notes=False)  # the plan showed them before asking
    ui.say(f"{result.release} is live on every server; rollback target: {result.previous or 'NONE'}")
    from releaser.breach import breach_report_command

    for off in off_calendar:
        ui.show_off_calendar(off, breach_report_command(off.release, env))


@task(help={"yes": YES_HELP, "env": ENV_HELP, "hosts": REFUSED_HELP})
def rehearse(c, yes=False, env="local", hosts=None):
    """Rehearse go-live on the real servers without touching live."""
    from releaser import ui

    refuse_dry(c, "rehearse")
    with exit_on_user_error():
        refuse_hosts("rehearse", hosts)
        with open_fleet(env, "rehearsal") as fleet:
            result = fleet.rehearse()
    ui.show_result(result)
    ui.say(f"rehearsal of {result.release} passed: the public site was not touched; go-live will need about "
           f"{sum(result.seconds[k] for k in ('prepare', 'commit', 'verify')):.2f} s, a revert {result.seconds['revert']:.2f} s")


@task(help={
    "message": "The text users see on the live site, e.g. 'Today's figures are delayed; next update 11:00'.",
    "clear": "Remove the notice instead.",
    "env": ENV_HELP,
    "dry_run": DRY_HELP,
})
def notice(c, message=None, clear=False, env="local", dry_run=False):
    """Show a delay notice on every server's live site, or --clear it."""
    from releaser import ui

    with exit_on_user_error():
        one_line(message, "--message")
        require(message or clear, "notice needs --message TEXT or --clear")
        with open_fleet(env, "notice") as fleet:
            if is_dry(c, dry_run):
                from releaser.preview import preview_notice

                return ui.show_preview(preview_notice(fleet, message or "", clear=clear))
            fleet.publish_notice(message or "", clear=clear)
    ui.say("notice removed from every server" if clear else "notice published on every server")


@task(help={
    "release": "The release id the report is about.",
    "out": "Write the report here instead of printing it (a .html file gets the printable page, .svg the picture).",
    "scheduled": "The pre-announced time, e.g. 2026-12-01T09:30 (default: from the journal or the calendar).",
    "env": ENV_HELP,
    "format_": "markdown, html (printable, with the timeline picture) or svg (default: from --out's suffix).",
})
def breach_report(c, release=None, out=None, scheduled=None, env="local", format_=None):
    """Draft the breach report for a late or early release."""
    from releaser import golive, ui

    with exit_on_user_error():
        require(release, "breach-report needs --release ID")
        from releaser.breach_html import choose_report_form

        form = choose_report_form(format_, out)
        with open_fleet(env, "breach-report") as fleet:
            text = golive.breach_report_for(fleet, release, scheduled_text=scheduled, form=form)
        with writing("--out", out):
            ui.write_text(text, out)


@task(help={
    "yes": YES_HELP,
    "reason": "Why, for the journal.",
    "env": ENV_HELP,
    "dry_run": DRY_HELP,
    "hosts": REFUSED_HELP,
})
def rollback(c, yes=False, reason=None, env="local", dry_run=False, hosts=None):
    """Put the previous live release back on every server."""
    with exit_on_user_error():
        one_line(reason, "--reason")
        refuse_hosts("rollback", hosts)
        with open_fleet(env, "rollback") as fleet:  # first: its connections open while the rest is imported
            if is_dry(c, dry_run):
                from releaser import ui
                from releaser.preview import preview_rollback

                return ui.show_preview(preview_rollback(fleet))
            result = fleet.rollback(reason=reason, approve=approver(yes, fleet))
    from releaser import ui

    ui.show_result(result, notes=False)  # the plan showed them before asking
    if all(r.ok for r in result.results):
        ui.say(f"{result.release} is live again on every server; {result.previous} stays on disk for inspection")
    else:
        from releaser.group import summary

        failing = summary({r.server: r.detail for r in result.results if not r.ok})
        raise Exit(invocation.for_this_run(f"releaser: every server's live link is back on {result.release}, but the "
                                           f"check after the switch did not pass on {failing}; see: invoke runbook rollback"),
                   code=1)


@task(help={"env": ENV_HELP, "json": "Print JSON instead of a table.", "hosts": HOSTS_HELP})
def status(c, env="local", json=False, hosts=None):
    """Show each server's live, backup and staging release; exit 5 if a server did not answer, 7 if MIXED.

    With [database] the data slots show in one more row; data whose live release is not the servers' is
    MIXED too (exit 7), and a database that does not answer exits 5.
    """
    from releaser.config import load_environment

    with exit_on_user_error():
        whole = load_environment(env, PROJECT)  # with --hosts, the title says how many servers the file has
        with open_fleet(env, "status", hosts, loaded=whole) as fleet:  # its connections open while the rest is imported
            reports = fleet.read_status()
            environment = fleet.environment
        from releaser.datastatus import read_data_status

        data = read_data_status(environment, {report.server: report.state for report in reports})
    from releaser import ui

    of_servers = len(whole.servers)
    ui.show_status(environment.name, reports, as_json=json,
                   host_keys_checked=environment.transport != "ssh" or environment.ssh.check_host_keys,
                   min_free_bytes=environment.thresholds.min_free_mib * 1024 * 1024, data=data,
                   of_servers=of_servers if hosts else None)
    from releaser.dataslots import status_exit_code_with_data
    from releaser.fleet import status_exit_code

    code = status_exit_code_with_data(status_exit_code(reports), data)
    if code:
        raise Exit(code=code)  # the table and its warnings said why


@task(help={
    "reason": "Why you are locking (shown to anyone who is refused).",
    "minutes": "Expire after this many minutes (default 120; 0 never expires).",
    "env": ENV_HELP,
    "dry_run": DRY_HELP,
})
def lock(c, reason=None, minutes=None, env="local", dry_run=False):
    """Lock every server against deploys, or none."""
    import uuid

    from releaser import ui

    with exit_on_user_error():
        one_line(reason, "--reason")
        require(reason, "lock needs --reason TEXT (it is shown to anyone the lock refuses)")
        minutes = whole_number(minutes, "--minutes", 120, at_most=525_600)  # a year
        with open_fleet(env, "lock") as fleet:
            if is_dry(c, dry_run):
                from releaser.preview import preview_lock

                return ui.show_preview(preview_lock(fleet, minutes))
            fleet.require_all_reachable("lock")
            fleet.take_lock(reason, token=uuid.uuid4().hex, kind="manual", minutes=float(minutes))
            fleet.record("lock", "done", reason=reason)
    ui.say(f"locked every server for {minutes} min; free it with: invoke unlock --reason TEXT")


@task(help={"reason": "Why the lock is being removed (journaled).", "yes": YES_HELP, "env": ENV_HELP,
            "dry_run": DRY_HELP})
def unlock(c, reason=None, yes=False, env="local", dry_run=False):
    """Remove the deploy lock on every server, whoever holds it."""
    from releaser import ui

    with exit_on_user_error():
        one_line(reason, "--reason")
        from releaser.errors import Cancelled, HostUnreachable
        from releaser.preview import preview_unlock

        dry = is_dry(c, dry_run)
        if not dry:
            require(reason, "unlock needs --reason TEXT (it is journaled)")
        with open_fleet(env, "unlock") as fleet:
            preview = preview_unlock(fleet)
            if dry:
                return ui.show_preview(preview)
            answered = [s.name for s in fleet.environment.servers if s.name not in fleet.unreachable]
            if preview.changes_nothing():
                if answered:
                    ui.say(f"nothing is locked on {', '.join(answered)}: nothing was changed or journaled")
                fleet.require_all_reachable("unlock")  # a server that did not answer may still hold a lock: exit 5
                return
            ui.show_preview_lines(preview)
            if not ui.confirm(f"remove the lock on {', '.join(preview.lines)} whoever holds it?", assume_yes=yes):
                raise Cancelled("unlock cancelled; nothing was changed", hint="pass --yes to go ahead without asking")
            fleet.unlock(reason=reason)
            ui.say(f"removed the lock on {', '.join(preview.lines)}")
            if fleet.unreachable:
                raise HostUnreachable(", ".join(counted(fleet.unreachable)), "did not answer, so any lock there is still "
                                      "there", hint="once it answers, run: invoke unlock --reason TEXT again")


@task(help={"keep": "Unpointed releases to keep on each server (default: keep_releases).", "yes": YES_HELP, "env": ENV_HELP,
            "dry_run": DRY_HELP})
def prune(c, keep=None, yes=False, env="local", dry_run=False):
    """Remove old releases, never one a slot points to."""
    from releaser import ui

    keep = None if keep is None else whole_number(keep, "--keep", 0)
    with exit_on_user_error():
        with open_fleet(env, "prune") as fleet:
            if is_dry(c, dry_run):
                from releaser.preview import preview_prune

                return ui.show_preview(preview_prune(fleet, keep))
            removed = fleet.prune(keep=keep, approve=approver(yes))
    for server, releases in removed.items():
        ui.say(f"{server}: removed {', '.join(releases) or 'nothing'}")


@task(help={
    "source": "Directory holding the release's files. Only a manifest.json you put in it declares the "
              "release's data sets (and publications, data_files); see README, 'Building a release'.",
    "release_id": "Release id (letters, digits, '.', '_', '-').",
    "out": "Where to write the .tar.gz (default: dist/<release-id>.tar.gz).",
    "publication": "Publication this release carries (replaces the source manifest's publications).",
})
def build(c, source=None, release_id=None, out=None, publication=None):
    """Build a release bundle (.tar.gz with a checksummed manifest); data sets come from --source's manifest.json."""
    from datetime import datetime, timezone

    from releaser import ui
    from releaser.bundle import build_bundle

    with exit_on_user_error():
        require(source and release_id, "build needs --source DIR and --release-id ID")
        source = source_directory(source, "--source")
        target = Path(out or f"dist/{release_id}.tar.gz")
        replaced = target.is_file()  # a rebuild replaces the bundle there whole, and says so
        with writing("--out", target):
            bundle = build_bundle(source, release_id, target, publications=[publication] if publication else [],
                                  now=datetime.now(timezone.utc))
    ui.say(f"built {bundle.release_id}: {bundle.path} ({len(bundle.manifest.files)} files, {bundle.size} bytes"
           + ("; it replaced the file that was there)" if replaced else ")"))


@task(help={"release": "Only events about this release id, with the overrides, refusals and notices of its go-lives.", "json": "Print JSON instead of a table.", "env": ENV_HELP,
            "hosts": HOSTS_HELP})
def history(c, release=None, json=False, env="local", hosts=None):
    """Show who did what, when, on every server."""
    from releaser import ui

    with exit_on_user_error():
        with open_fleet(env, "history", hosts) as fleet:
            events = fleet.read_history()
        from releaser.selection import events_on

        events = events_on(events, hosts)
    if release:
        from releaser.publication import events_about_release

        events = events_about_release(release, events)
    ui.show_history(events, as_json=json)
    if not events and not json:
        about = f" about release {release}" if release else ""
        ui.say(f"the journal holds no events{about}" + ("; see every release with: invoke history" if release else ""))
    if fleet.unreachable:
        ui.warn(f"{', '.join(counted(fleet.unreachable))} did not answer: what only its journal holds is missing above; "
                "see: invoke runbook server-failure")


@task(help={"env": ENV_HELP})
def serve(c, env="local"):
    """Serve the sandbox's live and staging sites until Ctrl-C."""
    import threading

    from releaser import ui
    from releaser.config import load_environment
    from releaser.sandbox import serving

    with exit_on_user_error():
        environment = load_environment(env, PROJECT)
        with serving(environment) as urls:
            ui.say("serving " + ", ".join(urls) + "; Ctrl-C to stop")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                ui.say("stopped")


@task
def demo(c):
    """Tell the whole story on the local sandbox in under a minute."""
    from releaser.demo import run_demo

    refuse_dry(c, "demo")
    with exit_on_user_error():
        run_demo(PROJECT)


@task(name="demo-app")
def demo_app(c):
    """Show application instances behind nginx and data slots switching."""
    from releaser.demo_app import run_demo_app

    refuse_dry(c, "demo-app")
    with exit_on_user_error():
        run_demo_app(PROJECT)


@task(positional=["name"], help={"name": "The runbook to show, e.g. rollback; 'list' lists them all."})
def runbook(c, name=None):
    """Show a runbook, or list them: invoke runbook rollback, invoke runbook list."""
    from releaser import ui
    from releaser.errors import ReleaserError
    from releaser.runbooks import RUNBOOK_DIR, find_runbook, list_runbooks

    directory = RUNBOOK_DIR  # from the package, so an installed copy finds them from any directory
    with exit_on_user_error():
        # Invoke hands a positional argument whatever token follows, flags included, so --help arrives here.
        if name in ("--help", "-h"):
            ui.say("Usage: invoke runbook NAME   show one runbook, e.g. invoke runbook rollback")
            ui.say("       invoke runbook list   list them all")
        runbooks = list_runbooks(directory)
        if not runbooks:
            raise ReleaserError(f"no runbooks in {directory}", hint="they are the *.md files of releaser/runbook_docs/ in the package; reinstall releaser")
        if name in (None, "", "list", "--list", "-l", "--help", "-h"):
            ui.show_runbooks(runbooks)
            return
        ui.show_runbook(find_runbook(directory, name).read())


# ---- checks, calendar, data (issue 5) ----

@task(help={
    "publication": "Only this publication (default: every one the environment declares).",
    "months": "How many months to show, from today or from --from (default 3).",
    "from_": "Start on this day instead of now, e.g. 2026-09-01 (past months too).",
    "ics": "Also write the releases and upload deadlines to this iCalendar (.ics) file (refused dates left out).",
    "json_": "Print JSON instead of a table.",
    "env": ENV_HELP,
})
def calendar(c, publication=None, months=None, from_=None, ics=None, json_=False, env="local"):
    """Show the releases and their upload deadlines: upcoming, or from a day with --from."""
    from releaser import ui

    with exit_on_user_error():
        from releaser.calendar import parse_day_flag, refused_count, to_ics
        from releaser.checks.window import upcoming_releases
        from releaser.clock import SystemClock
        from releaser.config import load_environment
        from releaser.errors import ConfigError

        environment = load_environment(env, PROJECT)
        if not environment.publications:
            raise ConfigError(f"{environment.name} declares no publications", hint="add [[publications]] tables (name, rule, deadline)")
        now = SystemClock().now()
        count = whole_number(months, "--months", 3, at_most=1200)
        zone = (environment.publication(publication) if publication else environment.publications[0]).timezone
        start = parse_day_flag(from_, zone=zone, flag="--from") if from_ else now
        releases = upcoming_releases(environment, start, months=count, publication=publication)
        titles = {p.name: p.title for p in environment.publications}
        if ics:
            with writing("--ics", ics):
                Path(ics).write_text(to_ics(releases, now=now, titles=titles), encoding="utf-8", newline="")
    ui.show_calendar(releases, now=now, start=start, titles=titles, as_json=json_)
    if ics:
        refused = refused_count(releases)
        left_out = f"; left out {refused} refused date(s), which have no release" if refused else ""
        kept = len(releases) - refused
        ui.say(f"wrote {kept} {'release' if kept == 1 else 'releases'} and their upload deadlines to {ics}{left_out}")


@task(help={
    "release": "Release id staging must hold (default: whatever it holds).",
    "only": "Run only these checks, comma-separated (e.g. smoke,config-parity).",
    "at": 'Planned go-live time, e.g. "2026-12-01 09:30" (default: the next scheduled release).',
    "json_": "Print the results as JSON instead of a table.",
    "env": ENV_HELP,
    "hosts": HOSTS_HELP,
})
def check(c, release=None, only=None, at=None, json_=False, env="local", hosts=None):
    """Run every pre-release check on every server."""
    from releaser import ui

    with exit_on_user_error():
        from releaser.bundle import validate_release_id
        from releaser.checks import Limits, check_release, parse_moment, results_json, select_checks, summarise
        from releaser.errors import ChecksFailed

        select_checks(only)  # an unknown name fails before any server is asked
        if release:
            validate_release_id(release)
        with open_fleet(env, "check", hosts) as fleet:
            environment = fleet.environment
            zone = environment.publications[0].timezone if environment.publications else "Europe/London"
            limits = Limits(environment, release=release, at=parse_moment(at, zone, now=fleet.clock.now()) if at else None,
                            actor=actor())
            run = check_release(fleet, limits, now=fleet.clock.now(), only=only)
            interrupts.note_writing()  # the journal line of this check run
            fleet.record("check", "failed" if run.failed else "done", releases={"staging": run.release},
                         detail=summarise(run.results),
                         extra={"checks": [r for r in results_json(run.results) if r["status"] != "PASS"]})
        ui.show_checks(run.results, environment=environment.name, release=run.release, as_json=json_)
        if run.failed:
            raise ChecksFailed(f"pre-release checks failed: {summarise(run.results)}",
                               hint="fix what the checks above show and run: invoke check")


@task(help={
    "dataset": "Data set name, as the staged release's manifest.json gives it.",
    "file": "The data file to put in place of the data set's file.",
    "reason": "Why, for the journal.",
    "env": ENV_HELP,
    "dry_run": DRY_HELP,
})
def data_upload(c, dataset=None, file=None, reason=None, env="local", dry_run=False):
    """Put a data file into the staged release on every server."""
    from releaser import ui

    with exit_on_user_error():
        one_line(reason, "--reason")
        from releaser.uploads import require_data_file, upload_dataset

        require(dataset and file, "data-upload needs --dataset NAME and --file PATH; see: invoke data-status")
        require_data_file(Path(file))  # before any server is asked, the dry run's too
        with open_fleet(env, "data upload") as fleet:
            if is_dry(c, dry_run):
                from releaser.preview import preview_data

                return ui.show_preview(preview_data(fleet, "data-upload", dataset, f"put {file} in place of"))
            change = upload_dataset(fleet, dataset, Path(file), reason=reason)
    ui.show_data_change(change)
    ui.say(f"next: QA signs it off with: invoke data-sign-off --dataset {dataset}")


@task(help={
    "dataset": "Data set name, as the staged release's manifest.json gives it.",
    "reason": "Note for the journal.",
    "env": ENV_HELP,
    "dry_run": DRY_HELP,
})
def data_sign_off(c, dataset=None, reason=None, env="local", dry_run=False):
    """Record your QA sign-off of a data set as it is now."""
    from releaser import ui

    with exit_on_user_error():
        one_line(reason, "--reason")
        from releaser.uploads import sign_off_dataset

        require(dataset, "data-sign-off needs --dataset NAME; see: invoke data-status")
        with open_fleet(env, "data sign-off") as fleet:
            if is_dry(c, dry_run):
                from releaser.preview import preview_data

                return ui.show_preview(preview_data(fleet, "data-sign-off", dataset, "record your sign-off of"))
            change = sign_off_dataset(fleet, dataset, reason=reason)
    ui.show_data_change(change)


@task(help={
    "at": 'Planned go-live time, e.g. "2026-12-01 09:30" (default: each publication\'s next release).',
    "json_": "Print JSON instead of a table.",
    "env": ENV_HELP,
})
def data_status(c, at=None, json_=False, env="local"):
    """Show each data set's upload, sign-off and deadline."""
    from releaser import ui

    with exit_on_user_error():
        from releaser.checks import Limits, parse_moment
        from releaser.uploads import read_data_status

        with open_fleet(env, "data status") as fleet:
            environment = fleet.environment
            zone = environment.publications[0].timezone if environment.publications else "Europe/London"
            now = fleet.clock.now()
            status = read_data_status(fleet, Limits(environment, at=parse_moment(at, zone, now=now) if at else None), now)
    ui.show_datasets(status, now=now, as_json=json_)


# ---- the release-day page (issue 15) ----

@task(help={
    "env": ENV_HELP,
    "port": "Port to serve on (default 8700; 0 picks a free one).",
    "bind": "Address to listen on (default 127.0.0.1: only this machine can open the page).",
    "every": "Seconds between reads of the servers, 1 to 3600 (default 2).",
})
def dashboard(c, env="local", port=None, bind="127.0.0.1", every=None):
    """Serve a read-only release-day page until Ctrl-C."""
    import threading

    from releaser import ui
    from releaser.clock import SystemClock
    from releaser.config import load_environment
    from releaser.dashboard import serving_dashboard
    from releaser.fleet import connected
    from releaser.journal import local_journal_path

    with exit_on_user_error():
        port = whole_number(port, "--port", 8700, at_most=65535)
        every = whole_number(every, "--every", 2, at_most=3600)
        if every == 0:  # reading the servers without a pause would load every one of them for nothing
            raise Exit("releaser: --every takes a whole number of seconds from 1 to 3600, got 0", code=2)
        environment = load_environment(env, PROJECT)
        with connected(environment, actor=actor(), clock=SystemClock(),
                       journal_path=local_journal_path(environment.path)) as fleet:
            with serving_dashboard(fleet, bind=bind, port=port, every=float(every), on_error=ui.warn) as url:
                ui.say(f"dashboard of {environment.name} at {url} (read-only; Ctrl-C to stop)")
                try:
                    threading.Event().wait()
                except KeyboardInterrupt:
                    ui.say("stopped")
