"""A server's journal when its disk fills at the second: the line that did not fit is named, and never eats the next.

web-2's app root is a small tmpfs; right after web-2 renamed live, the test leaves room for only a few bytes
of the next journal line and fills the disk. The finish step (journal lines, then the unlock) then writes a
cut line there: the go-live still reports r2 live (it is), with a WARNING naming web-2's journal, and once
the disk has room again the next event is readable on web-2 while the cut one stays out of its history.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from releaser.journal import parse_lines
from test_ssh_faults import NEW, SERVERS, bundle, everywhere, hosts_with, lock_dirs, meta, read_slots, release_morning, script_of
from test_ssh_faults import tiny_disk  # noqa: F401  (fixture)

pytestmark = pytest.mark.ssh

ROOM = 10  # bytes of the next journal line that still fit on web-2's disk


def leave_room_for(journal: Path, room: int, page: int = 4096) -> None:
    """Pad the journal (with a line no reader takes for an event) so that its last page has `room` bytes left."""
    size = journal.stat().st_size
    pad = (page - room - size) % page
    if pad < len('{"pad":""}\n'):
        pad += page
    with open(journal, "a", encoding="utf-8") as out:
        out.write('{"pad":"' + "x" * (pad - len('{"pad":""}\n')) + '"}\n')


def test_a_disk_filled_at_the_second_names_the_journal_and_the_next_line_survives(sshd_farm, ssh_env, open_fleet,
                                                                                 tiny_disk):
    """The cut go-live line is named in a WARNING (the lock is freed all the same), and the unlock written
    after the disk was freed is a readable line of its own on web-2, not glued onto the cut one."""
    root = sshd_farm.server("web-2").root
    tiny_disk(root, "4m")
    release_morning(open_fleet, ssh_env)
    journal = meta(ssh_env, "web-2") / "journal.jsonl"
    ballast = root / "ballast"

    def fill_the_disk() -> None:
        leave_room_for(journal, ROOM)
        subprocess.run(["dd", "if=/dev/zero", f"of={ballast}", "bs=4k"], capture_output=True)  # until ENOSPC

    hosts = hosts_with(ssh_env, "web-2", when=lambda argv, e: script_of(argv) == "commit", after=fill_the_disk)
    with open_fleet(ssh_env, hosts=hosts) as fleet:
        result = fleet.go_live()

    assert hosts["web-2"].fired
    assert read_slots(ssh_env) == everywhere(NEW)  # the switch itself was done everywhere
    assert result.release == "r2" and all(r.ok for r in result.results)
    warning = " ".join(result.warnings)
    assert "the journal on web-2 lacks this command's events" in warning, result
    assert "is its disk full?" in warning and "this machine's journal has them" in warning
    assert "web-1" not in warning and "web-3" not in warning
    assert lock_dirs(ssh_env) == []  # the full disk never kept the lock
    cut = journal.read_bytes()
    assert not cut.endswith(b"\n") and cut.rsplit(b"\n", 1)[-1].startswith(b'{"'), cut[-80:]  # the cut line, no newline

    ballast.unlink()
    with open_fleet(ssh_env) as fleet:
        fleet.unlock(reason="web-2 has room again")
        history = fleet.read_history()

    lines = journal.read_text().splitlines()
    readable = parse_lines(journal.read_text())
    assert [e["action"] for e in readable][-1] == "unlock"  # its own line, readable
    assert lines[-2].encode() == cut.rsplit(b"\n", 1)[-1]  # the cut line stayed as it was, ended by a newline
    with pytest.raises(ValueError):
        json.loads(lines[-2])
    go_live = next(e for e in history if e["action"] == "go-live" and e["outcome"] == "done"
                   and e.get("releases", {}).get("live") == "r2")
    assert go_live["seen_on"] == ["web-1", "web-3"] and not go_live.get("local_only")  # web-2 does not hold it whole
    unlock = next(e for e in history if e["action"] == "unlock")
    assert unlock["seen_on"] == list(SERVERS)
    assert (meta(ssh_env, "web-2") / "journal.whole").exists()  # whole again: the next write costs no extra process


def test_a_torn_journal_due_for_rotation_is_ended_first_so_no_part_ends_torn(tmp_path, monkeypatch):
    """A write that failed left a cut line (journal.whole gone); the next write, due to rotate, ends the cut line
    before moving the journal aside: the part ends with a newline and the new journal holds the new line alone."""
    from releaser import journal as journal_module, remote
    from releaser.transport import LocalHost

    meta_dir = tmp_path / ".releaser"
    meta_dir.mkdir()
    (meta_dir / "journal.started").touch()
    (meta_dir / "journal.jsonl").write_text('{"at":"2026-01-01T00:00:00Z","id":"a"}\n{"at":"2026-01-01T00:0')  # cut
    monkeypatch.setattr(journal_module, "ROTATE_BYTES", 10)
    line = '{"at":"2026-01-02T00:00:00Z","id":"b"}'

    done = LocalHost("here").run(remote.append_journal_argv(PurePosixPath(str(tmp_path)), line))

    assert done.ok, done
    part = (meta_dir / "journal.jsonl.1").read_text()
    assert part.endswith('{"at":"2026-01-01T00:0\n') and [e["id"] for e in parse_lines(part)] == ["a"]
    assert (meta_dir / "journal.jsonl").read_text() == line + "\n"
    assert (meta_dir / "journal.whole").exists()


def test_a_prune_whose_journal_line_missed_a_server_says_so(sshd_farm, ssh_env, open_fleet):
    """prune returns only what it removed; the warning that web-2's journal lacks its event still reaches the
    command (Fleet.unreported_warnings, which the CLI prints), and a go-live's own warning is not said twice."""
    release_morning(open_fleet, ssh_env)
    with open_fleet(ssh_env) as fleet:
        fleet.go_live()
        fleet.rollback()  # r1 live again: r2 is left for prune
    journal = meta(ssh_env, "web-2") / "journal.jsonl"

    def journal_unwritable() -> None:  # a directory where the journal was: the finish cannot append to it
        journal.rename(journal.with_name("journal.kept"))
        journal.mkdir()

    hosts = hosts_with(ssh_env, "web-2", when=lambda argv, e: script_of(argv) == "finish", before=journal_unwritable)
    with open_fleet(ssh_env, hosts=hosts) as fleet:
        removed = fleet.prune(keep=0)
        warnings = fleet.unreported_warnings()

    assert hosts["web-2"].fired and removed == {name: ("r2",) for name in SERVERS}
    assert len(warnings) == 1 and "the journal on web-2 lacks this command's events" in warnings[0], warnings
    assert lock_dirs(ssh_env) == []

    journal.rmdir()
    journal.with_name("journal.kept").rename(journal)
    hosts = hosts_with(ssh_env, "web-2", when=lambda argv, e: script_of(argv) == "finish", before=journal_unwritable)
    with open_fleet(ssh_env, hosts=hosts) as fleet:
        fleet.stage(bundle("r2"))
        result = fleet.go_live()
        assert "the journal on web-2 lacks" in " ".join(result.warnings)
        assert fleet.unreported_warnings() == []  # the result carries it: the CLI shows it once


def test_an_event_written_outside_a_lock_that_a_server_refused_is_named(sshd_farm, ssh_env, open_fleet):
    """`unlock` journals after the lock is gone, with one append per server: web-2's refusal is a warning."""
    release_morning(open_fleet, ssh_env)
    journal = meta(ssh_env, "web-2") / "journal.jsonl"
    journal.rename(journal.with_name("journal.kept"))
    journal.mkdir()
    with open_fleet(ssh_env) as fleet:
        fleet.unlock(reason="tests")
        warnings = fleet.unreported_warnings()
    assert len(warnings) == 1 and warnings[0].startswith("the journal on web-2 lacks this command's unlock event (sh: "), warnings
    assert warnings[0].endswith("; this machine's journal has it")
