"""releaser's command line. Each task parses flags, calls releaser, renders with releaser.ui.

Heavy imports (fabric, rich, pydantic) happen inside the tasks so `invoke --list` answers at once.
Exit codes come from releaser.errors; the README lists them.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from invoke import Exit, task

from releaser.errors import ReleaserError

PROJECT = Path(__file__).resolve().parent
ENV_HELP = "Environment in environments/ (default: local), or a path to a .toml file."
YES_HELP = "Go ahead without asking (needed when there is no terminal)."


@contextmanager
def exit_on_user_error():
    """Turn a ReleaserError into a one-line message and its exit code; anything else is a bug and keeps its traceback."""
    try:
        yield
    except ReleaserError as error:
        raise Exit(f"releaser: {error}", code=error.exit_code) from error
    except KeyboardInterrupt:
        raise Exit("releaser: interrupted (Ctrl-C); no slot was changed", code=130) from None


@contextmanager
def open_fleet(env: str, verb: str):
    """Load the environment and connect to every server, showing a progress line per server."""
    from releaser import ui
    from releaser.clock import SystemClock
    from releaser.config import load_environment
    from releaser.fleet import connected

    environment = load_environment(env, PROJECT)
    with ui.progress([s.name for s in environment.servers], verb) as progress:
        with connected(environment, actor=actor(), clock=SystemClock(), progress=progress,
                       journal_path=PROJECT / ".releaser-journal.jsonl") as fleet:
            yield fleet


def require(value, message: str) -> None:
    """Stop with a usage error (exit 2) when a required flag is missing."""
    if not value:
        raise Exit(f"releaser: {message}", code=2)


def actor() -> str:
    """Who is acting, as user@host; RELEASER_ACTOR overrides it (shared accounts, tests)."""
    import getpass
    import socket

    return os.environ.get("RELEASER_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def approver(assume_yes: bool):
    """Show the plan, then ask before changing anything (unless --yes)."""
    from releaser import ui

    def approve(action, plans) -> bool:
        ui.show_plan(f"{action} plan", plans)
        return ui.confirm(f"{action} on {len(plans)} server(s)?", assume_yes=assume_yes)
    return approve


@task(help={
    "stage": "Upload to every server's staging slot (the only thing deploy does; go live with: invoke go-live).",
    "release": "Release bundle: a directory with manifest.json, or a .tar.gz built by: invoke build.",
    "env": ENV_HELP,
    "reason": "Why, for the journal.",
})
def deploy(c, release=None, stage=False, env="local", reason=None):
    """Stage a release on every server, verified, without touching live."""
    from releaser import ui
    from releaser.bundle import read_bundle

    with exit_on_user_error():
        require(release, "deploy needs --release PATH (a bundle directory or .tar.gz)")
        if not stage:
            raise Exit("releaser: deploy only stages; pass --stage (then go live with: invoke go-live)", code=2)
        bundle = read_bundle(Path(release))
        with open_fleet(env, "staging") as fleet:
            result = fleet.stage(bundle, reason=reason)
    ui.show_result(result)
    ui.say(f"staged {result.release} on every server; next: invoke check, then invoke go-live")


@task(help={
    "now": "Switch immediately instead of at the scheduled time.",
    "force": "Allow --now in an environment that does not allow it (an early publication; needs --reason).",
    "reason": "Why, for the journal (required with --force).",
    "yes": YES_HELP,
    "env": ENV_HELP,
})
def go_live(c, now=False, force=False, reason=None, yes=False, env="local"):
    """Make the staged release live on every server, all or none."""
    from releaser import ui

    with exit_on_user_error():
        from releaser.config import load_environment
        from releaser.errors import PlanRefused

        environment = load_environment(env, PROJECT)
        if not now:
            raise PlanRefused("go-live at the scheduled time is not available yet", hint="pass --now to switch immediately")
        if not environment.allow_go_live_now and not (force and reason):
            raise PlanRefused(f"{environment.name} does not allow --now: it would publish before the scheduled time",
                              hint="add --force --reason TEXT to publish early on purpose (it is journaled)")
        with open_fleet(env, "go-live") as fleet:
            result = fleet.go_live(reason=reason, approve=approver(yes))
    ui.show_result(result)
    ui.say(f"{result.release} is live on every server; rollback target: {result.previous or 'NONE'}")


@task(help={
    "yes": YES_HELP,
    "reason": "Why, for the journal.",
    "env": ENV_HELP,
})
def rollback(c, yes=False, reason=None, env="local"):
    """Put the previous live release back on every server."""
    from releaser import ui

    with exit_on_user_error():
        with open_fleet(env, "rollback") as fleet:
            result = fleet.rollback(reason=reason, approve=approver(yes))
    ui.show_result(result)
    if all(r.ok for r in result.results):
        ui.say(f"{result.release} is live again on every server; {result.previous} stays on disk for inspection")
    else:
        raise Exit(f"releaser: rolled back to {result.release} but its health check fails; see: invoke runbook rollback", code=1)


@task(help={"env": ENV_HELP, "json": "Print JSON instead of a table."})
def status(c, env="local", json=False):
    """Show each server's live, backup and staging release."""
    from releaser import ui

    with exit_on_user_error():
        with open_fleet(env, "status") as fleet:
            reports = fleet.read_status()
            name = fleet.environment.name
    ui.show_status(name, reports, as_json=json)


@task(help={
    "reason": "Why you are locking (shown to anyone who is refused).",
    "minutes": "Expire after this many minutes (default 120; 0 never expires).",
    "env": ENV_HELP,
})
def lock(c, reason=None, minutes=120, env="local"):
    """Lock every server against deploys, or none."""
    import uuid

    from releaser import ui

    with exit_on_user_error():
        require(reason, "lock needs --reason TEXT (it is shown to anyone the lock refuses)")
        with open_fleet(env, "lock") as fleet:
            fleet.require_all_reachable("lock")
            fleet.take_lock(reason, token=uuid.uuid4().hex, kind="manual", minutes=float(minutes))
            fleet.record("lock", "done", reason=reason)
    ui.say(f"locked every server for {minutes} min; free it with: invoke unlock --reason TEXT")


@task(help={"reason": "Why the lock is being removed (journaled).", "yes": YES_HELP, "env": ENV_HELP})
def unlock(c, reason=None, yes=False, env="local"):
    """Remove the deploy lock on every server, whoever holds it."""
    from releaser import ui

    with exit_on_user_error():
        require(reason, "unlock needs --reason TEXT (it is journaled)")
        from releaser.errors import Cancelled

        if not ui.confirm("remove the lock whoever holds it?", assume_yes=yes):
            raise Cancelled("unlock cancelled; nothing was changed", hint="pass --yes to go ahead without asking")
        with open_fleet(env, "unlock") as fleet:
            servers = fleet.unlock(reason=reason)
    ui.say(f"unlocked {', '.join(servers)}")


@task(help={"keep": "Unpointed releases to keep on each server (default: keep_releases).", "yes": YES_HELP, "env": ENV_HELP})
def prune(c, keep=None, yes=False, env="local"):
    """Remove old releases, never one a slot points to."""
    from releaser import ui

    with exit_on_user_error():
        with open_fleet(env, "prune") as fleet:
            removed = fleet.prune(keep=None if keep is None else int(keep), approve=approver(yes))
    for server, releases in removed.items():
        ui.say(f"{server}: removed {', '.join(releases) or 'nothing'}")


@task(help={
    "source": "Directory holding the release's files.",
    "release_id": "Release id (letters, digits, '.', '_', '-').",
    "out": "Where to write the .tar.gz (default: dist/<release-id>.tar.gz).",
    "publication": "Publication this release carries (repeatable).",
})
def build(c, source=None, release_id=None, out=None, publication=None):
    """Build a release bundle (.tar.gz with a checksummed manifest)."""
    from datetime import datetime, timezone

    from releaser import ui
    from releaser.bundle import build_bundle

    with exit_on_user_error():
        require(source and release_id, "build needs --source DIR and --release-id ID")
        target = Path(out or f"dist/{release_id}.tar.gz")
        bundle = build_bundle(Path(source), release_id, target, publications=[publication] if publication else [],
                              now=datetime.now(timezone.utc))
    ui.say(f"built {bundle.release_id}: {bundle.path} ({len(bundle.manifest.files)} files, {bundle.size} bytes)")


@task(help={"release": "Only events about this release id.", "json": "Print JSON instead of a table.", "env": ENV_HELP})
def history(c, release=None, json=False, env="local"):
    """Show who did what, when, on every server."""
    from releaser import ui

    with exit_on_user_error():
        with open_fleet(env, "history") as fleet:
            events = fleet.read_history()
    if release:
        events = [e for e in events if release in (e.get("releases") or {}).values()]
    ui.show_history(events, as_json=json)


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

    with exit_on_user_error():
        run_demo(PROJECT)
