"""The audit journal: one JSON line per action, on every server it touched and in a local file.

Building and merging events is pure; `append_local` and `read_local` are the only file I/O here. The fleet
appends the same line to each server through the Host it already holds. Events never carry secrets.

The local file is per environment and lives beside the environment's file (`local_journal_path`), so a
rehearsal on uat never counts for production. It is this machine's copy, for when servers do not answer:
an event only it holds (say, from servers since rebuilt) is marked `local_only` in the merged timeline,
and what must be true of today's servers (the rehearsal check) reads only what the servers hold.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

# A journal (on a server or this machine) bigger than this, or begun longer ago, moves aside to a numbered
# part before the next line is written; parts are never removed, and every reader reads them all.
ROTATE_BYTES = 4 * 1024 * 1024
ROTATE_DAYS = 92


def make_event(action: str, *, event_id: str, environment: str, actor: str, now: datetime, outcome: str,
               releases: dict[str, str | None] | None = None, servers: list[str] | None = None,
               detail: str = "", reason: str | None = None, timings: dict[str, float] | None = None,
               extra: dict | None = None) -> dict:
    """Return one journal event; the timestamp is UTC to the millisecond."""
    event = {
        "id": event_id,
        "at": now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "action": action,
        "environment": environment,
        "actor": actor,
        "outcome": outcome,
    }
    optional = {"releases": releases, "servers": servers, "detail": detail, "reason": reason,
                "timings": {k: round(v, 4) for k, v in (timings or {}).items()} or None}
    event.update({key: value for key, value in optional.items() if value})
    event.update(extra or {})
    return event


def event_line(event: dict) -> str:
    """Serialise one event as a single JSON line."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)


def parse_lines(text: str) -> list[dict]:
    """Read JSON lines, skipping any line that is not a JSON object (a torn write must not hide the rest)."""
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "at" in event:
            events.append(event)
    return events


def event_detail(event: dict) -> str:
    """What a person reads about an event: its detail or reason; an override names the checks it let through."""
    text = event.get("detail") or event.get("reason") or ""
    if event.get("action") == "override" and event.get("checks"):
        named = f"overrode {', '.join(event['checks'])}"
        return f"{named}: {event['reason']}" if event.get("reason") else named
    return text


def local_journal_path(environment_file: Path) -> Path:
    """Where this machine keeps an environment's journal: beside its file, environments/prod.journal.jsonl.

    One file per environment file, so environments never share events (a path given with --env keeps
    its journal beside that file too).
    """
    return environment_file.with_name(f"{environment_file.stem}.journal.jsonl")


def merge_history(by_server: dict[str, list[dict]], local: list[dict] = ()) -> list[dict]:
    """Merge journals of many servers and this machine into one timeline; an event seen twice appears once.

    An event that only this machine holds has `seen_on == []` and `local_only` set: no server answering
    today has it (the server was down when it was written, or the servers were rebuilt since).
    """
    merged: dict[str, dict] = {}
    for server, events in sorted(by_server.items()):
        for event in events:
            key = event.get("id") or event_line(event)
            entry = merged.setdefault(key, {**event, "seen_on": []})
            entry["seen_on"].append(server)
    for event in local:
        merged.setdefault(event.get("id") or event_line(event), {**event, "seen_on": [], "local_only": True})
    return sorted(merged.values(), key=lambda e: e["at"])


def is_on_servers(event: dict) -> bool:
    """True when a server answering today holds the event (not only this machine's journal)."""
    return not event.get("local_only")


def append_local(path: Path, event: dict) -> None:
    """Append an event to this machine's journal file, first moving it aside when it is too big or too old."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_due_for_rotation(path, now=datetime.now(timezone.utc)):
        path.rename(path.with_name(f"{path.name}.{len(journal_parts(path)) + 1}"))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(event_line(event) + "\n")


def is_due_for_rotation(path: Path, *, now: datetime) -> bool:
    """True when the journal holds more than ROTATE_BYTES, or its first event is older than ROTATE_DAYS."""
    try:
        if path.stat().st_size > ROTATE_BYTES:
            return True
        with open(path, encoding="utf-8") as handle:
            first = parse_lines(handle.readline())
    except FileNotFoundError:
        return False
    if not first:
        return False
    begun = datetime.fromisoformat(first[0]["at"].replace("Z", "+00:00"))
    return now - begun > timedelta(days=ROTATE_DAYS)


def journal_parts(path: Path) -> list[Path]:
    """The rotated parts of a journal, oldest first: name.1, name.2, ... (numbered without gaps)."""
    parts, number = [], 1
    while (part := path.with_name(f"{path.name}.{number}")).exists():
        parts.append(part)
        number += 1
    return parts


def read_local(path: Path, *, environment: str | None = None) -> list[dict]:
    """Read this machine's journal, rotated parts first (empty when there is none), only `environment`'s when given."""
    events = []
    for part in [*journal_parts(path), path]:
        try:
            events += parse_lines(part.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
    return [e for e in events if environment is None or e.get("environment") == environment]
