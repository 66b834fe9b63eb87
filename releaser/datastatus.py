"""The data slots beside the servers' slots, as `status` and `check` show them: read the catalog, compare.

The comparison is pure (releaser.dataslots.judge_data_status); this module only reads. It imports psycopg
(through releaser.datastore) only when the environment declares [database], so a static site's status
does not pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from releaser.config import Environment
from releaser.dataslots import DataSlots, DataStatus, judge_data_status
from releaser.errors import ReleaserError


def read_data_slots_or_error(environment: Environment) -> DataSlots | str:
    """The database's data slots, or one line saying why they could not be read (down, $DSN unset, refused)."""
    from releaser import datastore  # psycopg only when there is a [database]

    try:
        return datastore.read_data_slots(environment)
    except ReleaserError as error:
        return str(error)
    except datastore.psycopg.Error as error:  # answered, but refused the catalog query (permissions, ...)
        return f"database: reading the catalog failed: {str(error).strip().splitlines()[0]}"


def read_data_status(environment: Environment, servers: Mapping[str, object]) -> DataStatus | None:
    """The data slots compared with each server's slots (name -> SlotState or None); None without [database]."""
    database = environment.database
    if database is None:
        return None
    found = read_data_slots_or_error(environment)
    if isinstance(found, str):
        return judge_data_status(database.schema_name, None, servers, error=found)
    return judge_data_status(database.schema_name, found, servers)
