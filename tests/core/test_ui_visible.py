"""Terminal control characters in data are shown escaped, never sent to the terminal."""

from releaser.ui import plain, visible


def test_escape_sequences_in_a_lock_reason_are_shown_not_obeyed():
    assert visible("hotfix\x1b[2J\x07 now") == "hotfix\\x1b[2J\\x07 now"
    assert plain("a\x9bb").plain == "a\\x9bb"


def test_newlines_and_tabs_stay():
    assert visible("one\n\ttwo") == "one\n\ttwo"
