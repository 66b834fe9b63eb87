"""Which directory the command line works in: where environments/ and the local journal are (runbooks ship in the package).

`invoke TASK` inside a checkout and the installed `releaser TASK` anywhere must find the same things, so
the rule lives here, in one place, and not in the tasks module (which may sit inside site-packages).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROJECT_VARIABLE = "RELEASER_PROJECT"
CHECKOUT = Path(__file__).resolve().parent.parent  # the checkout, when releaser runs from one (or is installed -e)


def find_project(cwd: Path | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """Return the project directory: $RELEASER_PROJECT, else the current one if it has environments/, else the checkout.

    With none of those (an installed copy run in an empty directory) it is the current directory: an
    environment then comes from `--env path/to/file.toml`, which works from anywhere.
    """
    configured = environ.get(PROJECT_VARIABLE)
    if configured:
        return Path(configured).expanduser().resolve()
    here = (cwd or Path.cwd()).resolve()
    for candidate in (here, CHECKOUT):
        if (candidate / "environments").is_dir():
            return candidate
    return here
