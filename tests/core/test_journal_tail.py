"""Following a journal: the pure step from one read position to the next."""

from releaser.journal_tail import Cursor, advance, start

ONE = '{"at":"2026-12-01T09:30:00.000Z","action":"go-live","id":"a"}\n'
TWO = '{"at":"2026-12-01T09:31:00.000Z","action":"notice","id":"b"}\n'


def test_a_first_read_takes_every_whole_line_and_remembers_the_inode():
    cursor = advance(Cursor(), f"{len(ONE + TWO)} 42\n{ONE}{TWO}")
    assert (cursor.inode, cursor.offset) == ("42", len(ONE + TWO))
    assert [e["id"] for e in cursor.events] == ["a", "b"]


def test_a_later_read_adds_only_what_was_appended():
    cursor = advance(Cursor(), f"{len(ONE)} 42\n{ONE}")
    cursor = advance(cursor, f"{len(ONE + TWO)} 42\n{TWO}")
    assert cursor.offset == len(ONE + TWO) and [e["id"] for e in cursor.events] == ["a", "b"]
    assert advance(cursor, f"{len(ONE + TWO)} 42\n") == cursor  # nothing new: nothing changes


def test_a_line_still_being_written_waits_for_the_next_read():
    cursor = advance(Cursor(), f"{len(ONE) + 10} 42\n{ONE}{TWO[:10]}")
    assert cursor.offset == len(ONE) and [e["id"] for e in cursor.events] == ["a"]
    cursor = advance(cursor, f"{len(ONE + TWO)} 42\n{TWO}")
    assert [e["id"] for e in cursor.events] == ["a", "b"]


def test_a_replaced_or_shorter_journal_must_be_read_again():
    cursor = advance(Cursor(), f"{len(ONE + TWO)} 42\n{ONE}{TWO}")
    assert advance(cursor, f"{len(ONE + TWO) + 5} 43\n") is None  # another file (a rebuilt server)
    assert advance(cursor, f"{len(ONE)} 42\n") is None  # truncated
    assert advance(Cursor(), "0 -\n") == Cursor("-", 0, ())  # no journal yet


def test_a_whole_read_takes_the_rotated_parts_then_follows_the_journal():
    """'SIZE INODE PARTS_BYTES': the parts' lines and the journal's whole lines; the cursor follows the journal."""
    parts = '{"at":"1","id":"a"}\n{"at":"2","id":"b"}\n'
    current = '{"at":"3","id":"c"}\n{"at":"4"'  # a line still being written waits for the next read
    cursor = start(f"{len(current)} 77 {len(parts.encode())}\n{parts}{current}")
    assert [e["id"] for e in cursor.events] == ["a", "b", "c"]
    assert cursor.inode == "77" and cursor.offset == len('{"at":"3","id":"c"}\n')
    assert start("0 -\n") == Cursor("-", 0, ())
