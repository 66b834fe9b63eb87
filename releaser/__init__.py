"""releaser: deploy and publish on a fixed calendar, with live / backup / staging slots on every server."""

import sys

__version__ = "0.1.0"


def keep_bytecode() -> None:
    """Let Python cache releaser's compiled modules again, unless the person running it turned that off.

    Invoke sets sys.dont_write_bytecode for every process it runs (so that a tasks.py leaves no .pyc beside it),
    and that also stops Python from caching the modules imported after it: in a checkout, where nothing else
    imports them, every `invoke` command would compile releaser's modules from source again (~60-80 ms of a
    cold rollback on this project's machines). `python -B` and PYTHONDONTWRITEBYTECODE are still obeyed.
    """
    sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)


keep_bytecode()  # `invoke` imports tasks.py, and with it this package, after it has set the flag
