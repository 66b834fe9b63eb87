"""The deploy lock: who holds it, since when, why, until when. Pure: the fleet takes and frees it.

The lock is one directory per server, made with `mkdir` (atomic). A command takes it on every server or
on none, and frees only a lock carrying its own token, so it never frees someone else's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LockInfo:
    """Who holds the lock on a server, since when, why, until when, and the token that proves it."""

    owner: str
    reason: str
    since: datetime
    expires: datetime | None
    token: str
    kind: str = "command"  # "command": held while one command runs; "manual": taken with `invoke lock`
    machine: str = ""  # the machine the command ran on, and its process id: whether it still runs can be seen there
    pid: int | None = None

    @property
    def process(self) -> str:
        """'process 4242 on ops-laptop', or "" for a lock written before locks said so."""
        if not self.machine:
            return ""
        return f"process {self.pid} on {self.machine}" if self.pid else f"on {self.machine}"

    def to_json(self) -> str:
        """Serialise for .releaser/lock/info.json."""
        data = asdict(self)
        data["since"] = self.since.isoformat()
        data["expires"] = self.expires.isoformat() if self.expires else None
        return json.dumps(data, sort_keys=True)


def new_lock(owner: str, reason: str, now: datetime, *, minutes: float, token: str, kind: str = "command",
             machine: str = "", pid: int | None = None) -> LockInfo:
    """Return the lock a command or a person takes now, expiring after `minutes` (0: never), from `machine`'s `pid`."""
    expires = now + timedelta(minutes=minutes) if minutes > 0 else None
    return LockInfo(owner=owner, reason=reason, since=now, expires=expires, token=token, kind=kind, machine=machine,
                    pid=pid)


def parse_lock(text: str) -> LockInfo | None:
    """Read a lock's info.json; a lock whose file is missing or unreadable shows as held by 'unknown'."""
    try:
        data = json.loads(text)
        return LockInfo(
            owner=str(data["owner"]), reason=str(data.get("reason", "")),
            since=datetime.fromisoformat(data["since"]),
            expires=datetime.fromisoformat(data["expires"]) if data.get("expires") else None,
            token=str(data.get("token", "")), kind=str(data.get("kind", "command")),
            machine=str(data.get("machine") or ""), pid=data["pid"] if isinstance(data.get("pid"), int) else None,
        )
    except (ValueError, KeyError, TypeError):
        return None


def is_expired(lock: LockInfo, now: datetime) -> bool:
    """Say whether the lock's expiry has passed, so a new command may take it over."""
    return lock.expires is not None and lock.expires <= now


def describe_lock(lock: LockInfo | None, *, zone=None) -> str:
    """Say in a line who holds the lock, since when and why."""
    if lock is None:
        return "lock held by an unknown owner (its info.json is missing or unreadable)"
    since = lock.since.astimezone(zone).strftime("%a %d %b %H:%M") if zone else lock.since.strftime("%a %d %b %H:%M %Z")
    until = f", expires {lock.expires.astimezone(zone).strftime('%H:%M') if zone else lock.expires.strftime('%H:%M %Z')}" if lock.expires else ""
    process = f", {lock.process}" if lock.process else ""
    return f'lock held by {lock.owner} since {since} (reason: "{lock.reason}"{until}{process})'
