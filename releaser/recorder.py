"""What a fleet command journals: one event per step, on every server and in the local journal, and notified.

While a command holds the deploy lock its events wait in the held lock (`pending`) and reach the servers
with the unlock, in the same round trip; otherwise they are appended on every reachable server at once.
The local journal gets every event as it happens, so a server that missed one never loses it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from releaser import remote
from releaser.group import summary
from releaser.journal import append_local, event_line, make_event, merge_history, parse_lines, read_local
from releaser.order import counted
from releaser.transport import Completed


class Recorder:
    """The journal of one fleet command: who acts, on which environment, when, and where the events go."""

    def __init__(self, group, *, actor: str, clock, journal_path: Path | None = None) -> None:
        self.group = group
        self.environment = group.environment
        self.actor = actor
        self.clock = clock
        self.journal_path = journal_path
        self.notifier = None  # set by fleet.connected() when the environment has notification channels
        self.deliveries: list = []
        self.context: dict = {}  # fields every event of the current go-live carries (planned time etc.)
        self.pending: list[str] | None = None  # while a lock is held: its journal lines wait for the unlock
        self.missed: list[tuple[str, dict[str, str]]] = []  # (action, {server: why}) of appends that failed

    def write(self, action: str, outcome: str, **fields) -> None:
        """Append one event to every reachable server's journal and to the local one; never raises for a server."""
        event = self._event(action, outcome, **fields)
        line = event_line(event)
        if self.pending is not None:
            self.pending.append(line)  # a lock is held: the line reaches the servers with the unlock
        else:
            outcomes = self.group.run(lambda name: remote.append_journal_argv(self.group.root(name), line),
                                      self.group.reachable)
            if outcomes.failed:
                self.missed.append((action, outcomes.failed))
        if self.journal_path is not None:
            append_local(self.journal_path, event)
        if self.notifier is not None:
            self.notifier.send(event)  # in the background: a channel that is down never delays a switch

    def missed_warnings(self) -> list[str]:
        """One sentence per event some server's journal did not take (a full disk, a server gone), and where it is."""
        kept = "this machine's journal has it" if self.journal_path is not None else "no other journal has it"
        return [f"the journal on {', '.join(counted(failed))} lacks this command's {action} event ({_why(failed)}); {kept}"
                for action, failed in self.missed]

    def line(self, action: str, outcome: str, **fields) -> str:
        """One journal line, for a step that writes it itself (with the unlock); also kept in the local journal."""
        event = self._event(action, outcome, **fields)
        if self.journal_path is not None:
            append_local(self.journal_path, event)
        return event_line(event)

    def _event(self, action: str, outcome: str, **fields) -> dict:
        fields["extra"] = {**self.context, **(fields.get("extra") or {})}
        return make_event(action, event_id=uuid.uuid4().hex, environment=self.environment.name, actor=self.actor,
                          now=self.clock.now(), outcome=outcome, servers=counted(self.group.hosts), **fields)

    def finish_notifications(self) -> None:
        """Wait briefly for this command's notifications and journal every channel that failed."""
        if self.notifier is None:
            return
        self.deliveries = self.notifier.wait()
        for delivery in self.deliveries:
            if not delivery.ok:
                self.write("notify", "failed", detail=f"{delivery.channel} ({delivery.event_name}): {delivery.detail}")

    def read_history(self) -> list[dict]:
        """Merge every reachable server's journal and the local one into one timeline."""
        outcomes = self.group.run(lambda name: remote.read_journal_argv(self.group.root(name)), self.group.reachable)
        by_server = {name: parse_lines(o.stdout) for name, o in outcomes.items() if isinstance(o, Completed)}
        return merge_history(by_server, read_local(self.journal_path) if self.journal_path else [])


def _why(failed: dict[str, str]) -> str:
    """The one server's reason, or each server's named."""
    return next(iter(failed.values())) if len(failed) == 1 else summary(failed)
