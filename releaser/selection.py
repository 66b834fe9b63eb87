"""`--hosts web-1,web-2`: narrow a read-only task to some servers, and refuse it on a switch. Pure.

Reading a few servers is what Capistrano, Kamal and Ansible let you do, and it helps when one server is
slow or being rebuilt. Changing a few is refused: a switch moves every server or none, and a fleet
serving two releases at once is the very failure releaser exists to prevent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from releaser.errors import ConfigError, PlanRefused

if TYPE_CHECKING:  # the tasks import this module at once; pydantic must wait until a task runs
    from releaser.config import Environment

HOSTS_HELP = "Only these servers, comma-separated, e.g. web-1,web-2 (default: every server)."
REFUSED_HELP = "Not accepted here: a switch moves every server or none (--hosts is for status, check, history)."


def parse_hosts(text: str | None) -> tuple[str, ...]:
    """The server names a --hosts value lists, in the order given, each once; empty for no --hosts."""
    if text is None:
        return ()
    names = tuple(dict.fromkeys(name.strip() for name in str(text).split(",") if name.strip()))
    if not names:
        raise ConfigError(f"--hosts {text!r} names no server", hint="give names separated by commas, e.g. --hosts web-1,web-2")
    return names


def select_servers(environment: Environment, hosts: str | None) -> Environment:
    """The environment with only the servers --hosts names (all of them without --hosts), in the file's order.

    Raises ConfigError naming any server the environment does not have, and the ones it does.
    """
    names = parse_hosts(hosts)
    if not names:
        return environment
    known = [server.name for server in environment.servers]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"--hosts: {environment.name} has no server {', '.join(repr(n) for n in unknown)}",
                          hint=f"its servers are: {', '.join(known)}")
    return environment.model_copy(update={"servers": [s for s in environment.servers if s.name in names]})


def refuse_hosts(task: str, hosts: str | None) -> None:
    """Refuse --hosts on a task that changes servers, saying why; do nothing without it."""
    if hosts is None:
        return
    raise PlanRefused(f"{task} does not take --hosts: a switch moves every server or none, never some to the "
                      "new release and the rest left on the old",
                      hint=f"run it without --hosts; to look at a few servers: releaser status --hosts {hosts}")


def events_on(events: list[dict], hosts: str | None) -> list[dict]:
    """The journal events that concern the servers --hosts names (every event without --hosts).

    An event concerns a server when that server's journal holds it or the event names it.
    """
    names = set(parse_hosts(hosts))
    if not names:
        return events
    return [e for e in events if names & (set(e.get("seen_on") or ()) | set(e.get("servers") or ()))]
