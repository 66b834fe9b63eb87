"""The deploy lock across the fleet: taken on every server or none, held as a value, freed whatever happens.

Every changing command takes the lock inside its protected region (`DeployLock.held`) and gets a
`LockSession`: the servers where it took it, every server's slots read in the same round trip (so a plan
made from them cannot be overtaken), links prepared early for a go-live or rollback, and the journal lines
that travel to the servers with the unlock. Ctrl-C while it is being taken frees it everywhere by this
command's token and is journaled; Ctrl-C while it is being freed waits until that has ended.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from releaser import remote
from releaser.config import Environment
from releaser.errors import Cancelled, HostUnreachable, LockHeld, ReleaserError
from releaser.group import Group, summary
from releaser.locks import LockInfo, describe_lock, is_expired, new_lock, parse_lock
from releaser.order import counted, counted_items
from releaser.participants.links import EarlyPrepare
from releaser.recorder import Recorder
from releaser.serverstate import ServerReport, parse_status
from releaser.switch import held_interrupts
from releaser.transport import Completed

COMMAND_MINUTES = 30  # a command's lock expires after this, so a killed command never blocks the next for long
_LOCK_STEP_GRACE = 2.0  # seconds a Ctrl-C'd command still waits for lock steps under way before it frees the lock


@dataclass(frozen=True)
class Leftover:
    """What one server may still keep of a command once its lock was to be freed there, and why.

    `known` is False when the server did not answer that step (`answered` False), or its script ended in a
    way that says nothing of what it did: `lock` and `journal` then say only what may be left.
    """

    why: str
    answered: bool
    known: bool
    lock: bool = False  # this command's lock is (or, not known, may be) still held there
    journal: bool = False  # this command's journal lines are (or, not known, may be) missing there
    taking: bool = False  # not known because the step that takes the lock had not ended (Ctrl-C stopped the wait)
    skipped: bool = False  # not asked at all: it had not answered an earlier step of this command (said already)


@dataclass
class LockSession:
    """The deploy lock one command holds: its token, where it was taken, what was read under it.

    `lines` are the journal events that travel to the servers with the unlock; once the lock is freed,
    `stuck` names each server where freeing it or writing those lines failed, or that did not answer, with
    what is (or may be) left there.
    """

    token: str
    reason: str
    taken: list[str]
    reports: dict[str, ServerReport] = field(default_factory=dict)
    early: dict[str, EarlyPrepare] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    stuck: dict[str, Leftover] = field(default_factory=dict)
    seconds: float = 0.0  # how long taking it took (with `early`, that round trip also prepared the links)
    reported: bool = False  # its leftover warning went into a result or an error (else open_fleet shows it)
    switching: bool = False  # the switch under this lock has begun (its own Ctrl-C handling answers from then on)

    def leftover_warning(self) -> str:
        """Say which servers kept (or may keep) this command's lock or lack its journal lines, and what to do."""
        stuck = self.stuck
        taking = counted(name for name, left in stuck.items() if left.taking)
        skipped = counted(name for name, left in stuck.items() if left.skipped)
        silent = counted(name for name, left in stuck.items() if not left.answered and not left.taking and not left.skipped)
        unclear = counted(name for name, left in stuck.items() if left.answered and not left.known)
        kept = counted(name for name, left in stuck.items() if left.known and left.lock)
        missing = counted(name for name, left in stuck.items() if left.known and left.journal and not left.lock)
        parts = []
        if taking:
            parts.append(_unknown(taking, stuck, "had not ended the step that takes the lock when the wait stopped"))
        if skipped:  # why it fell silent is the command's own message; here only what that leaves behind
            parts.append(_unknown(skipped, stuck, f"{'was' if len(skipped) == 1 else 'were'} not asked to free this "
                                  "command's lock and write its journal lines, having not answered earlier", why=False))
        if silent:
            parts.append(_unknown(silent, stuck, "did not answer the step that frees this command's lock and writes its "
                                                 "journal lines"))
        if unclear:
            parts.append(_unknown(unclear, stuck, "could not run the step that frees this command's lock and writes its "
                                                  "journal lines"))
        if kept:
            journal = [name for name in kept if stuck[name].journal]
            lacks = (f"; the journal on {', '.join(journal)} also lacks this command's events (this machine's journal "
                     "has them)") if journal else ""
            parts.append(f"{', '.join(kept)} still {'holds' if len(kept) == 1 else 'hold'} this command's lock "
                         f"({_why(kept, stuck)}){lacks}: run: invoke unlock --reason TEXT")
        if missing:
            parts.append(f"the journal on {', '.join(missing)} lacks this command's events ({_why(missing, stuck)}); "
                         f"this machine's journal has them, and the lock was freed there")
        return "; ".join(parts)


def _unknown(names: list[str], stuck: dict[str, Leftover], lead: str, *, why: bool = True) -> str:
    """The warning for servers where nobody knows what the step that frees the lock and writes the journal did."""
    one = len(names) == 1
    lock = any(stuck[name].lock for name in names)
    may = []
    if lock:
        may.append(f"{'it' if one else 'they'} may still hold the lock")
    if any(stuck[name].journal for name in names):
        may.append(f"{'its' if one else 'their'} journal may lack this command's events (this machine's journal has them)")
    said = f": {' and '.join(may)}" if may else ""
    answers = (f"once {'it answers' if one else 'they answer'}" if not stuck[names[0]].answered
               else f"if status shows {'it' if one else 'them'} locked")
    unlock = f", and {answers}: invoke unlock --reason TEXT" if lock else ""
    because = f" ({_why(names, stuck)})" if why else ""
    return f"{', '.join(names)} {lead}{because}{said}; run: invoke status{unlock}"


def _why(names: list[str], stuck: dict[str, Leftover]) -> str:
    return stuck[names[0]].why if len(names) == 1 else summary({name: stuck[name].why for name in names})


class DeployLock:
    """The lock on every server of a group, taken and freed for one command at a time."""

    def __init__(self, group: Group, recorder: Recorder) -> None:
        self.group = group
        self.recorder = recorder
        self.session: LockSession | None = None  # the one held now, if any
        self.freed: list[LockSession] = []  # every session this command held, once freed
        self._lock_steps: dict[str, bool] = {}

    @contextmanager
    def held(self, reason: str, *, prepare_for: str | None = None) -> Iterator[LockSession]:
        """Hold the deploy lock on every server while the block runs, and free it afterwards, whatever happens.

        Yields the held lock with every server's report, read in the same round trip just after the lock was
        taken. With `prepare_for` ("go-live", "rollback") that round trip also prepares each server's links
        for it; the links participant uses them only where they equal the plan. Journal events of the block
        travel with the unlock, in one round trip. After the block, `session.stuck` names the servers that
        kept the lock or missed the journal lines.
        """
        token = uuid.uuid4().hex
        doing = reason.split()[0]
        started = time.perf_counter()
        try:
            session = self._take(reason, token=token, kind="command", minutes=COMMAND_MINUTES, prepare_for=prepare_for)
            session.seconds = time.perf_counter() - started
        except HostUnreachable as error:  # journaled: a breach report shows a go-live refused for a server down
            self.recorder.write(doing, "refused", detail=error.what)
            raise
        except KeyboardInterrupt:
            with held_interrupts("Ctrl-C noted; the lock this command was taking is being freed on every server, "
                                 "then it stops"):
                busy = self._wait_for_lock_steps(_LOCK_STEP_GRACE)  # freed before it is taken, a lock stays behind
                session = LockSession(token, reason, taken=self.group.reachable)
                session.lines.append(self.recorder.line(doing, "cancelled", detail="Ctrl-C while the lock was being taken"))
                self._free(session)
                for name in busy:
                    session.stuck[name] = Leftover("Ctrl-C again stopped the wait for it", answered=False, known=False,
                                                   lock=True, journal=True, taking=True)
            if session.stuck:
                raise Cancelled(f"{doing} cancelled while the lock was being taken (Ctrl-C); nothing was switched; "
                                f"{session.leftover_warning()}", hint="then run the same command again when ready") from None
            raise Cancelled(f"{doing} cancelled while the lock was being taken (Ctrl-C); the lock was freed, and "
                            "nothing was switched", hint="run the same command again when ready") from None
        self.session, self.recorder.pending = session, session.lines
        failure: ReleaserError | None = None
        try:
            yield session
        except KeyboardInterrupt:
            if prepare_for is None or session.switching:
                raise
            failure = self._cancelled_before_the_switch(session, doing)
            raise failure from None
        except ReleaserError as error:
            failure = error
            raise
        finally:
            with held_interrupts(f"Ctrl-C noted; the lock is being freed on every server, then the {doing} ends as "
                                 "its work did"):
                self._free(session)
            self.freed.append(session)
            if failure is not None and session.stuck:
                failure.hint = (failure.hint + "; " if failure.hint else "") + session.leftover_warning()
                session.reported = True

    def _cancelled_before_the_switch(self, session: LockSession, doing: str) -> Cancelled:
        """Ctrl-C after a switch's lock was taken (its links prepared) and before the switch began: journaled with
        the unlock like any cancellation, and said as what it is, not as a Ctrl-C outside any switch."""
        session.lines.append(self.recorder.line(doing, "cancelled", detail="Ctrl-C after the lock was taken, before the switch"))
        return Cancelled(f"{doing} cancelled before the switch (Ctrl-C); nothing was switched",
                         hint="run the same command again when ready")

    def unreported_leftovers(self) -> list[str]:
        """The leftover warnings of freed sessions that no result or error carried (prune, data-upload, notice...)."""
        return [session.leftover_warning() for session in self.freed if session.stuck and not session.reported]

    def take(self, reason: str, *, token: str, kind: str, minutes: float) -> list[str]:
        """Take the lock on every server or on none; return the servers where this call took it.

        An expired lock is taken over. A manual lock held by the same person lets their own commands through.
        """
        return self._take(reason, token=token, kind=kind, minutes=minutes).taken

    def unlock(self, *, reason: str) -> list[str]:
        """Remove the lock on every reachable server whoever holds it; the reason goes in the journal."""
        front = front_file(self.group.environment)
        self.group.run(lambda name: remote.unlock_argv(self.group.root(name), None, front=front))
        self.recorder.write("unlock", "done", reason=reason)
        return self.group.reachable

    def _free(self, session: LockSession) -> None:
        """Write the held journal lines and free this command's lock where it took it; note where that failed."""
        self.session, self.recorder.pending = None, None
        lines, group = session.lines, self.group
        names = [name for name in group.hosts if name in session.taken or (lines and name not in group.unreachable)]
        outcomes = group.each_reconnecting(lambda name: group.hosts[name].run(
            remote.finish_argv(group.root(name), session.token if name in session.taken else "", lines)), names)
        session.stuck = {name: left for name, outcome in outcomes.items()
                         if (left := finish_leftover(outcome, held=name in session.taken, lines=bool(lines)))}

    def _wait_for_lock_steps(self, seconds: float) -> list[str]:
        """After Ctrl-C while the lock was being taken: let the lock steps still running end (a server answers in
        milliseconds) for up to `seconds`, so the lock is freed after it was taken there; the servers still busy."""
        deadline = time.monotonic() + seconds
        while (busy := [name for name, ended in list(self._lock_steps.items()) if not ended]) and time.monotonic() < deadline:
            time.sleep(0.01)
        return counted(busy)

    def _take(self, reason: str, *, token: str, kind: str, minutes: float, prepare_for: str | None = None) -> LockSession:
        group, actor, now = self.group, self.recorder.actor, self.recorder.clock.now()
        info = new_lock(actor, reason, now, minutes=minutes, token=token, kind=kind, machine=socket.gethostname(),
                        pid=os.getpid())
        self._lock_steps = {}  # server -> whether its lock step has ended (a Ctrl-C may leave some running)
        front = front_file(group.environment)  # what a switch of the front left beside it goes with the rest

        def lock_and_read(name: str):
            self._lock_steps[name] = False
            try:
                return group.hosts[name].run(remote.lock_argv(group.root(name), info.to_json(), prepare_for=prepare_for,
                                                              front=front))
            finally:
                self._lock_steps[name] = True

        outcomes = dict(group.each(lock_and_read))
        answers = {name: lock_answer(name, o) for name, o in outcomes.items()}
        expired = [name for name, (said, holder, _, _) in answers.items()
                   if said == "held" and holder and is_expired(holder, now)]
        if expired:
            group.run(lambda name: remote.unlock_argv(group.root(name), answers[name][1].token), expired)
            outcomes.update(group.each(lock_and_read, expired))
            answers.update({name: lock_answer(name, outcomes[name]) for name in expired})
        # the connection went during the step: the server may have taken the lock (and prepared links) all the same
        lost = {name for name, o in outcomes.items() if isinstance(o, HostUnreachable) and not o.answered}
        taken = [name for name, (said, _, _, _) in answers.items() if said == "taken"]
        holders = {name: holder for name, (said, holder, _, _) in answers.items() if said == "held"}
        refusal = lock_refusal(holders, actor=actor, kind=kind)  # the expired ones were taken over just above
        errors = {name: report.error for name, (said, _, report, _) in answers.items() if said == "error"}
        if refusal or errors:  # give back what was taken, with any links the lock's trip prepared early; where the
            # connection broke, over a new one: a reset is not a server down, and a lock left would refuse the re-run
            freed = self._give_back([*taken, *sorted(lost)], token)
            if refusal:
                raise refusal
            name, error = counted_items(errors)[0]
            if name in freed:
                raise HostUnreachable(name, f"the connection broke while the lock was being taken ({error}); over a new "
                                      f"connection {name} was left without this command's lock, and nothing was switched",
                                      hint="run the command again")
            if name in lost:
                raise HostUnreachable(name, f"did not answer while the lock was being taken ({error}); it may hold this "
                                      "command's lock now; nothing was switched",
                                      hint="once it answers, run: invoke status, and if it shows this lock: invoke "
                                           "unlock --reason TEXT")
            raise HostUnreachable(name, f"cannot take the lock: {error}", answered=True,
                                  hint="nothing was changed; check the server, then run the command again")
        return LockSession(token, reason, taken, {name: report for name, (_, _, report, _) in answers.items()},
                           {name: early for name, (_, _, _, early) in answers.items() if early is not None})


    def _give_back(self, names: list[str], token: str) -> set[str]:
        """Free this command's lock (and the links its trip prepared) on `names`, once more on a new connection
        where the connection broke (a silent server is not asked again); the servers where that was done."""
        group = self.group
        outcomes = group.each_reconnecting(lambda name: group.hosts[name].run(
            remote.finish_argv(group.root(name), token, [])), names) if names else {}
        return {name for name, outcome in outcomes.items() if isinstance(outcome, Completed) and outcome.ok}


def lock_refusal(holders: Mapping[str, LockInfo | None], *, actor: str, kind: str,
                 expired_at: datetime | None = None) -> LockHeld | None:
    """The LockHeld a command of `kind` by `actor` meets where `holders` hold the lock (None: an unreadable holder),
    or None when it may go on: a manual lock lets its holder's own commands through, and with `expired_at` (a dry
    run, which takes nothing) a lock expired by then counts as taken over, as the command would take it over.

    Shared by the lock itself and the dry runs, so a dry run refuses what the command would.
    """
    refusing = {name: holder for name, holder in holders.items()
                if not (holder and ((expired_at is not None and is_expired(holder, expired_at))
                                    or (holder.owner == actor and holder.kind == "manual" and kind == "command")))}
    if not refusing:
        return None
    name, holder = counted_items(refusing)[0]
    return LockHeld(f"{describe_lock(holder)} on {', '.join(counted(refusing))}", hint="wait, or run: invoke unlock --reason TEXT")


def front_file(environment: Environment) -> str | None:
    """The nginx front's link or include ([application.front] socket or include, relative to the app root),
    beside which a switch prepares its new one; None without a front. The lock's cleanup removes what a switch
    cut short left there (a server lost mid-go-live keeps its prepared .releaser-next)."""
    front = environment.application.front if environment.application is not None else None
    return (front.socket or front.include) if front is not None else None


def finish_leftover(outcome: object, *, held: bool, lines: bool) -> Leftover | None:
    """Read the finish script's answer on one server: None when all is done there, else what is (or may be) left.

    `held`: this command took the lock there and asked to free it; `lines`: it sent journal lines. The
    script's own exit status says which part failed (remote.FINISH_BASE plus FINISH_LOCK_KEPT and/or
    FINISH_JOURNAL_MISSED); an error or any other status means nothing is known of either.
    """
    if isinstance(outcome, Exception):
        what = outcome.what if isinstance(outcome, ReleaserError) else str(outcome)
        why = what.removeprefix(f"{outcome.server}: ") if isinstance(outcome, HostUnreachable) else what
        skipped = isinstance(outcome, HostUnreachable) and outcome.silent and outcome.unsent
        return Leftover(why, answered=False, known=False, lock=held, journal=lines, skipped=skipped)
    if not isinstance(outcome, Completed) or outcome.ok:
        return None
    flags = outcome.exit_code - remote.FINISH_BASE
    if 0 < flags <= remote.FINISH_LOCK_KEPT | remote.FINISH_JOURNAL_MISSED:
        lock, journal = held and bool(flags & remote.FINISH_LOCK_KEPT), lines and bool(flags & remote.FINISH_JOURNAL_MISSED)
        return Leftover(outcome.reason(), answered=True, known=True, lock=lock, journal=journal) if lock or journal else None
    return Leftover(outcome.reason(), answered=True, known=False, lock=held, journal=lines)


def lock_answer(name: str, outcome: object) -> tuple[str, LockInfo | None, ServerReport, EarlyPrepare | None]:
    """Split the lock script's answer: "taken" | "held" | "error", the holder when held, the report, links prepared early."""
    if isinstance(outcome, Exception):
        return "error", None, ServerReport(name, None, error=str(outcome).removeprefix(f"{name}: ")), None
    first, _, rest = outcome.stdout.partition("\n")
    said = first.split(" ", 1)[0]
    if not outcome.ok or said not in ("taken", "held"):
        return "error", None, ServerReport(name, None, error=outcome.reason()), None
    holder = parse_lock(first[len("held"):].strip()) if said == "held" else None
    early = [line.split()[1:] for line in rest.splitlines() if line.startswith("prepared ")]
    prepared = EarlyPrepare(tuple(early[-1])) if early else None
    return said, holder, parse_status(name, Completed(outcome.exit_code, rest, outcome.stderr)), prepared
