"""Terminal control characters in data are shown escaped, never sent to the terminal."""

from releaser.ui import plain, visible


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
