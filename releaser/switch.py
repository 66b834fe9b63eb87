"""The switch coordinator: one decision over many participants that must all move at the same second, or none.

    participants (each one thing that moves: the links on web-1, the front on web-1, the database)
      prepare   every participant at once, bounded   nothing the public sees changes
      wait      the caller's moment (a scheduled go-live waits for T here; Ctrl-C aborts every prepare);
                participants that can (`arm`) start their commit meanwhile, blocked until told go
      commit    every participant at once, bounded   Ctrl-C is held until commit or revert has ended;
                the armed ones are told go first, one line each, before any other work
      verify    every participant at once, bounded
      revert    on any failure: every participant that committed or may have, newest first

The coordinator knows phases, deadlines and outcomes, never what a participant does; a participant knows how
to move one thing and how to put it back, never the others. Adding a kind of participant (a web front, a
database) needs no change here. Each participant's end is a typed Outcome; `decide` turns the outcomes into
one Decision, and the shell (fleet) journals it and raises once, after every participant is consistent again.

A participant silent past its phase's deadline is LOST: the coordinator stops waiting for it (its thread is a
daemon and cannot keep the process alive), reverts the others, and says that the lost one may have moved
when the phase was commit or revert. A second Ctrl-C stops waiting for any participant still busy in that phase
(the revert that follows still waits for those that answer; one more press ends that wait too) and reports
what is known.

Arming is what keeps the second at scale: a commit started at T pays a channel, a shell and its processes on
every server at once, where an armed one has paid them during the wait and only reads one line at T. A
participant that cannot arm, or was not armed in time, commits the usual way; arming never fails a switch.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol, TypeVar

from releaser.clock import seconds_text
from releaser.errors import Cancelled, HostUnreachable, ReleaserError
from releaser.interrupts import raised_presses, raises_keyboard_interrupt


T = TypeVar("T")
INTERRUPTED = "ctrl-c"  # the cause's key when Ctrl-C, not a participant, made the switch revert


class StepFailed(Exception):
    """A participant's step failed and it knows how: it says why, and whether it moved anyway (`moved`).

    A commit that renamed and then failed (a reload hook exited 1) has moved; a revert that could not put
    a slot back has too. Without `moved`, nothing the step was asked to move has moved.
    """

    def __init__(self, detail: str, *, moved: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.moved = moved


def unless_unsent(step: Callable[[], T], prefix: str = "") -> T:
    """Run a participant's one command; a server the command never reached is a clean failure, not a lost one.

    A connection already closed before one byte of the command left (a server killed between prepare and
    commit) proves that nothing of it ran there: StepFailed, nothing moved. Any other lost connection stays
    what it is: the command may have run.
    """
    try:
        return step()
    except HostUnreachable as error:
        if not error.unsent:
            raise
        raise StepFailed(f"{prefix}not sent, nothing moved there: {error.what.removeprefix(error.server + ': ')}") from error


class Participant(Protocol):
    """One thing a switch moves. Every step gets the seconds it may take; a step that fails raises.

    `StepFailed` means the step did not happen (nothing moved); any other exception, or silence past the
    deadline, means the coordinator cannot know, and after commit it assumes the participant may have moved.
    `revert` and `abort` must be safe to run twice and after a half-done step.
    """

    name: str

    def prepare(self, timeout: float) -> None:
        """Get ready to move (links made under temporary names, a transaction prepared); nothing visible changes."""
        ...

    def commit(self, timeout: float) -> float | None:
        """Move; return the epoch second the move happened (for the skew figures), or None when not known."""
        ...

    def verify(self, timeout: float) -> None:
        """Check that what moved works and is what was meant (a health URL, a query)."""
        ...

    def revert(self, timeout: float) -> None:
        """Put back what commit moved, also after a commit that may only have half happened."""
        ...

    def abort(self, timeout: float) -> None:
        """Undo prepare: nothing moved, remove what prepare left."""
        ...


class ReadyCheck(Protocol):
    """A participant that can tell, from this process alone and at once, that it cannot commit (its connection to
    the server is already gone). Asked of every participant at the moment, before any is told to move: one that
    is not ready stops the switch with nothing moved anywhere, where committing the others would show the new
    release for the length of a revert."""

    def ready(self) -> str | None:
        """Why this participant cannot commit now, or None; must not wait for anything."""
        ...


class StoppableVerify(Protocol):
    """A participant whose verify can be told to end early: another participant's verify failed, so the switch
    reverts without waiting for it. `stop_verifying` must return at once; verify then ends soon, failing."""

    def stop_verifying(self) -> None:
        """Make a verify under way end (StepFailed) at its next look; never raises."""
        ...


class StoppablePrepare(Protocol):
    """A participant whose prepare can be told to end early: Ctrl-C cancelled the switch, so a prepare waiting on
    something (a database lock) need not wait out its deadline. `stop_preparing` must return at once; the prepare
    then ends soon, and the abort that follows undoes whatever it had done."""

    def stop_preparing(self) -> None:
        """Make a prepare under way end (StepFailed) soon; never raises."""
        ...


class ArmedCommit(Protocol):
    """A participant whose commit can be started during the wait and released at T by one write.

    `arm` runs in a thread of its own while the caller waits; `go` is called for every such participant in one
    loop at the moment, then `commit` as usual, which reads the armed commit's answer (or, when the arm did not
    finish in time, commits the usual way). An armed commit that is never told go must move nothing, also when
    this process goes away, and must give up by itself after `bound` seconds.
    """

    def arm(self, bound: float, timeout: float) -> None:
        """Start the commit, blocked until go(); give up by itself after `bound` seconds."""
        ...

    def go(self) -> None:
        """Tell the armed commit (if any) to move now; one write, no waiting, never raises."""
        ...


class State(str, Enum):
    """Where one participant ended."""

    PREPARED = "prepared"
    ABORTED = "aborted"
    COMMITTED = "committed"
    VERIFIED = "verified"
    UNHEALTHY = "unhealthy"  # committed, but verify failed and the switch keeps it (rollback)
    REVERTED = "reverted"
    FAILED = "failed"  # a step failed cleanly; for commit: this participant did not move
    LOST = "lost"  # no answer in time, or the connection broke mid-step: unknown


@dataclass(frozen=True)
class Outcome:
    """What became of one participant: its state, the phase it ended in, why, and whether it may have moved."""

    name: str
    state: State
    phase: str
    detail: str = ""
    may_have_moved: bool = False
    moved_at: float | None = None
    kept: str = ""  # why its abort failed, when it did: what it prepared is still there (it did not move)

    @property
    def is_back(self) -> bool:
        """True when this participant is where it was before the switch (or never left it)."""
        return self.state in (State.ABORTED, State.REVERTED, State.FAILED, State.PREPARED) and not self.may_have_moved


@dataclass(frozen=True)
class Deadlines:
    """Seconds each phase may take on one participant before it counts as lost."""

    prepare: float = 60.0
    commit: float = 10.0
    verify: float = 30.0
    revert: float = 20.0


class Decision(str, Enum):
    """What a switch came to, for every participant together."""

    COMMITTED = "committed"  # every participant moved (and verified, when asked)
    UNHEALTHY = "unhealthy"  # every participant moved, verify failed somewhere, and the switch keeps the move
    REFUSED = "refused"  # a prepare failed: nothing moved anywhere
    CANCELLED = "cancelled"  # Ctrl-C (or the wait) stopped it before commit: nothing moved
    REVERTED = "reverted"  # commit or verify failed and every participant is back
    MIXED = "mixed"  # a participant could not be put back or did not answer: the fleet may be mixed


@dataclass(frozen=True)
class SwitchReport:
    """The whole switch: the decision, every participant's outcome, why it failed, timings, interruptions."""

    decision: Decision
    outcomes: tuple[Outcome, ...]
    cause: dict[str, str] = field(default_factory=dict)  # participant -> why the switch did not commit
    timings: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False

    def outcome(self, name: str) -> Outcome:
        """The outcome of the named participant."""
        return next(o for o in self.outcomes if o.name == name)

    @property
    def lost(self) -> list[str]:
        """Participants that did not answer and may have moved: what nobody can vouch for."""
        return [o.name for o in self.outcomes if o.state is State.LOST and o.may_have_moved]

    @property
    def stuck(self) -> dict[str, str]:
        """Participants that answered but could not be put back, with why."""
        return {o.name: o.detail for o in self.outcomes if o.state is State.FAILED and o.may_have_moved}

    @property
    def kept(self) -> dict[str, str]:
        """Participants whose abort failed, with why: they did not move, but what they prepared is still there."""
        return {o.name: o.kept for o in self.outcomes if o.kept}

    @property
    def back(self) -> list[str]:
        """Participants known to be where they were before the switch."""
        return [o.name for o in self.outcomes if o.is_back]

    @property
    def skew(self) -> float | None:
        """Seconds between the first and the last move, when more than one was timed."""
        moments = [o.moved_at for o in self.outcomes if o.moved_at is not None]
        return max(moments) - min(moments) if len(moments) > 1 else (0.0 if moments else None)


def decide(outcomes: Sequence[Outcome], *, keep_unhealthy: bool = False) -> Decision:
    """Turn the participants' outcomes into one decision. Pure.

    MIXED as soon as one participant may have moved and is not known to be back; REVERTED when the switch
    reached commit and everything is back; REFUSED or CANCELLED when it never reached commit.
    """
    states = {o.state for o in outcomes}
    if any(o.may_have_moved and o.state in (State.LOST, State.FAILED) for o in outcomes):
        return Decision.MIXED
    if states <= {State.VERIFIED, State.COMMITTED}:
        return Decision.COMMITTED
    if keep_unhealthy and states <= {State.VERIFIED, State.COMMITTED, State.UNHEALTHY}:
        return Decision.UNHEALTHY
    if State.REVERTED in states or any(o.phase in ("commit", "verify", "revert") for o in outcomes):
        return Decision.REVERTED
    if any(o.phase == "cancel" for o in outcomes):
        return Decision.CANCELLED
    return Decision.REFUSED


class PrepareCancelled(Cancelled):
    """Ctrl-C before the commit: every participant was aborted, nothing moved (the caller journals it). `when`
    says at which point: "during prepare", or "before the commit" for a press CPython swallowed meanwhile."""

    def __init__(self, what: str, *, hint: str | None = None, when: str = "during prepare",
                 kept: Sequence[str] = ()) -> None:
        super().__init__(what, hint=hint)
        self.when = when
        self.kept = tuple(kept)  # servers whose prepared changes were not removed (Ctrl-C again stopped that wait)

    def kept_note(self) -> str:
        """What to add to the hint when some server may keep what was prepared, else nothing."""
        return (f"; {', '.join(self.kept)} may keep what was prepared there (the next switch or stage removes it)"
                if self.kept else "")


def run_switch(participants: Sequence[Participant], *, deadlines: Deadlines = Deadlines(), verify: bool = True,
               keep_unhealthy: bool = False, before_commit: Callable[[], None] | None = None,
               until_commit: Callable[[], float] | None = None,
               on_phase: Callable[[str], None] | None = None) -> SwitchReport:
    """Prepare, wait, commit, verify every participant; revert or abort them all on any failure; report.

    `before_commit` runs between prepare and commit (a scheduled go-live waits there for the second); if it
    raises, every participant is aborted and the exception goes on after that. With `until_commit` (how many
    seconds before_commit will wait, read once it starts), participants that can arm (ArmedCommit) are armed
    while it waits, each bounded by that wait plus the commit deadline, and told go at the moment. With
    `keep_unhealthy` (a rollback: the backup is the best there is) a failed verify is reported, not reverted. Ctrl-C during
    prepare aborts everything and raises Cancelled; from commit on, it is held until the switch has ended.
    """
    on_phase = on_phase or (lambda phase: None)
    names = [p.name for p in participants]
    if len(set(names)) != len(names):
        raise ValueError(f"participant names must be unique: {names}")
    by_name = {p.name: p for p in participants}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    presses = Presses()  # before commit, Ctrl-C raises as usual: it cancels
    try:
        on_phase("prepare")
        prepared = _run_phase(participants, "prepare", deadlines.prepare, presses)
    except KeyboardInterrupt as press:
        steps, steps_deadline = getattr(press, "steps", ((), 0.0))
        with _cleaning_up() as cleanup:
            for name, thread in steps:
                stop = getattr(by_name[name], "stop_preparing", None)
                if stop is not None and thread.is_alive():
                    stop()
            _let_steps_end(steps, steps_deadline, cleanup)
            aborted = _abort_all(participants, deadlines, cleanup)
        still = {name for name, thread in steps if thread.is_alive()}
        kept = sorted({o.name.split(":")[0] for o in aborted if o.detail or o.name in still})
        raise PrepareCancelled("switch cancelled during prepare (Ctrl-C); nothing was switched",
                               hint="run the same command again when ready", kept=kept) from None
    timings["prepare"] = time.perf_counter() - started
    failed = {name: step for name, step in prepared.items() if not step.ok}
    if failed:
        outcomes = _abort_all(participants, deadlines, presses, failed=failed, phase="prepare")
        return SwitchReport(decide(outcomes), outcomes, {n: s.detail for n, s in failed.items()}, timings)
    armed = False
    if before_commit is not None:
        if until_commit is not None:
            armed = _start_arming(participants, until_commit(), deadlines.commit)
        try:
            before_commit()
        except KeyboardInterrupt:
            with _cleaning_up() as cleanup:
                _abort_all(participants, deadlines, cleanup)
            raise
        except BaseException:
            _abort_all(participants, deadlines, presses)
            raise

    with held_interrupts() as presses:
        _AFTER["engaged"] = _AFTER["active"]  # from here on, a held_after_the_switch around this holds Ctrl-C to its end
        if raised_presses():  # a Ctrl-C before the commit that CPython swallowed: it still cancels, nothing moves
            _abort_all(participants, deadlines, presses)
            raise PrepareCancelled("switch cancelled before the commit (Ctrl-C); nothing was switched",
                                   hint="run the same command again when ready", when="before the commit")
        unready = _unready(participants)
        if unready:  # known before any is told to move (a server died during the wait): nobody moves
            failed = {name: _Step(False, detail=why, lost=True) for name, why in unready.items()}
            outcomes = _abort_all(participants, deadlines, presses, failed=failed, phase="ready")
            return SwitchReport(decide(outcomes), outcomes, {name: step.detail for name, step in failed.items()}, timings)
        moment = time.perf_counter()
        if armed:
            _say_go(participants)
        on_phase("commit")
        committed = _run_phase(participants, "commit", deadlines.commit, presses)
        timings["commit"] = time.perf_counter() - moment
        outcomes = {name: _after_commit(name, step) for name, step in committed.items()}
        cause = {name: step.detail for name, step in committed.items() if not step.ok}
        if not cause and verify and not presses.stopped:
            moment = time.perf_counter()
            on_phase("verify")
            # once one fails, the switch reverts: the public is not kept on the new release while the rest finish
            checked = _run_phase(participants, "verify", deadlines.verify, presses, until_failure=not keep_unhealthy)
            timings["verify"] = time.perf_counter() - moment
            for name, step in checked.items():
                if step.unjudged:  # still verifying when another failed: it stays COMMITTED, and is reverted with the rest
                    stop = getattr(by_name[name], "stop_verifying", None)
                    if stop is not None:
                        stop()
                    continue
                if step.ok:
                    outcomes[name] = replace(outcomes[name], state=State.VERIFIED, phase="verify")
                else:
                    outcomes[name] = replace(outcomes[name], state=State.UNHEALTHY, phase="verify", detail=step.detail)
                    cause[name] = step.detail
        if presses.count and not cause and not keep_unhealthy:  # a rollback interrupted still ends on the backup
            cause = {INTERRUPTED: "interrupted (Ctrl-C)"}
        if cause and not (keep_unhealthy and all(o.state in (State.VERIFIED, State.UNHEALTHY) for o in outcomes.values())):
            moment = time.perf_counter()
            on_phase("revert")
            outcomes = _revert(by_name, outcomes, deadlines.revert, presses)
            timings["revert"] = time.perf_counter() - moment
        # the wait before commit is not switching
        timings["switch"] = sum(timings.get(phase, 0.0) for phase in ("prepare", "commit", "verify", "revert"))
        final = tuple(outcomes[name] for name in names)
        return SwitchReport(decide(final, keep_unhealthy=keep_unhealthy), final, cause, timings, presses.count > 0)


class Presses:
    """Ctrl-C presses seen while a switch holds them: the first is noted, the second stops every wait."""

    def __init__(self) -> None:
        self.count = 0

    @property
    def stopped(self) -> bool:
        """True once Ctrl-C was pressed twice: stop waiting for participants still busy."""
        return self.count >= 2

    def stop_waiting_at(self) -> int:
        """The press count that ends the wait of a phase starting now: the second press, or, for a phase that
        starts after it (the revert), one more press, so the servers that answer are still put back."""
        return max(2, self.count + 1)


@contextmanager
def held_interrupts(said: str | None = None) -> Iterator[Presses]:
    """While the block runs, Ctrl-C is counted instead of raised (from the main thread only).

    The first press says that the switch finishes or is put back first; the second says that the command
    stops waiting and will report what it knows. A block that is no switch (the cleanup after a Ctrl-C,
    which waits for none of the presses) gives the line every press prints instead, as `said`.
    """
    presses = Presses()
    if threading.current_thread() is not threading.main_thread():
        yield presses
        return

    def note(signum, frame) -> None:
        presses.count += 1
        if said is not None:
            print(f"\nreleaser: {said}", file=sys.stderr, flush=True)
        elif presses.count == 1:
            print("\nreleaser: Ctrl-C noted; every server finishes this switch or is put back first, then it stops "
                  "(press Ctrl-C again to stop waiting for a server that does not answer)", file=sys.stderr, flush=True)
        else:
            print("\nreleaser: Ctrl-C again; no longer waiting for servers that have not answered in this step: the "
                  "switch goes on as if they had failed, so every server is put back, they too if they answer (Ctrl-C "
                  "again stops that wait too: they are then reported as not known)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield presses
    finally:
        signal.signal(signal.SIGINT, _said_after_the_switch if _AFTER["engaged"] else previous)


_AFTER = {"active": False, "engaged": False, "said": ""}  # held_after_the_switch's state (main thread only)


@contextmanager
def held_after_the_switch(said: str) -> Iterator[None]:
    """While the block runs, from the moment a switch in it reaches its commit, Ctrl-C is answered with `said`
    instead of raised, to the end of the block: what follows the switch (its journal lines, the unlock, the result
    or the error it makes) runs to its end, so the command ends as the switch did. Before that moment Ctrl-C is
    as usual (during prepare it cancels)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    _AFTER.update(active=True, engaged=False, said=said)
    try:
        yield
    finally:
        engaged = _AFTER["engaged"]
        _AFTER.update(active=False, engaged=False)
        if engaged:
            signal.signal(signal.SIGINT, before)


def _said_after_the_switch(signum, frame) -> None:
    print(f"\nreleaser: {_AFTER['said']}", file=sys.stderr, flush=True)


# ---- phases ----

def _start_arming(participants: Sequence[Participant], wait: float, commit_deadline: float) -> bool:
    """Start arming every participant that can, each in a thread, without waiting; False if none can or no time is left.

    Each armed commit gives up by itself `wait` + `commit_deadline` seconds from now: a go line can only come
    within the commit's own deadline of the moment. Arming stops trying at the moment (or the commit deadline).
    """
    armable = [p for p in participants if callable(getattr(p, "arm", None)) and callable(getattr(p, "go", None))]
    if not armable or wait <= 0:
        return False
    for participant in armable:
        threading.Thread(target=_arm_quietly, args=(participant, wait + commit_deadline, min(wait, commit_deadline)),
                         name=f"arm-{participant.name}", daemon=True).start()
    return True


def _arm_quietly(participant: ArmedCommit, bound: float, timeout: float) -> None:
    try:
        participant.arm(bound, timeout)
    except Exception:  # not armed: this participant commits the usual way at the moment
        pass


def _unready(participants: Sequence[Participant]) -> dict[str, str]:
    """Every participant that says it cannot commit now (ReadyCheck), with why; asking costs no round trip."""
    unready = {}
    for participant in participants:
        ready = getattr(participant, "ready", None)
        why = ready() if callable(ready) else None
        if why:
            unready[participant.name] = why
    return unready


def _say_go(participants: Sequence[Participant]) -> None:
    """At the moment: tell every armed participant to move, one after another in this thread, before anything else."""
    for participant in participants:
        go = getattr(participant, "go", None)
        if callable(go):
            try:
                go()
            except Exception:  # its commit reports what became of it
                pass


@dataclass(frozen=True)
class _Step:
    """How one participant's step ended: ok with a value, failed cleanly, or lost (exception or silence)."""

    ok: bool
    value: object = None
    detail: str = ""
    lost: bool = False
    moved: bool = False
    unjudged: bool = False  # not finished when the phase stopped waiting at another participant's failure


def _run_phase(participants: Sequence[Participant], phase: str, timeout: float, presses: Presses, *,
               until_failure: bool = False) -> dict[str, _Step]:
    """Run one phase on every participant at once; stop waiting at the deadline or when Ctrl-C is pressed again.

    With `until_failure`, also as soon as one participant's step has failed: the others' steps are left to end
    by their own deadlines (in daemon threads) and come back `unjudged`.
    """
    results: dict[str, _Step] = {}
    threads = []
    deadline = time.monotonic() + timeout + 1.0  # a second's grace over the participant's own deadline
    stop_at = presses.stop_waiting_at()
    failed = (lambda: any(not step.ok for step in list(results.values()))) if until_failure else (lambda: False)
    try:
        with _raised_once_started():  # a Ctrl-C as the steps start: no step is left running unknown to the wait below
            for participant in participants:
                thread = _StepThread(participant, phase, timeout, results)
                thread.start()
                threads.append((participant.name, thread))
        _join_steps(threads, deadline, lambda: presses.count >= stop_at or failed(), every=0.01 if until_failure else 0.05)
    except KeyboardInterrupt as press:  # Ctrl-C during prepare (the one phase not held): the abort that follows must
        press.steps = (threads, deadline)  # come after each step under way, or what it makes next is left behind
        raise
    gave_up = failed()
    ended = dict(results)  # a step still running may finish while this is read: what had ended counts
    for name, _ in threads:
        if name not in ended:
            if gave_up:
                ended[name] = _Step(False, detail="not judged: another participant's verify failed first", unjudged=True)
                continue
            why = "stopped waiting after Ctrl-C was pressed again" if presses.count >= stop_at else \
                f"no answer within {seconds_text(timeout)} s"
            ended[name] = _Step(False, detail=why, lost=True)
    return {name: ended[name] for name, _ in threads}


@contextmanager
def _raised_once_started() -> Iterator[None]:
    """Where Ctrl-C raises (prepare: not held), a press while the block starts the steps' threads raises at its end,
    with every thread started and known: raised inside Thread.start, it left a step running that nobody waited for."""
    handler = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not raises_keyboard_interrupt(handler):
        yield
        return
    pressed: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
    if pressed:
        handler(signal.SIGINT, None)  # raises KeyboardInterrupt, counted as the command's own handler counts it
        raise KeyboardInterrupt



@contextmanager
def _cleaning_up() -> Iterator[Presses]:
    """The cleanup after a Ctrl-C before the commit: further presses are counted, never raised, so the abort is not
    cut short (the prepared links and the prepared transaction would stay, unjournaled); one more stops its waits."""
    with held_interrupts("Ctrl-C again; no longer waiting for servers still busy: what they prepared stays until the "
                         "next switch or stage removes it") as presses:
        presses.count = 1  # the press that cancelled: the next one stops the waits (Presses.stop_waiting_at)
        yield presses


def _let_steps_end(threads: Sequence[tuple[str, "_StepThread"]], deadline: float, presses: Presses) -> None:
    """After a Ctrl-C, wait for the steps still running (each ends by its own deadline) before anything is undone:
    a front's prepare still writing its link aside, or a database's PREPARE TRANSACTION, finishing after the abort
    would stay behind. Another Ctrl-C stops that wait."""
    stop_at = presses.stop_waiting_at()
    _join_steps(threads, deadline, lambda: presses.count >= stop_at)


def _join_steps(threads: Sequence[tuple[str, "_StepThread"]], deadline: float, stop: Callable[[], bool], *,
                every: float = 0.05) -> None:
    """Wait for each step's thread to end, until `deadline` or until `stop()` says to wait no more."""
    for _, thread in threads:
        while thread.is_alive() and time.monotonic() < deadline and not stop():
            thread.join(min(every, max(0.0, deadline - time.monotonic())))


class _StepThread:
    """One step's daemon thread, whose end is told by an Event the step sets as its last act, not by the thread.

    CPython 3.11's Thread.join, interrupted by Ctrl-C while the thread runs, releases the lock that thread holds and
    marks it ended (bpo-45274's cleanup): is_alive() then says False of a prepare still writing its link aside, and
    the wait before the abort skipped it (QA: a front's .releaser-next left after "nothing was switched")."""

    def __init__(self, participant: Participant, phase: str, timeout: float, results: dict[str, _Step]) -> None:
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(participant, phase, timeout, results),
                                        name=f"{phase}-{participant.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self, participant: Participant, phase: str, timeout: float, results: dict[str, _Step]) -> None:
        try:
            _run_step(participant, phase, timeout, results)
        finally:
            self._ended.set()

    def is_alive(self) -> bool:
        return not self._ended.is_set()

    def join(self, timeout: float | None = None) -> None:
        self._ended.wait(timeout)


def _run_step(participant: Participant, phase: str, timeout: float, results: dict[str, _Step]) -> None:
    try:
        value = getattr(participant, phase)(timeout)
    except StepFailed as failure:
        results[participant.name] = _Step(False, detail=failure.detail, moved=failure.moved)
    except Exception as error:  # a broken connection, a timeout: the step may or may not have happened
        detail = getattr(error, "what", None) or str(error) or type(error).__name__
        # a refusal the participant knows for sure (bad configuration, a plan it will not follow) before it
        # touched anything; a prepare or abort only, where "nothing moved" is certain
        known = phase in ("prepare", "abort") and isinstance(error, ReleaserError) and not isinstance(error, HostUnreachable)
        results[participant.name] = _Step(False, detail=_without_name(detail, participant.name), lost=not known)
    else:
        results[participant.name] = _Step(True, value)


def _after_commit(name: str, step: _Step) -> Outcome:
    if step.ok:
        moved_at = step.value if isinstance(step.value, float) else None
        return Outcome(name, State.COMMITTED, "commit", moved_at=moved_at)
    if step.lost:
        return Outcome(name, State.LOST, "commit", step.detail, may_have_moved=True)
    return Outcome(name, State.FAILED, "commit", step.detail, may_have_moved=step.moved)


def _revert(by_name: dict[str, Participant], outcomes: dict[str, Outcome], timeout: float,
            presses: Presses) -> dict[str, Outcome]:
    """Put back every participant that moved or may have, newest move first; abort those that did not move."""
    moved = [name for name, o in outcomes.items() if o.state in (State.COMMITTED, State.VERIFIED, State.UNHEALTHY)
             or o.may_have_moved]
    moved.sort(key=lambda name: -(outcomes[name].moved_at or float("inf")))  # untimed (lost) ones first
    still = [by_name[name] for name, o in outcomes.items() if name not in moved]
    reverted = _run_phase([by_name[name] for name in moved], "revert", timeout, presses) if moved else {}
    aborted = _run_phase(still, "abort", timeout, presses) if still else {}
    result = dict(outcomes)
    for name, step in reverted.items():
        if step.ok:
            result[name] = replace(outcomes[name], state=State.REVERTED, phase="revert", may_have_moved=False,
                                   detail=outcomes[name].detail)
        else:
            state = State.LOST if step.lost else State.FAILED
            result[name] = replace(outcomes[name], state=state, phase="revert", detail=step.detail, may_have_moved=True)
    for name, step in aborted.items():
        result[name] = replace(outcomes[name], kept="" if step.ok else step.detail)
    return result


def _abort_all(participants: Sequence[Participant], deadlines: Deadlines, presses: Presses, *,
               failed: dict[str, _Step] | None = None, phase: str = "cancel") -> tuple[Outcome, ...]:
    """Abort every participant's prepare (nothing moved); a participant that cannot be reached keeps its leftovers."""
    aborted = _run_phase(participants, "abort", deadlines.revert, presses)
    outcomes = []
    for participant in participants:
        name = participant.name
        why = (failed or {}).get(name)
        if why is not None:
            outcomes.append(Outcome(name, State.LOST if why.lost else State.FAILED, phase, why.detail))
        else:
            outcomes.append(Outcome(name, State.ABORTED, phase, kept="" if aborted[name].ok else aborted[name].detail))
    return tuple(outcomes)


def _without_name(detail: str, name: str) -> str:
    return detail.removeprefix(f"{name}: ")
