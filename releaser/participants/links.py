"""The slot links on one server as a switch participant: prepared under temporary names, renamed at commit.

prepare  checks the target release is there and intact (sha256sum of every file, unless a check in the last
         15 minutes did and nothing in it changed since), makes each new link as .releaser/next-<slot>
commit   checks nothing in the release changed since (inode change times newer than next-live) and renames
         the links over the slots (`mv -T`, atomic), all in one
         round trip; a release changed since prepare is refused there, before anything is renamed
arm/go   a scheduled go-live starts the commit script before T (arm: its own channel, its shell, blocked reading
         one line), and at T only writes "go" to it; commit then reads its answer. A server that was not armed
         in time commits the usual way. The script renames nothing on end of file or after its bound
verify   GETs the server's live URL (a rehearsal: its staging URL) against [health], then its release marker
         (releaser.identity), which must name the release just switched to: a web server still serving the
         old directory, or a cache in front of it, fails verification like a 500 does
revert   puts every touched slot back on its old release by the same kind of rename, on a new connection
         if the old one broke
abort    removes the temporary links
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from releaser import remote
from releaser.arming import NO_GO, ArmedScript
from releaser.config import Environment
from releaser.hooks import run_hook
from releaser.identity import judge_served, read_served
from releaser.participants import SwitchContext
from releaser.slots import LinkChange
from releaser.switch import StepFailed, unless_unsent
from releaser.transport import Completed, once_more_on_a_new_connection
from releaser.web import Probe, probe


_REFUSED = 4  # the commit script refused before renaming anything: the release changed since prepare, or a prepared link is gone


@dataclass(frozen=True)
class EarlyPrepare:
    """Links the lock's round trip already prepared on a server (its slot=release words)."""

    pairs: tuple[str, ...]


def participants(context: SwitchContext) -> list["ServerLinks"]:
    """One links participant per server whose plan changes a link."""
    return [ServerLinks(context, name, plan.links) for name, plan in context.plans.items() if plan.links]


def check_health(environment: Environment, server_name: str, *, rehearsal: bool = False,
                 timeout: float | None = None, expect: str | None = None) -> Probe:
    """GET a server's live URL (a rehearsal's: its staging URL) against [health], and its release marker.

    verify's probe, and status's. The marker says which release the public really sees there (`Probe.served`);
    with `expect`, a healthy answer from any other release (or no marker) fails the probe, saying the web
    server serves a stale copy. With [application] the front participant checks the release the front answers
    with, so verify reads nothing more here; status reads it (the instance's release header, or the marker
    through the front) to show what the public sees.
    """
    server = environment.server(server_name)
    health = environment.health
    headers = {}
    if rehearsal:
        access = environment.staging_access
        headers = access.headers(os.environ) if access else {}  # staging is embargoed: it needs the credential
    base = server.staging_url if rehearsal else server.live_url
    wait = min(health.timeout, timeout) if timeout else health.timeout
    answer = probe(base + health.path, status=health.status, contains=health.contains, timeout=wait,
                   attempts=health.attempts, headers=headers)
    if environment.application is not None and expect is not None:
        return answer  # the front participant verifies what the front answers with
    answer = replace(answer, served=served_at(environment, base, timeout=wait, headers=headers))
    problem = judge_served(answer.served, expect) if expect is not None and answer.ok else None
    return replace(answer, ok=False, detail=problem) if problem else answer


def served_at(environment: Environment, base_url: str, *, timeout: float, headers: dict[str, str] | None = None):
    """Which release the public sees at a site's URL: its release marker, or with [application] the release the
    instance answering through the front names (releaser.identity.Served)."""
    if environment.application is not None:
        from releaser.participants.front import public_release

        return public_release(environment.application, base_url, timeout=timeout)
    return read_served(base_url, timeout=timeout, headers=headers)


class ServerLinks:
    """The live / backup / staging links on one server, moved together by one switch."""

    def __init__(self, context: SwitchContext, server: str, changes: tuple[LinkChange, ...]) -> None:
        self.name = server
        self.server = server
        self.context = context
        self.changes = changes
        self.host = context.hosts[server]
        self.root = context.roots[server]
        self.going_live = next((c.new for c in changes if c.slot == "live" and c.new), None)
        self.moved_at: float | None = None
        self.probe: Probe | None = None
        self._committing = False  # the commit step is under way and has not come back (the coordinator may give up)
        self._gate = ArmedScript(self.host)  # the commit script started ahead of T, waiting for its go line

    def prepare(self, timeout: float) -> None:
        """Check the release and make the new links under temporary names; nothing the public sees changes."""
        early = self.context.early.get(self.server)
        if isinstance(early, EarlyPrepare) and early.pairs == remote.prepared_pairs(self.changes):
            return
        done = self.host.run(remote.prepare_argv(self.root, self.changes), timeout=timeout)
        if not done.ok:
            raise StepFailed(done.reason())

    def ready(self) -> str | None:
        """At the second, before anyone moves: why this server cannot be told to commit (its connection is gone)."""
        return self.host.broken()

    def arm(self, bound: float, timeout: float) -> None:
        """Start this server's commit ahead of the second, blocked until go(); it gives up by itself after `bound` s.

        Runs in a thread of its own while the go-live waits for T (releaser.arming); a server not armed in time
        commits the usual way.
        """
        if self.going_live is None:
            return  # the check before the rename needs the release going live; without one, commit as usual
        self._gate.arm(remote.armed_commit_argv(self.root, self.changes, bound=bound, unchanged=self.going_live), timeout)

    def go(self) -> None:
        """Write the go line to the armed commit, if it is armed; never waits for its answer (commit reads it)."""
        self._gate.go()

    def commit(self, timeout: float) -> float | None:
        """Rename the prepared links over the slots, unless the release changed since prepare.

        An armed commit that was told go is only read here; otherwise the commit script runs now. An armed one
        that says no go line reached it in time (this process was late past its bound) renamed nothing: the
        commit script runs now, as for a server that was never armed.
        """
        self._committing = True
        try:
            done = self._gate.answer(timeout)
            if done is None or done.exit_code == NO_GO:
                self._gate.disarm()
                done = unless_unsent(lambda: self.host.run(remote.commit_argv(self.root, self.changes,
                                                                              unchanged=self.going_live), timeout=timeout))
        finally:
            self._committing = False
        if not done.ok:  # exit 4: refused before any rename; else maybe half done
            raise StepFailed(f"commit failed: {done.reason()}", moved=done.exit_code != _REFUSED)
        self.moved_at = float(done.stdout.split()[0]) if done.stdout.strip() else None
        failed = self._hook("after_switch", self.context.target, timeout)
        if failed is not None:
            raise StepFailed(failed, moved=True)
        return self.moved_at

    def verify(self, timeout: float) -> None:
        """GET the server's live URL (a rehearsal's staging URL), judge it against [health], check its marker.

        A rehearsal of an application release asks the staging instance instead, on the server: it serves the
        staged release on a private port, and nothing answers the staging URL with it.
        """
        if self.context.rehearsal and self.context.environment.application is not None:
            self._verify_the_staging_instance(timeout)
            return
        self.probe = check_health(self.context.environment, self.server, rehearsal=self.context.rehearsal,
                                  timeout=timeout, expect=self.going_live or self.context.target)
        if not self.probe.ok:
            raise StepFailed(self.probe.detail)

    def _verify_the_staging_instance(self, timeout: float) -> None:
        """The rehearsed release's instance answers its health path on its server (and names that release)."""
        from releaser.instances import read_instances

        release = self.context.target
        environment = self.context.environment
        root = environment.app_root(environment.server(self.server))  # the real one: a rehearsal's roots are copies
        instance = read_instances(self.host, environment, root, timeout=timeout).of_release(release) if release else None
        if instance is None:
            raise StepFailed(f"no instance of {release} runs on this server; stage it again to start one")
        if not instance.is_healthy or (instance.reports is not None and instance.reports != release):
            answer = f"status {instance.health}" if instance.health is not None else "no answer"
            named = f", release {instance.reports}" if instance.reports and instance.reports != release else ""
            raise StepFailed(f"the staging instance of {release} on port {instance.port} fails GET "
                             f"{self.context.environment.application.health_path} ({answer}{named})")

    def revert(self, timeout: float) -> None:
        """Put every slot this switch touched back on its old release; try once more on a new connection.

        When this server's commit never came back (the coordinator gave up on it), its connection is the one
        that went silent: the revert goes over a new connection at once, instead of waiting out its deadline
        on that one first (on 20 servers that cost the revert deadline twice).
        """
        self._gate.disarm()

        def restore() -> Completed:
            return self.host.run(remote.restore_argv(self.root, self.changes), timeout=timeout)

        if self._committing:
            self.host.reconnect()
            done = restore()
        else:
            done = once_more_on_a_new_connection(self.host, restore)
        if not done.ok:
            raise StepFailed(done.reason(), moved=True)
        self._hook("after_switch", self.context.previous, timeout)

    def abort(self, timeout: float) -> None:
        """Remove the temporary links prepare made; no slot was touched."""
        self._gate.disarm()
        done = once_more_on_a_new_connection(self.host, lambda: self.host.run(remote.abort_argv(self.root), timeout=timeout))
        if not done.ok:
            raise StepFailed(done.reason())

    def _hook(self, hook: str, release: str | None, timeout: float) -> str | None:
        if self.context.rehearsal:
            return None  # a rehearsal must not reload the real web server
        return run_hook(self.host, self.context.environment, hook, release=release, slot=self.context.slot,
                        root=self.root, timeout=timeout)
