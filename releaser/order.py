"""The order servers are named in, everywhere releaser lists them: as people count, web-2 before web-10.

Sorting names as text puts web-10 between web-1 and web-2, which reads like a missing server in a list of
twenty; a journal line, an error and a table all list the same servers the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NUMBERS = re.compile(r"(\d+)")


def counting_key(name: str) -> tuple:
    """A sort key that compares the runs of digits in a name as numbers (web-2 < web-10) and the rest as text."""
    parts = _NUMBERS.split(name)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


def counted(names: Iterable[str]) -> list[str]:
    """The names sorted as people count them."""
    return sorted(names, key=counting_key)


def counted_items(mapping) -> list[tuple]:
    """A mapping's (name, value) pairs, the names sorted as people count them."""
    return sorted(mapping.items(), key=lambda item: counting_key(item[0]))
