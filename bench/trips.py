"""Count SSH round trips per server inside a bench process, without touching releaser's code paths.

`counting()` wraps SshHost's run/start/put/read/reconnect for as long as it is active (the bench's own process
only) and hands back a Trips that counts, per server name, each command run (one round trip through the
connection's shell or an exec channel; a command started ahead, like an armed commit, counts once), each SFTP
transfer and each reconnection. Each step is also labelled
with the script's name (`releaser-lock`, `releaser-commit`, ...) so the bench can say which trips a command made.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Trips:
    """Round trips per server, and what each was."""

    steps: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, server: str, what: str) -> None:
        with self._lock:
            self.steps[server].append(what)

    def per_server(self) -> float:
        """The mean number of round trips per server (every server normally makes the same ones)."""
        return sum(len(s) for s in self.steps.values()) / max(1, len(self.steps))

    def kinds(self) -> str:
        """What one server's trips were, e.g. 'releaser-lock, releaser-commit, releaser-finish'."""
        counts = Counter(what for steps in self.steps.values() for what in steps)
        servers = max(1, len(self.steps))
        return ", ".join(f"{what}{'' if n == servers else f' x{n / servers:g}'}" for what, n in counts.items())


def _label(argv) -> str:
    argv = list(argv)
    for i, word in enumerate(argv):  # remote.py's scripts run as: sh -c SCRIPT releaser-NAME ARGS...
        if word.startswith("releaser-"):
            return word
        if word == "-c" and i + 2 < len(argv) and argv[i + 2].startswith("releaser-"):
            return argv[i + 2]
    return argv[0] if argv else "?"


@contextmanager
def counting() -> Iterator[Trips]:
    """Count every SshHost round trip made while the block runs."""
    from releaser.transport import SshHost

    trips = Trips()
    originals = {name: getattr(SshHost, name) for name in ("run", "start", "put", "read", "reconnect")}

    def run(self, argv, **kwargs):
        trips.note(self.name, _label(argv))
        return originals["run"](self, argv, **kwargs)

    def start(self, argv, **kwargs):
        trips.note(self.name, _label(argv) + " (armed)")
        return originals["start"](self, argv, **kwargs)

    def put(self, local, remote, **kwargs):
        trips.note(self.name, "sftp put")
        return originals["put"](self, local, remote, **kwargs)

    def read(self, remote):
        trips.note(self.name, "sftp read")
        return originals["read"](self, remote)

    def reconnect(self, **kwargs):
        trips.note(self.name, "reconnect")
        return originals["reconnect"](self, **kwargs)

    SshHost.run, SshHost.start, SshHost.put, SshHost.read, SshHost.reconnect = run, start, put, read, reconnect
    try:
        yield trips
    finally:
        for name, original in originals.items():
            setattr(SshHost, name, original)
