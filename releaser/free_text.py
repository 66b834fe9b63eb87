"""Free text a person types for others to read (a notice, a --reason): one line of printable characters. Pure.

A notice goes into notice.txt and the public page, a reason into every server's journal and `invoke history`;
an escape sequence there drives whoever's terminal shows it later, and a newline breaks history's one block
per event. So such text is refused at the command line, before any server is asked, rather than cleaned
up afterwards. Letters of every script, punctuation and emoji are all fine.
"""

from __future__ import annotations

_NAMES = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x1b": "an escape",
          "\x00": "a NUL", "\x7f": "a delete", "\u2028": "a line separator", "\u2029": "a paragraph separator"}


def control_character_problem(text: str) -> str | None:
    """Which control character `text` holds first and where, e.g. "a newline '\\n' at character 12", or None.

    Control characters are C0 (U+0000-U+001F, newline and tab included), DEL, C1 (U+0080-U+009F), and the
    Unicode line and paragraph separators, which break a line as a newline does. The character is shown
    escaped, so the message itself never carries it.
    """
    for index, character in enumerate(text, start=1):
        if _is_control(character):
            return f"{_NAMES.get(character, 'a control character')} {character!r} at character {index}"
    return None


def _is_control(character: str) -> bool:
    code = ord(character)
    return code < 0x20 or 0x7F <= code <= 0x9F or character in "\u2028\u2029"
