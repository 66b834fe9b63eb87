"""The dashboard reads each journal once, then only what was appended: on the sandbox and over real sshd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import EXAMPLES
from releaser.bundle import read_bundle
from releaser.dashboard import read_board
from releaser.journal_tail import JournalTail


def journal_bytes(environment, tmp_path) -> int:
    """Every server's journal size plus this machine's, read from disk (the test servers are local paths)."""
    sizes = [os.path.getsize(Path(str(environment.app_root(s))) / ".releaser" / "journal.jsonl") for s in environment.servers]
    return sum(sizes) + os.path.getsize(tmp_path / "journal.jsonl")


def without_seen(events):
    return [{k: v for k, v in e.items() if k != "seen_on"} for e in events]


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_following_reads_each_byte_once_and_gives_what_read_history_gives(where, request, open_fleet, tmp_path):
    environment = request.getfixturevalue("local_env" if where == "local" else "ssh_env")
    tail = JournalTail()
    with open_fleet(environment) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        first = tail.read(fleet)
        assert without_seen(first) == without_seen(fleet.read_history()) and first
        assert tail.bytes_read == journal_bytes(environment, tmp_path)

        again = tail.read(fleet)  # nothing happened: nothing more is read
        assert again == first and tail.bytes_read == journal_bytes(environment, tmp_path)

        on_disk = journal_bytes(environment, tmp_path)
        fleet.go_live(reason="tail test")
        before = tail.bytes_read
        grown = tail.read(fleet)
        assert without_seen(grown) == without_seen(fleet.read_history()) and len(grown) > len(first)
        appended = journal_bytes(environment, tmp_path) - on_disk
        assert tail.bytes_read - before == appended < journal_bytes(environment, tmp_path)  # the new lines only

        # web-1 is rebuilt: a new, shorter journal. It is read again from its start.
        rebuilt = Path(str(environment.app_root(environment.servers[0]))) / ".releaser" / "journal.jsonl"
        lines = rebuilt.read_text().splitlines(keepends=True)
        rebuilt.unlink()
        rebuilt.write_text(lines[0])
        assert without_seen(tail.read(fleet)) == without_seen(fleet.read_history())

        board = read_board(fleet, tail)  # the dashboard's read goes through the same tail
        assert board["servers"] and tail.bytes_read >= before


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_a_journal_rotated_while_followed_loses_nothing(where, request, open_fleet, monkeypatch):
    """Journals split into parts between two reads (and before the first): the tail still has every event."""
    from releaser import journal

    environment = request.getfixturevalue("local_env" if where == "local" else "ssh_env")
    monkeypatch.setattr(journal, "ROTATE_BYTES", 600)
    tail = JournalTail()
    with open_fleet(environment) as fleet:
        fleet.stage(read_bundle(EXAMPLES / "r1"))
        for number in range(3):
            fleet.record("check", "done", detail=f"before {number}")
        parts_dir = Path(str(environment.app_root(environment.servers[0]))) / ".releaser"
        assert list(parts_dir.glob("journal.jsonl.*")), "the journals must have rotated before the first read"
        assert without_seen(tail.read(fleet)) == without_seen(fleet.read_history())
        rotated = len(list(parts_dir.glob("journal.jsonl.*")))
        for number in range(4):  # lines that land in the journal about to move aside, and in the new one
            fleet.record("check", "done", detail=f"after {number}")
        assert len(list(parts_dir.glob("journal.jsonl.*"))) > rotated
        followed = tail.read(fleet)
        assert without_seen(followed) == without_seen(fleet.read_history())
        assert [e["detail"] for e in followed if e["action"] == "check"] == [
            *(f"before {n}" for n in range(3)), *(f"after {n}" for n in range(4))]
