"""Terminal control characters in data are shown escaped, never sent to the terminal."""

import pytest

from releaser.ui import body_lines, plain, visible
from releaser.web import Probe


def test_escape_sequences_in_a_lock_reason_are_shown_not_obeyed():
    assert visible("hotfix\x1b[2J\x07 now") == "hotfix\\x1b[2J\\x07 now"
    assert plain("a\x9bb").plain == "a\\x9bb"


def test_a_newline_is_shown_escaped_and_a_tab_stays():
    """QA: a path typed with a newline, or a hand-edited journal reason, printed a forged line of its own."""
    assert visible("one\n\ttwo") == "one\\n\ttwo"
    assert visible("/tmp/x\nFAKE LINE: all good") == "/tmp/x\\nFAKE LINE: all good"


def test_bidi_overrides_separators_and_bytes_that_were_not_utf8_are_shown_escaped():
    """QA: a journal line's U+202E and an argv's \\x9b (a surrogate in Python) reached the terminal raw."""
    assert visible("web\u202e1") == "web\\u202e1"
    assert visible("a\u2028b") == "a\\u2028b"
    assert visible("c1\udc9b31m") == "c1\\udc9b31m"
    assert visible("עדכון \u200fנדחה") == "עדכון \u200fנדחה"  # a right-to-left mark in Hebrew text is text


def test_a_status_word_read_from_a_journal_is_shown_escaped():
    """history shows a journal's outcome as a coloured word: it is data too."""
    from releaser.ui import word

    assert word("DONE\x1b[2J").plain == "DONE\\x1b[2J"
    assert word("PASS").style == "bold green"


@pytest.mark.parametrize("probe, lines", [
    pytest.param(Probe("u", False, 500, "d", "", body_more=0), ["(the body was empty)"], id="empty"),
    pytest.param(Probe("u", False, 500, "d", "a\x1b]0;pwned\x07\nb", body_more=1),
                 ["| a\\x1b]0;pwned\\x07", "| b", "... and 1 more line"], id="escaped-and-one-more"),
    pytest.param(Probe("u", False, 502, "d", "y" * 201, body_cut=True),
                 ["| " + "y" * 200 + " ... (1 more characters)", "... and more (only its first 64 KiB was read)"],
                 id="long-line-and-a-body-past-what-was-read"),
    pytest.param(Probe("u", False, 502, "d", "z", body_more=3, body_cut=True),
                 ["| z", "... and 3 more lines in its first 64 KiB, and more after that (not read)"], id="both-cuts"),
])
def test_a_failing_bodys_lines_are_escaped_and_every_cut_is_said(probe, lines):
    """A body is the server's text: shown escaped, and no line or character left out without saying so."""
    assert body_lines(probe) == lines
