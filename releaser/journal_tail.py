"""Following journals as they grow: read only the bytes appended since the last read, server by server.

The dashboard reads every few seconds, and journals only grow, so reading each whole journal every time
costs more with every release. A `Cursor` keeps, per journal, the file's identity (inode), how far it was
read and the events so far. `advance` is pure: it takes a cursor and what the server printed, and returns
the next cursor, or says the file was replaced (a rebuilt server, a rotated journal) and must be read again.
`start` reads a journal whole: its rotated parts, then the file, as a first read does and a replaced one
must (a rotated journal's part holds the lines read so far, and any appended since the last read).
`JournalTail` is the shell around them: one round trip per server per read, two when a journal was replaced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from releaser import remote
from releaser.journal import journal_parts, merge_history, parse_lines
from releaser.transport import Completed


@dataclass(frozen=True)
class Cursor:
    """Where one journal was read up to: its inode ("-" when absent), the byte offset, and its events so far."""

    inode: str = ""
    offset: int = 0
    events: tuple[dict, ...] = ()


def advance(cursor: Cursor, printed: str) -> Cursor | None:
    """Apply a follow read ("SIZE INODE" line, then the bytes from cursor.offset) to `cursor`.

    Returns the new cursor, or None when the journal is not the one the cursor followed (another inode, or
    shorter than the offset), so the caller reads it again from offset 0. A last line without its newline
    (a write in progress) is left for the next read.
    """
    header, _, body = printed.partition("\n")
    size_text, _, inode = header.strip().partition(" ")
    size = int(size_text)
    if cursor.offset and (inode != cursor.inode or size < cursor.offset):
        return None
    complete = body[: body.rfind("\n") + 1]
    return Cursor(inode, cursor.offset + len(complete.encode("utf-8")), cursor.events + tuple(parse_lines(complete)))


def start(printed: str) -> Cursor:
    """A cursor from a whole read ("SIZE INODE PARTS_BYTES" line, the rotated parts, then the journal up to SIZE).

    Its events are every part's and the journal's whole lines; it follows the journal (not its parts) from there.
    """
    header, _, body = printed.partition("\n")
    size_text, _, rest = header.strip().partition(" ")
    inode, _, parts_text = rest.partition(" ")
    if not parts_text:  # no journal at all ("0 -"), or a server whose script predates whole reads
        return advance(Cursor(), printed)
    data = body.encode("utf-8")
    parts, current = data[: int(parts_text)], data[int(parts_text):]
    complete = current[: current.rfind(b"\n") + 1]
    events = parse_lines(parts.decode("utf-8", errors="replace")) + parse_lines(complete.decode("utf-8", errors="replace"))
    return Cursor(inode, len(complete), tuple(events))


def advance_local(cursor: Cursor, path: Path) -> Cursor:
    """Read this machine's journal file from the cursor on (whole, rotated parts first, when new to the cursor,
    replaced or truncated)."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return Cursor("-", 0, ())
    if str(stat.st_ino) != cursor.inode or stat.st_size < cursor.offset:  # first read, or rotated: the parts too
        cursor = Cursor(str(stat.st_ino), 0, tuple(e for part in journal_parts(path)
                                                   for e in parse_lines(part.read_text(encoding="utf-8"))))
    with open(path, "rb") as handle:
        handle.seek(cursor.offset)
        data = handle.read(stat.st_size - cursor.offset)
    complete = data[: data.rfind(b"\n") + 1]
    return Cursor(cursor.inode, cursor.offset + len(complete),
                  cursor.events + tuple(parse_lines(complete.decode("utf-8", errors="replace"))))


@dataclass
class JournalTail:
    """Every server's journal and this machine's, kept up to date by reading only what was appended."""

    cursors: dict[str, Cursor] = field(default_factory=dict)
    local: Cursor = field(default_factory=Cursor)
    bytes_read: int = 0  # journal bytes read so far, over every read: what a test or a benchmark can compare

    def read(self, fleet) -> list[dict]:
        """Return the merged timeline, as Fleet.read_history does, reading each journal from where it was left.

        Only servers that answer now count (as in read_history); one that does not keeps its cursor for later.
        """
        names = [name for name in fleet.hosts if name not in fleet.unreachable]
        outcomes = fleet.each(lambda name: self._follow(fleet, name), names)
        by_server = {}
        for name, outcome in outcomes.items():
            if isinstance(outcome, tuple):
                self.cursors[name], read = outcome
                self.bytes_read += read
                by_server[name] = list(self.cursors[name].events)
        local: list[dict] = []
        if fleet.journal_path:
            before = self.local
            self.local = advance_local(before, fleet.journal_path)
            self.bytes_read += self.local.offset - (before.offset if self.local.inode == before.inode else 0)
            local = list(self.local.events)
        return merge_history(by_server, local)

    def _follow(self, fleet, name: str) -> tuple[Cursor, int] | Completed:
        """One server: its new cursor and the bytes read (a second round trip only when its journal was replaced)."""
        cursor = self.cursors.get(name)
        following = None
        if cursor is not None:
            done = fleet.hosts[name].run(remote.read_journal_from_argv(fleet.root(name), cursor.offset))
            if not done.ok:
                return done
            following = advance(cursor, done.stdout)
            if following is not None:
                return following, following.offset - cursor.offset
        done = fleet.hosts[name].run(remote.read_journal_from_argv(fleet.root(name), 0, whole=True))
        if not done.ok:
            return done
        following = start(done.stdout)
        return following, len(done.stdout.partition("\n")[2].encode("utf-8"))
