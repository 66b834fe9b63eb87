"""Free text others will read (a notice, a --reason) is one line of printable characters."""

import pytest

from releaser.free_text import MAX_CHARACTERS, control_character_problem, length_problem


@pytest.mark.parametrize("text, problem", [
    ("Delayed \x1b[2J\x1b[31mRED", "an escape '\\x1b' at character 9"),
    ("first line\nsecond line", "a newline '\\n' at character 11"),
    ("a\tb", "a tab '\\t' at character 2"),
    ("end\r", "a carriage return '\\r' at character 4"),
    ("bell\x07", "a control character '\\x07' at character 5"),
    ("c1 \x9b31m", "a control character '\\x9b' at character 4"),
    ("del\x7f", "a delete '\\x7f' at character 4"),
    ("wrap\u2028here", "a line separator '\\u2028' at character 5"),
    ("figures\u202etxt.exe", "a bidirectional control '\\u202e' at character 8"),
    ("\u2066isolated\u2069", "a bidirectional control '\\u2066' at character 1"),
])
def test_a_control_character_is_named_escaped_with_where_it_is(text, problem):
    assert control_character_problem(text) == problem


@pytest.mark.parametrize("text", ["Today's figures are delayed; next update 11:00", "Données retardées — 11 h",
                                  "遅延しています", "delayed 🙂", "",
                                  "التحديث متأخر", "עדכון \u200fנדחה"])
def test_plain_text_in_any_script_passes(text):
    assert control_character_problem(text) is None


def test_a_text_longer_than_a_sentence_or_two_is_named_with_its_length():
    assert length_problem("x" * MAX_CHARACTERS) is None
    assert length_problem("x" * 5000) == f"5000 characters (at most {MAX_CHARACTERS})"


def test_bytes_that_are_not_utf8_are_refused_naming_the_byte():
    """QA: `lock --reason $'c1\\x9b31m'` was accepted (\\x9b is an escape-sequence byte) and a notice of \\xff
    crashed with UnicodeEncodeError; Python hands such argv bytes over as surrogates."""
    import os

    assert control_character_problem(os.fsdecode(b"delay\xff")) == (
        "a byte that is not UTF-8 (\\xff) at character 6; type the text in UTF-8")
