"""Free text a person types for others to read (a notice, a --reason): one line of printable characters. Pure.

A notice goes into notice.txt and the public page, a reason into every server's journal and `invoke history`;
an escape sequence there drives whoever's terminal shows it later, and a newline breaks history's one block
per event. So such text is refused at the command line, before any server is asked, rather than cleaned
up afterwards. Letters of every script, punctuation and emoji are all fine.
"""

from __future__ import annotations

import shlex

_NAMES = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x1b": "an escape",
          "\x00": "a NUL", "\x7f": "a delete", "\u2028": "a line separator", "\u2029": "a paragraph separator"}
# Bidirectional embeddings, overrides and isolates: invisible, they make the text read in another order than
# it is written (U+202E turns "txt.exe" around), on the public page and in every terminal showing history.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MAX_CHARACTERS = 1000  # a notice or a reason is a sentence or two; a public banner of 5,000 characters is a mistake


def control_character_problem(text: str) -> str | None:
    """Which control character `text` holds first and where, e.g. "a newline '\\n' at character 12", or None.

    Control characters are C0 (U+0000-U+001F, newline and tab included), DEL, C1 (U+0080-U+009F), the
    Unicode line and paragraph separators, which break a line as a newline does, and the bidirectional
    overrides and isolates. Bytes that are not UTF-8 are refused too: they reach a terminal as raw bytes (\\x9b
    starts an escape sequence there) and cannot be written as JSON. The character is shown escaped, so the
    message itself never carries it.
    """
    for index, character in enumerate(text, start=1):
        if _is_control(character):
            return f"{_NAMES.get(character, 'a control character')} {character!r} at character {index}"
        if character in _BIDI:
            return f"a bidirectional control {character!r} at character {index}"
        if 0xD800 <= ord(character) <= 0xDFFF:  # how Python hands over argv bytes that are not UTF-8 (\x9b, \xff)
            return (f"a byte that is not UTF-8 ({_byte_of(character)}) at character {index}; "
                    f"type the text in UTF-8")
    return None


def _byte_of(character: str) -> str:
    """The byte an argv surrogate stands for, as \\xNN, or the code point when it is no such byte."""
    return escaped(character) if _is_argv_byte(character) else f"U+{ord(character):04X}"


def is_unprintable(character: str) -> bool:
    """True for what control_character_problem refuses: a control character, a direction control, a byte that
    was not UTF-8."""
    return _is_control(character) or character in _BIDI or 0xD800 <= ord(character) <= 0xDFFF


def escaped(character: str) -> str:
    """The character as an escape that bash's $'...' and Python both read back (\\x1b, \\u202e); a byte that was
    not UTF-8 (an argv surrogate) as that byte."""
    if _is_argv_byte(character):
        return f"\\x{ord(character) - 0xDC00:02x}"
    return character.encode("unicode_escape", "backslashreplace").decode()


def escaped_text(text: str) -> str:
    """`text` with each character control_character_problem refuses written as its escape (\\n, \\x1b): for text
    that is shown rather than refused (a server's journal in a report), so it reads as typed and drives nothing."""
    return "".join(escaped(c) if is_unprintable(c) else c for c in text)


def shell_word(text: str) -> str:
    """`text` as one shell word to paste: quoted, and written with bash's $'...' escapes when it holds a control
    character (printed raw it would drive the terminal; escaped inside plain quotes it would name something else)."""
    if not any(is_unprintable(c) for c in text):
        return shlex.quote(text)
    written = "".join(escaped(c) if is_unprintable(c) else {"\\": "\\\\", "'": "\\'"}.get(c, c) for c in text)
    return f"$'{written}'"


def _is_argv_byte(character: str) -> bool:
    return 0xDC80 <= ord(character) <= 0xDCFF


def length_problem(text: str) -> str | None:
    """Say how long `text` is when it is over MAX_CHARACTERS, or None."""
    return f"{len(text)} characters (at most {MAX_CHARACTERS})" if len(text) > MAX_CHARACTERS else None


def _is_control(character: str) -> bool:
    code = ord(character)
    return code < 0x20 or 0x7F <= code <= 0x9F or character in "\u2028\u2029"
