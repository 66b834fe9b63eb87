"""Every server of one environment, connected once: open, fan out one step to all of them, close.

A `Group` is what every fleet command talks to servers through. It runs a step on every server in
parallel and returns a `GroupResult`, one value per server (like Fabric's GroupResult): what the step
returned where it worked, the error where it did not, with `succeeded`, `failed` and `summary()`. A
transport error never escapes a step: it becomes that server's value, so one dead server never hides
what the others did. After Ctrl-C every server's current step is let end (each has a deadline) before the
command goes on to its cleanup.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import PurePosixPath

from releaser.errors import HostKeyChanged, HostUnreachable, ReleaserError
from releaser.order import counted, counted_items
from releaser.transport import Completed, Host, make_hosts, once_more_on_a_new_connection

Progress = Callable[[str, str], None]


class GroupResult(dict):
    """One step's outcome on every server it ran on: server name -> what it returned, or the error it raised.

    A Completed that exited non-zero counts as failed, as does any exception; `failed` gives each failed
    server's one-line reason and `summary()` the line an error message quotes.
    """

    @property
    def succeeded(self) -> dict[str, object]:
        """The servers where the step worked, with what it returned."""
        return {name: value for name, value in self.items() if name not in self.failed}

    @property
    def failed(self) -> dict[str, str]:
        """The servers where the step failed, each with why in one line."""
        return failures(self)

    def summary(self) -> str:
        """`web-1 (why); web-2 (why)` for the failed servers, as error messages say it."""
        return summary(self.failed)


def failures(outcomes: Mapping[str, object]) -> dict[str, str]:
    """Each server whose outcome is an exception, a failed command or a failed result, with why in one line."""
    failed = {}
    for name, outcome in outcomes.items():
        if isinstance(outcome, Exception):
            failed[name] = str(outcome).removeprefix(f"{name}: ")
        elif isinstance(outcome, Completed) and not outcome.ok:
            failed[name] = outcome.reason()
        elif getattr(outcome, "ok", True) is False and hasattr(outcome, "detail"):
            failed[name] = outcome.detail
    return failed


def summary(failed: Mapping[str, str]) -> str:
    """Name every failed server with its reason, sorted, on one line."""
    return "; ".join(f"{name} ({detail})" for name, detail in counted_items(failed))


class Group:
    """The servers of one environment with their open connections, and the one way to reach them all at once."""

    def __init__(self, environment, *, hosts: Mapping[str, Host] | None = None, progress: Progress | None = None) -> None:
        self.environment = environment
        self.hosts = dict(hosts) if hosts is not None else make_hosts(environment)
        self.progress = progress or (lambda server, message: None)
        self.unreachable: dict[str, HostUnreachable] = {}
        self.stop = threading.Event()  # set by Ctrl-C: long work (uploads) ends at its next step or chunk
        self._pool = ThreadPoolExecutor(max_workers=min(environment.parallel, len(self.hosts)) or 1)

    def connect(self) -> None:
        """Open every server's connection in parallel; servers that fail are kept in `unreachable`."""
        outcomes = self.each(lambda name: self.hosts[name].open() if hasattr(self.hosts[name], "open") else None)
        self.unreachable = {name: error for name, error in outcomes.items() if isinstance(error, HostUnreachable)}

    def close(self) -> None:
        """Close every connection and the worker pool."""
        self.each(lambda name: self.hosts[name].close())
        self._pool.shutdown(wait=False, cancel_futures=True)  # a step still hung on a lost server ends at its deadline

    def root(self, name: str) -> PurePosixPath:
        """The app root on the named server."""
        return self.environment.app_root(self.environment.server(name))

    @property
    def reachable(self) -> list[str]:
        """The servers that answered when the command connected."""
        return [name for name in self.hosts if name not in self.unreachable]

    def require_all_reachable(self, doing: str) -> None:
        """Refuse to start `doing` unless every server answered; nothing has been changed yet."""
        if not self.unreachable:
            return
        changed = {name: e for name, e in self.unreachable.items() if isinstance(e, HostKeyChanged)}
        if changed:  # never a thing to override or retry: the key must be verified first
            first = next(iter(changed.values()))
            raise HostKeyChanged(", ".join(counted(changed)), f"cannot be reached safely: {first.what.split(': ', 1)[-1]}",
                                 hint=first.hint)
        names = ", ".join(counted(self.unreachable))
        first = next(iter(self.unreachable.values()))
        # "did not answer" is what the runbooks tell a down server by; "safely" only when its host key is unknown
        how = "cannot be reached safely" if "known_hosts" in first.what else "did not answer"
        raise HostUnreachable(names, f"{how} ({first.what.split(': ', 1)[-1]}); nothing was changed, "
                              f"{doing} not started", hint=first.hint or "see: invoke runbook server-failure")

    def each(self, work: Callable[[str], object], names: Iterable[str] | None = None) -> GroupResult:
        """Run work(name) for every server (or `names`) in parallel; a ReleaserError becomes that server's value."""
        names = list(self.hosts) if names is None else list(names)

        def guarded(name: str) -> object:
            try:
                return work(name)
            except ReleaserError as error:
                return error

        if len(names) == 1:
            return GroupResult({names[0]: guarded(names[0])})
        futures: dict[str, Future] = {}
        try:  # a Ctrl-C while the steps are being handed out stops the ones already handed out, too
            for name in names:
                futures[name] = self._pool.submit(guarded, name)
            return GroupResult({name: future.result() for name, future in futures.items()})
        except KeyboardInterrupt:
            self.stop_at_the_next_step(list(futures.values()))
            raise

    def each_reconnecting(self, work: Callable[[str], object], names: Iterable[str]) -> GroupResult:
        """each(), then once more on a new connection where the connection broke: the server may still be up.

        For steps that must reach every server even after a network blip (freeing the lock, writing the
        journal), and that are safe to run twice. A server that said nothing until the step's deadline is not
        asked again: a new connection to it would wait out the handshake's deadline and then the step's, for
        a result the caller reports as "may" anyway.
        """
        return self.each(lambda name: once_more_on_a_new_connection(self.hosts[name], lambda: work(name),
                                                                    after_silence=False), names)

    def run(self, argv_for: Callable[[str], list[str]], names: Iterable[str] | None = None) -> GroupResult:
        """Run one command (argv_for(name)) on every server (or `names`) in parallel."""
        return self.each(lambda name: self.hosts[name].run(argv_for(name)), names)

    def run_everywhere(self, argv_for: Callable[[str], list[str]], doing: str) -> GroupResult:
        """Run one command on every server in parallel; raise naming the servers where it failed."""
        outcomes = self.run(argv_for)
        if outcomes.failed:
            raise ReleaserError(f"could not {doing} on {outcomes.summary()}", hint="see: invoke runbook server-failure")
        return outcomes

    def stop_at_the_next_step(self, futures: list[Future]) -> None:
        """After Ctrl-C, let every server's current step end (uploads stop at their next chunk) before going on.

        Leaving while they run would leave servers working after the command said it stopped, and the
        cleanup that follows could not know what they did.
        """
        self.stop.set()
        print("\nreleaser: Ctrl-C noted; stopping every server after its current step (press Ctrl-C again to stop "
              "waiting for a server that does not answer)", file=sys.stderr, flush=True)
        try:
            wait(futures)  # every step has a deadline (Host.run's timeout), so this ends
        except KeyboardInterrupt:  # pressed again: a server is silent; go on to the cleanup, which is bounded too
            print("\nreleaser: no longer waiting for servers still busy", file=sys.stderr, flush=True)

