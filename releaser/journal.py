"""The audit journal: one JSON line per action, on every server it touched and in a local file.

Building and merging events is pure; `append_local` and `read_local` are the only file I/O here. The fleet
appends the same line to each server through the Host it already holds. Events never carry secrets.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path


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


def merge_history(by_server: dict[str, list[dict]], local: list[dict] = ()) -> list[dict]:
    """Merge journals of many servers and this machine into one timeline; an event seen twice appears once."""
    merged: dict[str, dict] = {}
    for server, events in sorted(by_server.items()):
        for event in events:
            key = event.get("id") or event_line(event)
            entry = merged.setdefault(key, {**event, "seen_on": []})
            entry["seen_on"].append(server)
    for event in local:
        merged.setdefault(event.get("id") or event_line(event), {**event, "seen_on": []})
    return sorted(merged.values(), key=lambda e: e["at"])


def append_local(path: Path, event: dict) -> None:
    """Append an event to this machine's journal file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(event_line(event) + "\n")


def read_local(path: Path) -> list[dict]:
    """Read this machine's journal file (empty when there is none)."""
    try:
        return parse_lines(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
